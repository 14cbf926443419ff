"""Speed against the peers: NumPyro NUTS, BlackJAX adaptive tempered SMC, ours (SMC, Langevin).

One model for every sampler, on each problem: our ``BayesianMLP`` with one hidden layer of
50 ReLU units, ``fan_in`` prior (scale 1), learned noise with our Gamma(1, 1) prior on
sigma, the data standardised with the training statistics exactly as
:func:`langevin_nets.fit.fit` does. The peers get that model's densities:

* NumPyro ``NUTS(potential_fn=-Posterior.logdensity)`` from ``init_params`` (prior draws),
  one chain, and four chains with ``chain_method="vectorized"``: the long-run reference;
* BlackJAX ``adaptive_tempered_smc`` with ``Posterior.logprior`` and the summed
  ``loglikelihood_per_datum``, its HMC kernel (``L = 20`` leapfrog steps, unit mass) and its
  MALA kernel, the inner step size tuned once per stage from the mean acceptance
  (``log h += clip(acc - target, -1, 1)``, the rule of ``smc_vs_blackjax.py``, targets 0.75
  for HMC and 0.57 for MALA), systematic resampling, target ESS 0.5;
* ours: ``langevin_nets.smc.smc`` (adaptive tempering, default HMC moves: 20 steps a move,
  step size adapted after every move) and ``langevin`` (through ``fit(method="langevin")``:
  a few chains, each from its own MAP estimate, step size tuned in burn-in).

Problems: ``boston`` (split 0 of ``shared/data/uci/boston``, protocol of that folder's
README) and ``toy`` (the README toy problem ``datasets.toy_problem()``: 50 training points;
test set: 200 fresh points of the same generator, ``toy_problem(200, seed=1)``).

For every run: wall time excluding compilation (SMC samplers: a cheap warm-up call
compiles the very program that is timed, and a seed's call is repeated until the calls add
up to half a second, at most 9 calls, their median being its time; NUTS and Langevin: the
compile time jax reports during the call, subtracted) and including it, gradient
evaluations, test log-likelihood and RMSE in the target's original units, log evidence
(SMC; original units).

Time to the NUTS accuracy: the reference is the test log-likelihood of the 4-chain NUTS
run. Each SMC sampler runs the same grid of budgets, particle counts N x moves per stage M
(MALA: 5 M moves of one gradient each, against HMC's M moves of 20), over a few seeds (and
Langevin a sweep of budgets: samples per chain, burn-in and MAP steps); a budget *reaches*
the reference when its mean test log-likelihood over the seeds is at least ``reference -
0.05``. The time to accuracy is the smallest median wall time (compilation excluded) among
the budgets that reach it: the cheapest setting a user could have picked. The grids go down
to budgets where some runs miss the reference (N = 8, M = 2; 100 MAP steps), so that the
answer is not set by a grid's floor. Goal: ours at least 2x faster than BlackJAX's adaptive
tempered SMC (``speedup = BlackJAX's time / ours >= 2``), reported for our SMC, for our
Langevin sampler, and for the faster of the two on each problem (``ours_fastest``: the
sampler a user would pick there). The machine is shared: only times measured side by side
mean anything.

Usage::

    nice .venv/bin/python benchmarks/peers.py [--quick] [--problems toy,boston] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blackjax  # noqa: E402
from blackjax.smc import resampling as bj_resampling  # noqa: E402

from common import command_line, machine_info, timed_call, write_json  # noqa: E402
from langevin_nets import BayesianMLP, Posterior  # noqa: E402
from langevin_nets.datasets import Standardizer, load_uci, toy_problem  # noqa: E402
from langevin_nets.predict import predict  # noqa: E402
from langevin_nets.smc import smc  # noqa: E402
from langevin_nets.smc import tuning as smc_tuning  # noqa: E402
from make_tables import render_peers  # noqa: E402
from smc_vs_blackjax import MAX_STAGES, NUM_INTEGRATION_STEPS, TARGET_ESS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "peers.json"

LL_TOLERANCE = 0.05  # nats per test point below the NUTS reference
SPEEDUP_TARGET = 2.0  # BlackJAX's time to accuracy / ours
# A seed's SMC call is timed again (same key, same result) until its calls add up to this
# many seconds, at most MAX_CALLS calls, and the median is its time: one call of 10-30 ms
# (the toy problem) varied by 1.6x from one call to the next on a shared machine.
MIN_TIMED_SECONDS = 0.5
MAX_CALLS = 9
HIDDEN = 50
# BlackJAX's per-stage step-size rule aims at these mean acceptances (HMC: our default).
BJ_TARGET_ACCEPTANCE = {"hmc": 0.75, "mala": 0.57}


@dataclass(frozen=True)
class Sizes:
    """The budgets of one run of the script."""

    nuts_warmup: int
    nuts_samples: int
    particles: tuple[int, ...]
    moves: tuple[int, ...]  # ours and BlackJAX HMC: moves per stage (L = 20 steps each)
    seeds: int
    langevin: tuple[tuple[int, int, int], ...]  # (samples per chain, burn-in, MAP steps)
    langevin_chains: int


#: BlackJAX MALA's moves per stage for each HMC move of the grid: MALA spends one gradient
#: a move, HMC 20, so 5 MALA moves per HMC move keeps MALA the cheaper of the two.
MALA_MOVES_PER_HMC_MOVE = 5

# Three seeds per budget: at N = 8 single runs scatter by 0.2 nats on boston. On 2 cores a
# boston run at N = 64, M = 10 takes ~20 s; the whole script ran in 10 minutes (AMD EPYC).
# Langevin's budgets, like the SMC grid, go down to ones that miss the reference (on
# boston 100 Adam steps do not reach the MAP region), so its time to accuracy is not set
# by the sweep's floor; each budget compiles its own programs (the step counts are static).
LANGEVIN_BUDGETS = ((25, 50, 100), (25, 50, 200), (50, 100, 300), (100, 200, 500),
                    (250, 500, 2000), (1000, 1000, 2000))  # fmt: skip
FULL = Sizes(500, 500, (8, 16, 32, 64), (2, 5, 10), 3, LANGEVIN_BUDGETS, 4)
FULL_PARTICLES = {"toy": (8, 16, 32, 64), "boston": (8, 16, 32, 64)}
QUICK = Sizes(50, 50, (16, 32), (2,), 1, ((50, 100, 200),), 2)


# -- problems -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Training data (raw and standardised), the posterior and a test set."""

    name: str
    X: np.ndarray
    y: np.ndarray  # (n,) original units
    X_test: np.ndarray
    y_test: np.ndarray  # (n_test,) original units
    x_scaler: Standardizer
    y_scaler: Standardizer
    posterior: Posterior
    description: str


