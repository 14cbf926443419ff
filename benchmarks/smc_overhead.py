"""SMC overhead: ``smc`` against a bare ``vmap(grad)`` loop doing the same gradient evaluations.

The core issue's overhead benchmark (``langevin_overhead.py``) extended to SMC. For one
model and particle count, ``langevin_nets.smc.smc`` (adaptive tempering, default HMC moves)
is timed against a jitted ``fori_loop`` of ``vmap(grad(logdensity))`` over the same ``N``
particles doing ``SMCResult.num_gradient_evaluations / N`` steps (the loop of
``smc_vs_blackjax.gradient_baseline``: the log density in the engine's form, log prior +
``dot(ones, loglikelihood_per_datum)``). Ratio = smc's wall time / the loop's; goal
``<= 1.15``. Compilation is excluded (a warm-up call compiles the same program: every
variant below is a runtime value of one compiled program) and times are medians over
repetitions, run interleaved.

Cases: ``readme``, the README network ``(1, 50, 50, 1)``, tanh, learned noise, on
``toy_problem()`` (50 points); ``boston``, the peers benchmark's model (``(13, 50, 1)``,
ReLU, fan-in prior) on UCI boston split 0 (455 points), standardised as ``fit`` does.

Where the time goes, measured by taking parts of a stage away (each compared with a loop
of its own gradient count):

* ``default``: ``smc(schedule="adaptive")``;
* ``no_resampling``: ``ess_threshold=0`` (never resample);
* ``fixed_schedule``: the default run's tempering path passed as ``lambdas`` (no bisection
  for the next exponent);
* ``fixed_step``: step size fixed at the default run's final one (no adaptation);
* ``bare``: all three at once: what is left is the moves, the reweighting and the bookkeeping;
* ``no_moves``: ``num_mcmc_steps=0`` on the default path: the cost of the stages alone
  (reweighting, schedule, resampling), reported as seconds (its gradients are one per
  particle per stage).

and, with ``--hmc-loop``, a second baseline after each default run: a bare jitted HMC loop
(``vmap``-ped leapfrog in the engine's kick-drift form, a Metropolis test per trajectory,
momentum redrawn; :func:`hmc_baseline`) doing about the same gradient evaluations at the default
run's final step size: the arithmetic any HMC move needs besides the gradients, so that
``smc / hmc_loop`` is the engine's own overhead.

Usage::

    nice .venv/bin/python benchmarks/smc_overhead.py [--quick] [--cases readme,boston]
"""

from __future__ import annotations

import argparse
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

from common import command_line, machine_info, timed_call, write_json  # noqa: E402
from langevin_nets.smc import smc  # noqa: E402
from langevin_nets.smc.engine import DEFAULT_NUM_INTEGRATION_STEPS  # noqa: E402
from make_tables import render_smc_overhead  # noqa: E402
from peers import make_problem  # noqa: E402
from smc_vs_blackjax import gradient_baseline, network_problem  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "smc_overhead.json"
TARGET_RATIO = 1.15
VARIANTS = ("default", "no_resampling", "fixed_schedule", "fixed_step", "bare", "no_moves")


@dataclass(frozen=True)
class Case:
    name: str
    num_particles: int
    num_mcmc_steps: int


def cases(quick: bool) -> list[Case]:
    if quick:
        return [Case("readme", 32, 2), Case("boston", 32, 2)]
    # Sized for about 10 minutes on 2 shared cores (boston: 455 points a gradient).
    return [Case("readme", 64, 10), Case("boston", 32, 10)]


def posterior_of(name: str) -> Any:
    if name == "readme":
        return network_problem().posterior
    return make_problem("boston").posterior


def hmc_baseline(post: Any, num_particles: int, num_integration_steps: int
                 ) -> Callable[[jax.Array, int, float], Any]:
    """``run(key, trajectories, step_size)``: a bare HMC loop over ``num_particles`` chains.

    Each trajectory redraws N(0, I) momenta, takes ``num_integration_steps`` leapfrog steps
    (one gradient each, the last with the density) and keeps or rejects the end point by a
    Metropolis test: ``1 + trajectories * L`` gradients per particle, the minimum an HMC
    move costs.
    """
    N, L = num_particles, num_integration_steps
    ones = jnp.ones((post.num_data,))

    def logdensity(x: jax.Array) -> jax.Array:
        return post.logprior(x) + jnp.dot(ones, post.loglikelihood_per_datum(x))

    value_and_grad = jax.vmap(jax.value_and_grad(logdensity))
    grad = jax.vmap(jax.grad(logdensity))

    @jax.jit
    def compiled(key: jax.Array, trajectories: jax.Array, h: jax.Array) -> jax.Array:
        k0, key = jax.random.split(key)
        x = post.sample_prior(k0, N)
        lp, g = value_and_grad(x)

        def kick_drift(_: Any, s: tuple) -> tuple:
            q, p = s
            p = p + h * grad(q)
            return q + h * p, p

        def trajectory(_: Any, c: tuple) -> tuple:
            x, lp, g, key = c
            key, k_p, k_u = jax.random.split(key, 3)
            p0 = jax.random.normal(k_p, x.shape, x.dtype)
            # Leapfrog in kick-drift form (the half kicks between steps merged), the
            # fastest form on XLA:CPU, as in the engine's move.
            p = p0 + 0.5 * h * g
            q, p = jax.lax.fori_loop(0, L - 1, kick_drift, (x + h * p, p))
            lp1, g1 = value_and_grad(q)
            p = p + 0.5 * h * g1
            log_ratio = (lp1 - 0.5 * jnp.sum(p * p, -1)) - (lp - 0.5 * jnp.sum(p0 * p0, -1))
            accept = jnp.log(jax.random.uniform(k_u, (N,))) < log_ratio
            return (jnp.where(accept[:, None], q, x), jnp.where(accept, lp1, lp),
                    jnp.where(accept[:, None], g1, g), key)

        return jax.lax.fori_loop(0, trajectories, trajectory, (x, lp, g, key))[0]

    return lambda key, trajectories, h: compiled(
        key, jnp.asarray(trajectories, jnp.int32), jnp.asarray(h, jnp.result_type(float)))


def run_case(case: Case, repeats: int, seed: int, variant_names: Sequence[str] = VARIANTS,
             hmc_loop: bool = False) -> dict[str, Any]:
    post = posterior_of(case.name)
    N = case.num_particles

    def runner(**kw: Any) -> Callable[[jax.Array], Any]:
        options = {"num_particles": N, "num_mcmc_steps": case.num_mcmc_steps, **kw}
        return lambda key: smc(post, key, **options)

    base = gradient_baseline(post, N)
    # Compile both programs once (smc: no moves, the same program as every variant).
    warm = timed_call(lambda: runner(num_mcmc_steps=0)(jax.random.PRNGKey(10_000 + seed)))
    warm_base = timed_call(lambda: base(jax.random.PRNGKey(seed), 1))
    # The default run fixes the path and step size of the variants that take them away.
    first = runner()(jax.random.PRNGKey(seed))
    lambdas = np.asarray(first.history.lam, dtype=float)
    lambdas[-1] = 1.0
    h_final = float(first.history.step_size[-1])
    fixed = {"lambdas": lambdas, "schedule": None}
    step = {"adapt_step_size": False, "step_size": h_final}
    all_variants = {
        "default": runner(),
        "no_resampling": runner(ess_threshold=0.0),
        "fixed_schedule": runner(**fixed),
        "fixed_step": runner(**step),
        "bare": runner(ess_threshold=0.0, **fixed, **step),
        "no_moves": runner(num_mcmc_steps=0),
    }
    variants = {v: all_variants[v] for v in variant_names}
    L = DEFAULT_NUM_INTEGRATION_STEPS
    hmc = hmc_baseline(post, N, L) if hmc_loop else None
    hmc_compile = None
    if hmc is not None:
        hmc_compile = timed_call(lambda: hmc(jax.random.PRNGKey(seed), 1, h_final))["compile_s"]
    hmc_rows: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    names = list(variants)
    for r in range(repeats):
        key = jax.random.PRNGKey(seed + r)
        for v in names[r % len(names):] + names[: r % len(names)]:
            t = timed_call(lambda v=v, key=key: variants[v](key))
            res = t.pop("result")
            steps = res.num_gradient_evaluations // N
            b = timed_call(lambda steps=steps, key=key: base(key, steps))
            b.pop("result")
            samples[v].append({
                "wall_s": t["wall_s"], "cpu_s": t["cpu_s"], "compile_s": t["compile_s"],
                "num_stages": int(res.num_stages),
                "gradient_evaluations": int(res.num_gradient_evaluations),
                "log_evidence": float(res.log_evidence),
                "baseline_wall_s": b["wall_s"], "baseline_compile_s": b["compile_s"],
            })
            if hmc is not None and v == "default":
                # About the same gradients: 1 + K L per particle.
                K = max((steps - 1) // L, 1)
                hr = timed_call(lambda K=K, key=key: hmc(key, K, h_final))
                hr.pop("result")
                hmc_rows.append({
                    "wall_s": hr["wall_s"], "compile_s": hr["compile_s"], "trajectories": K,
                    "gradient_evaluations": N * (1 + K * L),
                    "smc_seconds_per_gradient": t["wall_s"] / res.num_gradient_evaluations,
                    "hmc_seconds_per_gradient": hr["wall_s"] / (N * (1 + K * L)),
                    "gradient_loop_seconds_per_gradient": b["wall_s"] / (steps * N),
                })
    out_variants = []
    for v in names:
        rows = samples[v]
        wall = statistics.median(s["wall_s"] for s in rows)
        bwall = statistics.median(s["baseline_wall_s"] for s in rows)
        out_variants.append({
            "name": v,
            "wall_s_median": wall,
            "baseline_wall_s_median": bwall,
            # Median over repeats of each repeat's ratio (same key, same gradient count).
            "ratio": statistics.median(s["wall_s"] / s["baseline_wall_s"] for s in rows),
            "num_stages_median": statistics.median(s["num_stages"] for s in rows),
            "gradient_evaluations": int(statistics.median(s["gradient_evaluations"]
                                                          for s in rows)),
            "seconds_per_gradient": statistics.median(
                s["wall_s"] / s["gradient_evaluations"] for s in rows),
            "samples": rows,
        })
        print(f"  {case.name} {v}: {wall:.3f} s vs loop {bwall:.3f} s, ratio "
              f"{out_variants[-1]['ratio']:.3f}, stages {[s['num_stages'] for s in rows]}",
              file=sys.stderr, flush=True)
    default = out_variants[0]
    hmc_summary = None
    if hmc_rows:
        hmc_summary = {
            "compile_s": hmc_compile,
            "num_integration_steps": L,
            "step_size": h_final,
            # Per repeat: seconds per gradient of smc (default) / of the bare HMC loop, and
            # of the HMC loop / of the gradient loop; medians.
            "smc_over_hmc_loop": statistics.median(
                r["smc_seconds_per_gradient"] / r["hmc_seconds_per_gradient"] for r in hmc_rows),
            "hmc_loop_over_gradient_loop": statistics.median(
                r["hmc_seconds_per_gradient"] / r["gradient_loop_seconds_per_gradient"]
                for r in hmc_rows),
            "samples": hmc_rows,
        }
        print(f"  {case.name} bare HMC loop: smc / HMC loop "
              f"{hmc_summary['smc_over_hmc_loop']:.3f}, HMC loop / gradient loop "
              f"{hmc_summary['hmc_loop_over_gradient_loop']:.3f}", file=sys.stderr, flush=True)
    return {
        "name": case.name,
        "model": repr(post.model),
        "dim": post.dim,
        "num_data": post.num_data,
        "num_particles": N,
        "num_mcmc_steps": case.num_mcmc_steps,
        "compile_s": {"smc": warm["compile_s"], "gradient_loop": warm_base["compile_s"]},
        "fixed_path_stages": len(lambdas),
        "fixed_step_size": h_final,
        "variants": out_variants,
        "hmc_loop": hmc_summary,
        "ratio": default["ratio"],
        "target_ratio": TARGET_RATIO,
        "passed": bool(default["ratio"] <= TARGET_RATIO),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="32 particles, 2 moves, 2 repeats")
    p.add_argument("--cases", default="readme,boston", help="comma-separated: readme, boston")
    p.add_argument("--particles", type=int, default=None, help="override the particles")
    p.add_argument("--moves", type=int, default=None, help="override the moves per stage")
    p.add_argument("--repeats", type=int, default=None, help="repetitions (3; quick 2)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated, 'default' first: " + ", ".join(VARIANTS))
    p.add_argument("--hmc-loop", action="store_true",
                   help="also time a bare HMC loop with the default run's gradient count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    names = [s.strip() for s in args.cases.split(",") if s.strip()]
    if not names or any(s not in ("readme", "boston") for s in names):
        p.error(f"unknown case(s) in --cases {args.cases!r}; choose from readme, boston")
    args.variant_names = [s.strip() for s in args.variants.split(",") if s.strip()]
    if (not args.variant_names or args.variant_names[0] != "default"
            or any(v not in VARIANTS for v in args.variant_names)):
        p.error(f"--variants must start with 'default' and name some of {', '.join(VARIANTS)}")
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    for flag, least in (("repeats", 1), ("particles", 2), ("moves", 1)):
        v = getattr(args, flag)
        if v is not None and v < least:
            p.error(f"--{flag} must be at least {least}")
    chosen = {c.name: c for c in cases(args.quick)}
    args.case_list = [
        Case(n, args.particles or chosen[n].num_particles, args.moves or chosen[n].num_mcmc_steps)
        for n in names
    ]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    machine = machine_info()
    t0 = time.perf_counter()
    results = []
    for case in args.case_list:
        print(f"{case.name}: N={case.num_particles}, M={case.num_mcmc_steps}", file=sys.stderr)
        results.append(run_case(case, args.repeats, args.seed, args.variant_names,
                                args.hmc_loop))
    command = command_line("smc_overhead.py", sys.argv[1:] if argv is None else argv)
    report = {
        "benchmark": "smc_overhead",
        "command": command,
        "machine": machine,
        "load_average_after": machine_info()["load_average_1_5_15min"],
        "total_seconds": time.perf_counter() - t0,
        "config": {"quick": args.quick, "repeats": args.repeats, "seed": args.seed,
                   "variants": args.variant_names, "hmc_loop": args.hmc_loop,
                   "target_ratio": TARGET_RATIO},
        "cases": results,
        "all_passed": all(c["passed"] for c in results),
    }
    path = write_json(report, args.out)
    print(render_smc_overhead(report))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