def make_problem(name: str) -> Problem:
    """``boston`` (UCI split 0) or ``toy`` (the README problem), standardised as ``fit`` does."""
    if name == "boston":
        return uci_problem("boston", 0)
    if name != "toy":
        raise ValueError(f"unknown problem {name!r}")
    X, y, _ = toy_problem()
    Xt, yt, _ = toy_problem(200, seed=1)
    desc = "README toy problem toy_problem() (50 points on [0, 1]); test: toy_problem(200, seed=1)"
    return _problem(name, X, y, Xt, yt, HIDDEN, desc)


def uci_problem(name: str, split: int, data_dir: Any = None) -> Problem:
    """Split ``split`` of the UCI set ``name`` with its protocol's hidden width."""
    X, y, Xt, yt, n_hidden = load_uci(name, split, data_dir)
    desc = (f"UCI {name} split {split}: {len(X)} training, {len(Xt)} test points, "
            f"{X.shape[1]} features")  # fmt: skip
    return _problem(name, X, y, Xt, yt, n_hidden, desc)


def _problem(name: str, X: Any, y: Any, Xt: Any, yt: Any, hidden: int, desc: str) -> Problem:
    y, yt = np.ravel(y), np.ravel(yt)
    # As langevin_nets.fit: training statistics for inputs and target.
    x_scaler = Standardizer.fit(X)
    y_scaler = Standardizer.fit(y[:, None])
    model = BayesianMLP((X.shape[1], hidden, 1), activation="relu", prior="fan_in",
                        prior_scale=1.0, noise_shape=1.0)
    post = model.posterior(x_scaler.transform(X), y_scaler.transform(y[:, None]))
    return Problem(name, X, y, Xt, yt, x_scaler, y_scaler, post,
                   desc + f"; model {model!r}, dim {model.dim}")


def test_metrics(problem: Problem, positions: Any, log_weights: Any = None) -> dict[str, float]:
    """Test RMSE and mean log predictive density, original units (as ``fit`` reports them)."""
    pred = predict(problem.posterior.model, positions, problem.x_scaler.transform(problem.X_test),
                   log_weights=log_weights)
    s, m = float(problem.y_scaler.scale[0]), float(problem.y_scaler.mean[0])
    y_std = (problem.y_test - m) / s
    mean = np.asarray(pred.mean) * s + m
    return {
        "test_rmse": float(np.sqrt(np.mean((problem.y_test - mean) ** 2))),
        # The density of the original-unit target: divide by the scale (Jacobian).
        "test_log_likelihood": float(pred.log_predictive_density(y_std[:, None])) - math.log(s),
    }


def original_log_evidence(problem: Problem, log_z_std: float) -> float:
    """``log p(y)`` in original units from that of the standardised target."""
    return log_z_std - len(problem.y) * math.log(float(problem.y_scaler.scale[0]))


# -- SMC runners: ours and BlackJAX's -------------------------------------------------------------
@dataclass(frozen=True)
class SMCOutput:
    particles: Any
    log_weights: Any
    log_z_std: float
    num_stages: int
    gradient_evaluations: int
    reached_posterior: bool
    mean_acceptance: float


def ours_smc(post: Posterior, num_particles: int, moves: int) -> Callable[..., SMCOutput]:
    """``run(key, warmup=False)``: ``smc(schedule="adaptive")`` with default HMC moves.

    ``warmup=True`` runs no moves: ``num_mcmc_steps`` is a runtime value of the compiled
    program, so this compiles exactly the program of the timed calls, cheaply.
    """

    def run(key: jax.Array, warmup: bool = False) -> SMCOutput:
        res = smc(post, key, num_particles=num_particles, schedule="adaptive",
                  num_mcmc_steps=0 if warmup else moves, target_ess=TARGET_ESS)
        return SMCOutput(
            res.particles, res.log_weights, float(res.log_evidence), int(res.num_stages),
            int(res.num_gradient_evaluations), not res.hit_max_stages,
            float(np.mean(res.history.acceptance_rate)) if res.num_stages else float("nan"),
        )

    return run


def blackjax_smc(
    post: Posterior, num_particles: int, moves: int, kernel: str = "hmc",
    num_integration_steps: int = NUM_INTEGRATION_STEPS,
) -> Callable[..., SMCOutput]:
    """``run(key, warmup=False)``: BlackJAX's adaptive tempered SMC, all stages in one jitted
    ``while_loop``, inner step size tuned per stage; returns the final weighted particles.

    The loop is the one of ``smc_vs_blackjax.blackjax_runner`` (tempering schedule), with
    the inner kernel chosen here and the particles returned. The log evidence is the sum of
    the stages' ``log_likelihood_increment``; the gradients are one per particle at each
    stage's kernel init and one per leapfrog (HMC) or Langevin (MALA) step.
    """
    N, M, L, dim, n = num_particles, moves, num_integration_steps, post.dim, post.num_data
    target_acc = BJ_TARGET_ACCEPTANCE[kernel]
    ones = jnp.ones((n,))

    def loglikelihood(x: jax.Array) -> jax.Array:
        # Our engine's reduction (see smc_vs_blackjax: the form of the sum matters on XLA:CPU).
        return jnp.dot(ones, post.loglikelihood_per_datum(x))

    if kernel == "hmc":
        step_fn, init_fn = blackjax.hmc.build_kernel(), blackjax.hmc.init
        grads_per_stage = 1 + M * L

        def parameters(log_h: jax.Array) -> dict[str, jax.Array]:
            # A leading axis of length 1 marks a parameter shared by all particles.
            return {"step_size": jnp.exp(log_h)[None],
                    "inverse_mass_matrix": jnp.ones((1, dim)),
                    "num_integration_steps": jnp.array([L], dtype=jnp.int32)}
    elif kernel == "mala":
        step_fn, init_fn = blackjax.mala.build_kernel(), blackjax.mala.init
        grads_per_stage = 1 + M

        def parameters(log_h: jax.Array) -> dict[str, jax.Array]:
            return {"step_size": jnp.exp(log_h)[None]}
    else:
        raise ValueError(f"unknown BlackJAX kernel {kernel!r}")

    smc_kernel = blackjax.adaptive_tempered_smc.build_kernel(
        post.logprior, loglikelihood, step_fn, init_fn, bj_resampling.systematic, TARGET_ESS
    )

    @jax.jit
    def compiled(key: jax.Array, max_stages: jax.Array) -> tuple[Any, ...]:
        k_init, k_loop = jax.random.split(key)
        x0 = post.sample_prior(k_init, N)
        # The same initial step as ours: from the prior draws' spread.
        log_h0 = jnp.log(smc_tuning.initial_step_size(x0, 1.0))
        zero = jnp.zeros(())
        carry = (jnp.asarray(0, jnp.int32), k_loop,
                 blackjax.adaptive_tempered_smc.init(x0), zero, log_h0, zero)

        def cond(c: tuple) -> jax.Array:
            return (c[0] < max_stages) & (c[2].tempering_param < 1.0)

        def body(c: tuple) -> tuple:
            t, key, state, log_z, log_h, acc_sum = c
            key, k_step = jax.random.split(key)
            state, info = smc_kernel(k_step, state, M, parameters(log_h))
            acc = jnp.mean(info.update_info.acceptance_rate)
            log_h = log_h + jnp.clip(acc - target_acc, -1.0, 1.0)
            return t + 1, key, state, log_z + info.log_likelihood_increment, log_h, acc_sum + acc

        t, _, state, log_z, _, acc_sum = jax.lax.while_loop(cond, body, carry)
        return (state.particles, jnp.log(state.weights), t, log_z,
                state.tempering_param >= 1.0, acc_sum / jnp.maximum(t, 1))

    def run(key: jax.Array, warmup: bool = False) -> SMCOutput:
        stages = jnp.asarray(1 if warmup else MAX_STAGES, jnp.int32)
        x, lw, t, log_z, reached, acc = compiled(key, stages)
        t = int(t)
        return SMCOutput(x, lw, float(log_z), t, t * N * grads_per_stage, bool(reached),
                         float(acc))

    return run


SMC_SAMPLERS = ("ours_smc", "blackjax_hmc", "blackjax_mala")
LABELS = {
    "nuts_1chain": "NumPyro NUTS, 1 chain",
    "nuts_4chains": "NumPyro NUTS, 4 chains vectorised",
    "ours_smc": "ours: smc (adaptive tempering, HMC moves)",
    "blackjax_hmc": "BlackJAX adaptive tempered SMC, HMC",
    "blackjax_mala": "BlackJAX adaptive tempered SMC, MALA",
    "ours_langevin": "ours: langevin (MAP starts, tuned step)",
    "ours_fastest": "ours: the faster of smc and langevin",
}


def sampler_moves(name: str, moves: int) -> int:
    """Moves per stage of sampler ``name`` at the grid's HMC move count ``moves``."""
    return moves * MALA_MOVES_PER_HMC_MOVE if name == "blackjax_mala" else moves


def smc_runner(name: str, post: Posterior, N: int, moves: int) -> Callable[..., SMCOutput]:
    M = sampler_moves(name, moves)
    if name == "ours_smc":
        return ours_smc(post, N, M)
    if name == "blackjax_hmc":
        return blackjax_smc(post, N, M, "hmc")
    return blackjax_smc(post, N, M, "mala")


def run_smc_sweep(
    problem: Problem, sizes: Sizes, samplers: Sequence[str], seed: int
) -> list[dict[str, Any]]:
    """Every sampler at every budget (N, M), seeds interleaved between samplers."""
    rows = []
    for N, moves in ((N, m) for N in sizes.particles for m in sizes.moves):
        runners = {s: smc_runner(s, problem.posterior, N, moves) for s in samplers}
        compile_s = {}
        for s, run in runners.items():
            t = timed_call(lambda run=run: run(jax.random.PRNGKey(10_000 + seed), warmup=True))
            compile_s[s] = t["compile_s"]
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in samplers}
        names = list(samplers)
        for r in range(sizes.seeds):
            key = jax.random.PRNGKey(seed + r)
            for s in names[r % len(names):] + names[: r % len(names)]:
                calls = [timed_call(lambda run=runners[s], key=key: run(key))]
                while (sum(c["wall_s"] for c in calls) < MIN_TIMED_SECONDS
                       and len(calls) < MAX_CALLS):  # fmt: skip
                    calls.append(timed_call(lambda run=runners[s], key=key: run(key)))
                out: SMCOutput = calls[0]["result"]
                metrics = test_metrics(problem, out.particles, out.log_weights)
                runs[s].append({
                    "seed": seed + r,
                    "wall_s": statistics.median(c["wall_s"] for c in calls),
                    "wall_s_calls": [c["wall_s"] for c in calls],
                    "cpu_s": statistics.median(c["cpu_s"] for c in calls),
                    "compile_s_in_call": sum(c["compile_s"] for c in calls),
                    **metrics,
                    "log_evidence": original_log_evidence(problem, out.log_z_std),
                    "num_stages": out.num_stages,
                    "gradient_evaluations": out.gradient_evaluations,
                    "reached_posterior": out.reached_posterior,
                    "mean_acceptance": out.mean_acceptance,
                })
        for s in samplers:
            rs = runs[s]
            wall = statistics.median(r["wall_s"] for r in rs)
            rows.append({
                "sampler": s,
                "num_particles": N,
                "moves": sampler_moves(s, moves),
                "wall_s_median": wall,
                "compile_s": compile_s[s],
                "wall_s_with_compile": wall + compile_s[s],
                "gradient_evaluations_median": statistics.median(
                    r["gradient_evaluations"] for r in rs),
                "test_log_likelihood_mean": statistics.fmean(r["test_log_likelihood"] for r in rs),
                "test_rmse_mean": statistics.fmean(r["test_rmse"] for r in rs),
                "log_evidence_mean": statistics.fmean(r["log_evidence"] for r in rs),
                "runs": rs,
            })
            print(f"  {problem.name} {s} N={N} M={rows[-1]['moves']}: {wall:.2f} s "
                  f"(+{compile_s[s]:.1f} s compile), "
                  f"test LL {rows[-1]['test_log_likelihood_mean']:.3f}, RMSE "
                  f"{rows[-1]['test_rmse_mean']:.3f}, log Z {rows[-1]['log_evidence_mean']:.1f}, "
                  f"stages {[r['num_stages'] for r in rs]}", file=sys.stderr, flush=True)
    return rows


# -- NUTS -----------------------------------------------------------------------------------------
def run_nuts(problem: Problem, num_chains: int, sizes: Sizes, seed: int) -> dict[str, Any]:
    """NumPyro NUTS on ``-Posterior.logdensity`` from prior draws; warm-up then sampling,
    each timed, with the compile time jax reports during each subtracted."""
    from numpyro.infer import MCMC, NUTS

    post = problem.posterior
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
    init = post.sample_prior(k_init, num_chains)
    if num_chains == 1:
        init = init[0]
    mcmc = MCMC(
        NUTS(potential_fn=lambda x: -post.logdensity(x)),
        num_warmup=sizes.nuts_warmup, num_samples=sizes.nuts_samples, num_chains=num_chains,
        chain_method="vectorized" if num_chains > 1 else "sequential", progress_bar=False,
    )
    fields = ("num_steps", "diverging")

    def warmup() -> Any:
        mcmc.warmup(k_run, init_params=init, extra_fields=fields, collect_warmup=True)
        # warmup() returns before the computation ends (asynchronous dispatch): hand its
        # state to timed_call, which blocks on it.
        return mcmc.last_state, mcmc.get_extra_fields()

    def sample() -> Any:
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields)
        return mcmc.last_state, mcmc.get_samples(), mcmc.get_extra_fields()

    warm = timed_call(warmup)
    warm_steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
    samp = timed_call(sample)
    extra = mcmc.get_extra_fields()
    steps = int(np.sum(np.asarray(extra["num_steps"])))
    draws = np.asarray(mcmc.get_samples())  # (chains * samples, dim)
    metrics = test_metrics(problem, draws)
    # One gradient per leapfrog step, plus one at each chain's start.
    grads = warm_steps + steps + num_chains
    compile_s = warm["compile_s"] + samp["compile_s"]
    wall_total = warm["wall_s"] + samp["wall_s"]
    return {
        "sampler": "nuts_1chain" if num_chains == 1 else f"nuts_{num_chains}chains",
        "num_chains": num_chains,
        "num_warmup": sizes.nuts_warmup,
        "num_samples": sizes.nuts_samples,
        "wall_s": wall_total - compile_s,
        "compile_s": compile_s,
        "wall_s_with_compile": wall_total,
        "warmup_wall_s": warm["wall_s"],
        "sampling_wall_s": samp["wall_s"],
        "gradient_evaluations": grads,
        "num_divergent": int(np.sum(np.asarray(extra["diverging"]))),
        "mean_tree_steps_sampling": steps / (num_chains * sizes.nuts_samples),
        **metrics,
    }


# -- Langevin -------------------------------------------------------------------------------------
def run_langevin(problem: Problem, sizes: Sizes, seed: int) -> list[dict[str, Any]]:
    """``fit(method="langevin")`` at each (samples, burn-in, MAP steps) budget, a few seeds.

    ``fit`` compiles inside (each chain's MAP search, the step-size tuning, the
    predictions), so the compile time is the one jax reports during the call and the run
    time is the call's wall time minus it; it includes everything else fit does: the MAP
    search, the tuning, and the evaluation on the training and test data. A budget's
    compile time is the largest of its seeds' (the first seed compiles, the others reuse
    the programs), and its time with compilation is its median run time plus that.
    """
    from langevin_nets.fit import fit

    rows = []
    for samples, burnin, map_steps in sizes.langevin:
        runs = []
        for r in range(sizes.seeds):
            t = timed_call(lambda samples=samples, burnin=burnin, map_steps=map_steps, r=r: fit(
                problem.X, problem.y, problem.X_test, problem.y_test, method="langevin",
                hidden=(HIDDEN,), activation="relu", prior="fan_in", prior_scale=1.0,
                noise_shape=1.0, chains=sizes.langevin_chains, samples=samples, burnin=burnin,
                thin=4, map_steps=map_steps, seed=seed + r))
            res = t.pop("result")
            # The same metric code as the other samplers, on fit's draws.
            metrics = test_metrics(problem, res.draws.reshape(-1, res.draws.shape[-1]))
            runs.append({
                "seed": seed + r, "wall_s": t["run_s"], "compile_s": t["compile_s"],
                "wall_s_with_compile": t["wall_s"],
                "fit_sampling_s": float(res.timings["sampling_seconds"]), **metrics,
                "fit_test_log_likelihood": res.test.log_likelihood,
                "gradient_evaluations": int(res.gradient_evaluations),
                "step_size": res.sampler.get("step_size"),
                "mean_acceptance": res.sampler.get("mean_acceptance_rate"),
            })
        wall = statistics.median(r["wall_s"] for r in runs)
        compile_s = max(r["compile_s"] for r in runs)
        rows.append({
            "sampler": "ours_langevin",
            "samples_per_chain": samples, "burnin": burnin, "thin": 4,
            "num_chains": sizes.langevin_chains, "map_steps": map_steps,
            "wall_s_median": wall,
            "compile_s": compile_s,
            "wall_s_with_compile": wall + compile_s,
            "gradient_evaluations_median": statistics.median(
                r["gradient_evaluations"] for r in runs),
            "test_log_likelihood_mean": statistics.fmean(r["test_log_likelihood"] for r in runs),
            "test_rmse_mean": statistics.fmean(r["test_rmse"] for r in runs),
            "runs": runs,
        })
        print(f"  {problem.name} langevin {samples}x{burnin}, MAP {map_steps}: {wall:.2f} s "
              f"(+{compile_s:.1f} s compile), test LL "
              f"{rows[-1]['test_log_likelihood_mean']:.3f}", file=sys.stderr, flush=True)
    return rows


# -- time to the NUTS accuracy --------------------------------------------------------------------
def budget_label(row: dict[str, Any]) -> str:
    if row["sampler"] == "ours_langevin":
        return (f"{row['num_chains']} chains x {row['samples_per_chain']} samples, "
                f"burn-in {row['burnin']}, MAP {row['map_steps']}")
    return f"N={row['num_particles']}, M={row['moves']}"


def time_to_accuracy(rows: Sequence[dict[str, Any]], sampler: str, reference: float,
                     tol: float = LL_TOLERANCE) -> dict[str, Any] | None:
    """The cheapest budget (median wall time) whose mean test LL is >= reference - tol."""
    ok = [r for r in rows if r["sampler"] == sampler
          and r["test_log_likelihood_mean"] >= reference - tol]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["wall_s_median"])
    return {"wall_s": best["wall_s_median"], "wall_s_with_compile": best["wall_s_with_compile"],
            "budget": budget_label(best), "test_log_likelihood": best["test_log_likelihood_mean"],
            "gradient_evaluations": best["gradient_evaluations_median"]}


def fastest(tta: dict[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    """The quickest of ``names``' times to accuracy, with the sampler that gave it."""
    reached = [{**tta[s], "sampler": s} for s in names if tta.get(s)]
    return min(reached, key=lambda t: t["wall_s"], default=None)


def speedup(tta: dict[str, Any], ours: str, other: str) -> dict[str, Any]:
    """``other``'s time to accuracy / ``ours``; ``passed`` against SPEEDUP_TARGET.

    Ours reaching the accuracy when the other never does is a pass (ratio None); neither,
    or only the other, a miss."""
    a, b = tta.get(ours), tta.get(other)
    if a and b:
        ratio = b["wall_s"] / a["wall_s"]
        return {"speedup": ratio, "passed": bool(ratio >= SPEEDUP_TARGET)}
    return {"speedup": None, "passed": bool(a) and not b}


def run_problem(name: str, sizes: Sizes, samplers: Sequence[str], seed: int,
                langevin: bool, nuts_chains: Sequence[int] = (1, 4),
                particles_by_problem: dict[str, tuple[int, ...]] | None = None
                ) -> dict[str, Any]:
    problem = make_problem(name)
    print(f"{name}: {problem.description}", file=sys.stderr, flush=True)
    if particles_by_problem and name in particles_by_problem:
        sizes = Sizes(**{**sizes.__dict__, "particles": particles_by_problem[name]})
    nuts = []
    for chains in nuts_chains:
        t0 = time.perf_counter()
        nuts.append(run_nuts(problem, chains, sizes, seed))
        print(f"  {name} NUTS {chains} chain(s): {nuts[-1]['wall_s']:.1f} s "
              f"(+{nuts[-1]['compile_s']:.1f} s compile; {time.perf_counter() - t0:.0f} s), "
              f"test LL {nuts[-1]['test_log_likelihood']:.3f}, RMSE {nuts[-1]['test_rmse']:.3f}",
              file=sys.stderr, flush=True)
    # The run with the most chains is the reference (4 when it ran).
    ref_run = max(nuts, key=lambda r: r["num_chains"])
    reference = ref_run["test_log_likelihood"]
    rows = run_smc_sweep(problem, sizes, samplers, seed)
    if langevin:
        rows += run_langevin(problem, sizes, seed)
    names = [*samplers] + (["ours_langevin"] if langevin else [])
    tta = {s: time_to_accuracy(rows, s, reference) for s in names}
    ours = [s for s in ("ours_smc", "ours_langevin") if s in names]
    # The library's answer: whichever of its samplers gets there first.
    if len(ours) == 2:
        tta["ours_fastest"] = fastest(tta, ours)
        ours.append("ours_fastest")
    comparisons = {}
    for other in ("blackjax_hmc", "blackjax_mala"):
        if other in samplers:
            for mine in ours:
                comparisons[f"{mine}_vs_{other}"] = speedup(tta, mine, other)
    return {
        "problem": name,
        "description": problem.description,
        "dim": problem.posterior.dim,
        "num_train": len(problem.y),
        "num_test": len(problem.y_test),
        "nuts": nuts,
        "reference": {"sampler": ref_run["sampler"], "test_log_likelihood": reference,
                      "tolerance": LL_TOLERANCE},
        "rows": rows,
        "particles": list(sizes.particles),
        "time_to_accuracy": tta,
        "comparisons": comparisons,
    }


# -- command line ---------------------------------------------------------------------------------
def _int_list(
    p: argparse.ArgumentParser, flag: str, text: str, least: int, too_small: str
) -> tuple[int, ...]:
    """Comma-separated integers of at least ``least``; ``p.error`` names ``flag`` otherwise."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        p.error(f"{flag} must be comma-separated integers, got {text!r}")
    if any(v < least for v in values):
        p.error(f"{flag} {too_small}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny budgets (NUTS 50+50, N 16 and 32, M 2, one seed)")
    p.add_argument("--problems", default="toy,boston", help="comma-separated: toy, boston")
    p.add_argument("--samplers", default=",".join(SMC_SAMPLERS),
                   help="SMC samplers in the sweep: " + ", ".join(SMC_SAMPLERS))
    p.add_argument("--particles", default=None,
                   help="override the particle counts of every problem, e.g. 32,64 (default: "
                   + "; ".join(f"{k} {v}" for k, v in FULL_PARTICLES.items()) + "; quick 16,32)")
    p.add_argument("--moves", default=None,
                   help="override the moves per stage M of the grid, e.g. 2,10 (default: "
                   f"{','.join(map(str, FULL.moves))}; MALA runs {MALA_MOVES_PER_HMC_MOVE} M)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"override the seeds per budget (default: {FULL.seeds}; quick 1)")
    p.add_argument("--no-langevin", action="store_true", help="skip ours' Langevin rows")
    p.add_argument("--nuts-chains", default="1,4",
                   help="NUTS runs by chain count (the most chains is the reference)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    problems = [s.strip() for s in args.problems.split(",") if s.strip()]
    if not problems or any(s not in ("toy", "boston") for s in problems):
        p.error(f"--problems must name toy and/or boston, got {args.problems!r}")
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if not samplers or any(s not in SMC_SAMPLERS for s in samplers):
        p.error(f"--samplers must be among {', '.join(SMC_SAMPLERS)}, got {args.samplers!r}")
    sizes = QUICK if args.quick else FULL
    args.particles_by_problem = None if args.quick else dict(FULL_PARTICLES)
    if args.particles is not None:
        args.particles_by_problem = None
        particles = _int_list(p, "--particles", args.particles, 2, "must be at least 2")
        sizes = Sizes(**{**sizes.__dict__, "particles": particles})
    if args.moves is not None:
        moves = _int_list(p, "--moves", args.moves, 1, "must be positive")
        sizes = Sizes(**{**sizes.__dict__, "moves": moves})
    if args.seeds is not None:
        if args.seeds < 1:
            p.error("--seeds must be positive")
        sizes = Sizes(**{**sizes.__dict__, "seeds": args.seeds})
    args.nuts_chain_counts = _int_list(
        p, "--nuts-chains", args.nuts_chains, 1, "must be positive integers"
    )
    args.problem_names, args.sampler_names, args.sizes = problems, samplers, sizes
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)  # max-stage warnings are in the JSON too
    machine = machine_info()
    t0 = time.perf_counter()
    problems = [run_problem(name, args.sizes, args.sampler_names, args.seed,
                            not args.no_langevin, args.nuts_chain_counts,
                            args.particles_by_problem)
                for name in args.problem_names]
    command = command_line("peers.py", sys.argv[1:] if argv is None else argv)
    report = {
        "benchmark": "peers",
        "command": command,
        "machine": machine,
        "load_average_after": machine_info()["load_average_1_5_15min"],
        "total_seconds": time.perf_counter() - t0,
        "config": {
            "quick": args.quick,
            "sizes": args.sizes.__dict__,
            "particles_by_problem": args.particles_by_problem,
            "seed": args.seed,
            "blackjax": blackjax.__version__,
            "numpyro": __import__("numpyro").__version__,
            "model": f"BayesianMLP((d, {HIDDEN}, 1), relu, fan_in prior scale 1, learned noise "
                     "with a Gamma(1, 1) prior on sigma), data standardised as fit() does",
            "ours_smc": (f"smc(schedule='adaptive', target_ess={TARGET_ESS}), default HMC moves "
                         f"(M moves x {NUM_INTEGRATION_STEPS} steps, step size adapted after "
                         "every move, target acceptance 0.75)"),
            "blackjax_smc": (f"adaptive_tempered_smc, target ESS {TARGET_ESS}, systematic "
                         f"resampling every stage; HMC: M moves x {NUM_INTEGRATION_STEPS} "
                         f"leapfrog steps, unit mass; MALA: {MALA_MOVES_PER_HMC_MOVE} M moves; "
                         "step size: log h "
                         "+= clip(mean acceptance - target, -1, 1) once per stage (targets "
                         f"{BJ_TARGET_ACCEPTANCE}), from our initial step size"),
            "nuts": ("NumPyro NUTS(potential_fn=-Posterior.logdensity), defaults (diagonal "
                     "mass adaptation, target accept 0.8, max tree depth 10), init_params = "
                     "prior draws; 4 chains with chain_method='vectorized'"),
            "langevin": ("fit(method='langevin'): per chain a MAP search (map_steps Adam "
                         "steps), burn-in that tunes the step size (dual averaging to 0.85 "
                         "acceptance), then samples x thin BAOAB steps, Metropolis-adjusted; "
                         "budgets (samples, burn-in, map_steps) from tiny to long"),
            "timing": ("SMC: wall time of a call after a warm-up call that compiles the same "
                       "program (compile time = jax's compile events during the warm-up), "
                       f"the median of repeated calls per seed (until they add up to "
                       f"{MIN_TIMED_SECONDS} s, at most {MAX_CALLS} calls); "
                       "NUTS and Langevin: wall time minus jax's compile events during the "
                       "call (Langevin's compile time: its budget's first seed). 'with "
                       "compile' adds the compile time. Medians over seeds."),
            "ours_fastest": ("time to accuracy of ours: the faster of smc and langevin, the "
                             "sampler a user would pick on this problem"),
            "reference": "test log-likelihood of the NUTS run with the most chains (4, "
                         "vectorised, unless --nuts-chains says otherwise)",
            "ll_tolerance": LL_TOLERANCE,
            "speedup_target": SPEEDUP_TARGET,
        },
        "problems": problems,
    }
    path = write_json(report, args.out)
    print(render_peers(report))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
