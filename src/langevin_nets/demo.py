"""The demo: a Bayesian neural network fitted to the toy problem, end to end.

:func:`run_demo` builds the sandbox README's toy regression problem (50 noisy points of
``4 sin(x - 2) + sin(8x - 2) - 4x^2`` on [0, 1], noise 0.5), finds the MAP with Adam,
settles it with a high-friction, heavy-mass BAOAB burn-in (the original recipe) and then
samples with lower friction and mass on several vectorised chains. When the SMC engine
(:mod:`langevin_nets.smc`) is importable it also runs data annealing, fixed geometric
tempering and adaptive tempering from the prior. Each method is a :class:`MethodRun`,
evaluated the same way and drawn as one panel of ``fit.png``.

Files written into the output directory (atomically: a temporary directory beside it is
renamed into place when everything is written):

``summary.json``
    ``generator``, ``seed``, ``quick``; ``problem`` and ``model`` settings; ``map`` (final
    loss = negative log posterior, sigma at the MAP, wall time); ``methods``: one entry
    per method with its ``sampler`` settings, ``num_samples``, ``sigma`` (weighted posterior
    mean and 90% central interval), ``train_rmse`` (posterior mean vs the data),
    ``rmse_to_true_curve`` and ``coverage_of_true_curve_90`` (fraction of a 200-point grid
    on [0, 1] where the 90% band of the function holds the true curve),
    ``coverage_of_data_90`` (fraction of data inside the 90% band of a new observation),
    ``log_predictive_density_train`` (mean over data points of log p(y_i | data)),
    ``acceptance_rate``, ``num_gradient_evaluations``, ``wall_time_s`` (compilation
    included), and method-specific diagnostics (Langevin: split R-hat and ESS of sigma and
    of the log posterior; SMC: ``log_evidence``, per-stage ESS, lambda and data count);
    ``wall_time_s`` per phase; ``versions`` and ``platform``.
``fit.png``
    One panel per method: data, true curve, posterior mean, 90% band of the function
    (dark) and of a new observation (light), and the MAP curve.
``traces.png``
    Log posterior and sigma per Langevin chain, burn-in (shaded) and production.
``smc_history.png``
    Only with SMC: ESS per stage and the annealing path (lambda or fraction of data).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from langevin_nets import plots
from langevin_nets.datasets import toy_problem
from langevin_nets.io.config import InputError
from langevin_nets.io.outputs import OutputDir, to_jsonable
from langevin_nets.langevin import langevin
from langevin_nets.model import BayesianMLP, Posterior
from langevin_nets.optimize import find_map
from langevin_nets.predict import Prediction, predict

Array = jax.Array

GENERATOR = "langevin-nets demo"
TRUE_FUNCTION = "4 sin(x - 2) + sin(8x - 2) - 4x^2"
LEVEL = 0.9


class SMCSpec(NamedTuple):
    """One SMC method of the demo: its summary key, plot label and ``smc`` options."""

    name: str
    label: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and sampler settings of the demo (see :func:`demo_config`)."""

    num_data: int = 50
    noise_std: float = 0.5
    layer_sizes: tuple[int, ...] = (1, 50, 50, 1)
    activation: str = "tanh"
    prior: str = "normal"
    prior_scale: float = 1.0
    noise_shape: float = 1.0
    map_steps: int = 3000
    map_learning_rate: float = 1e-2
    num_chains: int = 8
    # Burn-in, the original recipe: high friction and a heavy mass keep the chains near
    # the MAP while they pick up thermal momentum (an overdamped regime: it moves slowly).
    num_burnin: int = 1000
    burnin_thin: int = 10
    burnin_step_size: float = 1e-2
    burnin_friction: float = 100.0
    burnin_mass: float = 10.0
    # Warm-up at the production settings, discarded: the log posterior falls from the
    # MAP's to the typical set's (about dim / 2 lower) within ~1000 steps.
    num_warmup: int = 2000
    warmup_thin: int = 20
    # Production: light friction, unit mass, unadjusted. h = 5e-3 once sent a chain on a
    # brief excursion (sigma to 100); 3e-3 never did in our runs.
    num_samples: int = 150
    thin: int = 100
    step_size: float = 3e-3
    friction: float = 1.0
    mass: float = 1.0
    metropolis: bool = False
    # SMC from the prior; 5 moves per stage keep the three runs within the time budget.
    smc_num_particles: int = 64
    smc_methods: tuple[SMCSpec, ...] = field(
        default_factory=lambda: (
            SMCSpec(
                "smc_data",
                "SMC, data annealing",
                # Adaptive batches: a fixed batch of 5 from the prior left an ESS of 2 / 64.
                {"schedule": "data", "batch_size": "adaptive", "num_mcmc_steps": 5},
            ),
            SMCSpec(
                "smc_geometric",
                "SMC, geometric tempering",
                {"schedule": "geometric", "num_stages": 10, "num_mcmc_steps": 5},
            ),
            SMCSpec(
                "smc_adaptive",
                "SMC, adaptive tempering",
                {"schedule": "adaptive", "num_mcmc_steps": 5},
            ),
        )
    )
    grid_size: int = 200


def demo_config(quick: bool = False) -> DemoConfig:
    """The full demo's settings, or smaller ones for a fast check (``quick``)."""
    cfg = DemoConfig()
    if not quick:
        return cfg
    return replace(
        cfg,
        map_steps=1500,
        num_chains=4,
        num_burnin=200,
        num_warmup=1000,
        num_samples=40,
        thin=50,
        smc_num_particles=32,
        smc_methods=(
            SMCSpec(
                "smc_data",
                "SMC, data annealing",
                {"schedule": "data", "batch_size": "adaptive", "num_mcmc_steps": 2},
            ),
            SMCSpec(
                "smc_geometric",
                "SMC, geometric tempering",
                {"schedule": "geometric", "num_stages": 5, "num_mcmc_steps": 2},
            ),
            SMCSpec(
                "smc_adaptive",
                "SMC, adaptive tempering",
                {"schedule": "adaptive", "num_mcmc_steps": 2},
            ),
        ),
    )


class MethodRun(NamedTuple):
    """What one inference method produced, in a form every method shares.

    Attributes
    ----------
    name : str
        Key in ``summary.json`` (``langevin``, ``smc_data``, ...).
    label : str
        Title of its panel in ``fit.png``.
    positions : array ``(num_samples, dim)``
        Samples or particles.
    log_weights : array ``(num_samples,)`` or None
        Particle log weights (None: equally weighted samples).
    metrics : dict
        Method-specific numbers and settings for the summary.
    history : any
        Per-iteration record: :class:`LangevinHistory` or the SMC result's history.
    """

    name: str
    label: str
    positions: np.ndarray
    log_weights: np.ndarray | None
    metrics: dict[str, Any]
    history: Any


class LangevinHistory(NamedTuple):
    """Traces per chain ``(num_chains, num_draws)`` of each phase, and their thinning."""

    logdensity: np.ndarray
    sigma: np.ndarray
    burnin_logdensity: np.ndarray
    burnin_sigma: np.ndarray
    warmup_logdensity: np.ndarray
    warmup_sigma: np.ndarray
    thin: int
    burnin_thin: int
    warmup_thin: int


class FitCurves(NamedTuple):
    """A method's predictive summaries on the plotting grid."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    noise_lower: np.ndarray
    noise_upper: np.ndarray


# -- output directory ---------------------------------------------------------------------------


def _is_demo_output(path: Path) -> bool:
    summary = path / "summary.json"
    try:
        return json.loads(summary.read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_out_dir(out_dir: str | os.PathLike) -> OutputDir:
    """Fail before any work if ``out_dir`` cannot receive the demo's outputs."""
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    path = Path(out_dir).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {str(path)!r} is a file, not a directory")
    # Replacing a directory deletes it: only do that to a previous demo's outputs.
    if path.is_dir() and any(path.iterdir()) and not _is_demo_output(path):
        raise InputError(
            f"output directory {str(path)!r} is not empty and holds no previous demo output; "
            "choose another path or remove it"
        )
    out = OutputDir(path, overwrite=True)
    out.check()
    return out


# -- statistics ---------------------------------------------------------------------------------


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw = cw / cw[-1]
    return [float(x[order][min(np.searchsorted(cw, q), x.size - 1)]) for q in qs]


def _split_rhat_ess(draws: np.ndarray) -> tuple[float, float]:
    """Split R-hat and effective sample size of ``draws`` ``(num_chains, num_draws)``.

    Chains are split in halves; the ESS sums autocorrelations over Geyer's initial
    positive (and monotone) sequence of pairs, the multi-chain estimate of Stan.
    """
    x = np.asarray(draws, dtype=float)
    half = x.shape[1] // 2
    if half < 2:
        return float("nan"), float("nan")
    x = np.concatenate([x[:, :half], x[:, -half:]], axis=0)
    m, n = x.shape
    chain_mean = x.mean(axis=1)
    chain_var = x.var(axis=1, ddof=1)
    W = chain_var.mean()
    B = n * chain_mean.var(ddof=1)
    var_plus = (n - 1) / n * W + B / n
    if not np.isfinite(var_plus) or var_plus <= 0:
        return float("nan"), float("nan")
    rhat = float(np.sqrt(var_plus / W))
    # Autocovariance of each chain by FFT (biased estimator, as in Stan).
    centered = x - chain_mean[:, None]
    f = np.fft.rfft(centered, n=2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n] / n
    rho = 1.0 - (W - acov.mean(axis=0)) / var_plus
    tau = -1.0
    prev = np.inf
    for k in range(0, n - 1, 2):
        pair = rho[k] + rho[k + 1]
        if pair < 0:
            break
        pair = min(pair, prev)  # monotone sequence
        tau += 2.0 * pair
        prev = pair
    ess = m * n / max(tau, 1.0 / np.log10(max(m * n, 10)))
    return rhat, float(ess)


# -- methods ------------------------------------------------------------------------------------


def _run_langevin(
    posterior: Posterior, key: Array, start: Array, cfg: DemoConfig, quiet: bool
) -> MethodRun:
    """BAOAB burn-in from the MAP, warm-up, then production, on ``cfg.num_chains`` chains.

    Each phase is its own :func:`langevin` call so that all three are traced.
    """
    model = posterior.model
    keys = jax.random.split(key, 3)
    phases = (
        (cfg.num_burnin, cfg.burnin_thin, cfg.burnin_step_size, cfg.burnin_friction,
         cfg.burnin_mass),
        (cfg.num_warmup, cfg.warmup_thin, cfg.step_size, cfg.friction, cfg.mass),
        (cfg.num_samples * cfg.thin, cfg.thin, cfg.step_size, cfg.friction, cfg.mass),
    )  # fmt: skip
    traces, times = [], []
    position = start
    for k, (steps, thin, h, gamma, mass) in zip(keys, phases, strict=True):
        t0 = time.perf_counter()
        trace = langevin(
            posterior.logdensity,
            k,
            position,
            steps // thin,
            step_size=h,
            friction=gamma,
            mass=mass,
            thin=thin,
            metropolis=cfg.metropolis,
            num_chains=cfg.num_chains,
            progress_bar=not quiet,
        )
        jax.block_until_ready(trace.positions)
        times.append(time.perf_counter() - t0)
        traces.append(trace)
        position = trace.final_state.position
    burn, warm, prod = traces

    def per_chain(a: Any) -> np.ndarray:
        a = np.asarray(a)
        return a if cfg.num_chains > 1 else a[None]

    def sigma_of(trace: Any) -> np.ndarray:
        pos = per_chain(trace.positions)
        if model.learns_noise:
            return np.exp(pos[..., 0])
        return np.full(pos.shape[:2], model.noise_std)

    pos = per_chain(prod.positions)
    history = LangevinHistory(
        logdensity=per_chain(prod.logdensity),
        sigma=sigma_of(prod),
        burnin_logdensity=per_chain(burn.logdensity),
        burnin_sigma=sigma_of(burn),
        warmup_logdensity=per_chain(warm.logdensity),
        warmup_sigma=sigma_of(warm),
        thin=cfg.thin,
        burnin_thin=cfg.burnin_thin,
        warmup_thin=cfg.warmup_thin,
    )
    rhat_s, ess_s = _split_rhat_ess(history.sigma)
    rhat_l, ess_l = _split_rhat_ess(history.logdensity)
    metrics = {
        "sampler": {
            "kernel": "BAOAB Langevin" + (" (Metropolis-adjusted)" if cfg.metropolis else ""),
            "metropolis": cfg.metropolis,
            "num_chains": cfg.num_chains,
            "start": "MAP (all chains)",
            "burnin": {
                "num_steps": cfg.num_burnin,
                "step_size": cfg.burnin_step_size,
                "friction": cfg.burnin_friction,
                "mass": cfg.burnin_mass,
            },
            "warmup": {
                "num_steps": cfg.num_warmup,
                "step_size": cfg.step_size,
                "friction": cfg.friction,
                "mass": cfg.mass,
            },
            "production": {
                "num_steps": cfg.num_samples * cfg.thin,
                "thin": cfg.thin,
                "step_size": cfg.step_size,
                "friction": cfg.friction,
                "mass": cfg.mass,
            },
        },
        "acceptance_rate": float(np.mean(np.asarray(prod.acceptance_rate))),
        "num_divergent": int(sum(np.sum(t.num_divergent) for t in traces)),
        "num_gradient_evaluations": int(sum(t.num_gradient_evaluations for t in traces)),
        "diagnostics": {
            "rhat_sigma": rhat_s,
            "ess_sigma": ess_s,
            "rhat_log_posterior": rhat_l,
            "ess_log_posterior": ess_l,
        },
        "wall_time_burnin_s": times[0],
        "wall_time_warmup_s": times[1],
        "wall_time_production_s": times[2],
        "wall_time_s": sum(times),
    }
    label = f"Langevin (BAOAB), {cfg.num_chains} chains"
    return MethodRun("langevin", label, pos.reshape(-1, pos.shape[-1]), None, metrics, history)


def _load_smc() -> Callable[..., Any] | None:
    try:
        from langevin_nets.smc import smc
    except ImportError:
        return None
    return smc


def _run_smc(
    smc: Callable[..., Any],
    posterior: Posterior,
    key: Array,
    spec: SMCSpec,
    num_particles: int,
    quiet: bool,
) -> MethodRun:
    """One SMC run from the prior to the posterior."""
    t0 = time.perf_counter()
    result = smc(
        posterior, key, num_particles=num_particles, progress_bar=not quiet, **spec.options
    )
    jax.block_until_ready(result.particles)
    wall = time.perf_counter() - t0
    h = result.history
    lw = np.asarray(result.log_weights, dtype=float)
    w = np.exp(lw - np.max(lw))
    w = w / w.sum()
    metrics = {
        "sampler": {"kind": "SMC", "num_particles": num_particles, **dict(spec.options)},
        "log_evidence": float(result.log_evidence),
        "num_stages": int(np.asarray(h.ess).size),
        "final_ess": float(1.0 / np.sum(w * w)),
        "num_resampled": int(np.sum(np.asarray(h.resampled))),
        "hit_max_stages": bool(getattr(result, "hit_max_stages", False)),
        "acceptance_rate": float(np.mean(np.asarray(h.acceptance_rate)))
        if hasattr(h, "acceptance_rate")
        else None,
        "num_gradient_evaluations": int(result.num_gradient_evaluations),
        "history": {
            "ess": np.asarray(h.ess, dtype=float),
            "lam": np.asarray(h.lam, dtype=float),
            "num_data": np.asarray(h.num_data, dtype=int),
            "resampled": np.asarray(h.resampled, dtype=bool),
        },
        "wall_time_s": wall,
    }
    positions = np.asarray(result.particles, dtype=float)
    return MethodRun(spec.name, spec.label, positions, lw, metrics, h)


# -- evaluation ---------------------------------------------------------------------------------


def _evaluate(
    run: MethodRun,
    model: BayesianMLP,
    X: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray,
    truth: np.ndarray,
) -> tuple[dict[str, Any], FitCurves]:
    """Fit-quality numbers shared by every method, and its curves on ``grid``."""
    m = grid.shape[0]
    # One prediction over grid and data together: predict compiles per call and per
    # input shape, and the bands of both are needed.
    both = predict(model, run.positions, np.vstack([grid, X]), log_weights=run.log_weights)
    lo, hi = (np.asarray(a) for a in both.interval(LEVEL, noise=False))
    nlo, nhi = (np.asarray(a) for a in both.interval(LEVEL, noise=True))
    on_data = Prediction(both.samples[:, m:], both.sigma, both.log_weights)
    mean = np.asarray(both.mean)
    w = np.asarray(both.weights, dtype=float)
    sig = np.asarray(both.sigma, dtype=float)
    s_lo, s_hi = _weighted_quantiles(sig, w, (0.5 * (1 - LEVEL), 0.5 * (1 + LEVEL)))
    yy = np.asarray(y, dtype=float)[:, 0]
    metrics = {
        "num_samples": int(run.positions.shape[0]),
        "sigma": {
            "mean": float(np.sum(w * sig) / np.sum(w)),
            "lower_90": s_lo,
            "upper_90": s_hi,
        },
        "train_rmse": on_data.rmse(y),
        "rmse_to_true_curve": float(np.sqrt(np.mean((mean[:m] - truth) ** 2))),
        "coverage_of_true_curve_90": float(np.mean((truth >= lo[:m]) & (truth <= hi[:m]))),
        "mean_band_width_90": float(np.mean(hi[:m] - lo[:m])),
        "coverage_of_data_90": float(np.mean((yy >= nlo[m:]) & (yy <= nhi[m:]))),
        "log_predictive_density_train": on_data.log_predictive_density(y),
    }
    curves = FitCurves(mean[:m], lo[:m], hi[:m], nlo[:m], nhi[:m])
    return metrics, curves


# -- figures ------------------------------------------------------------------------------------


def _fit_figure(
    runs: list[MethodRun],
    curves: list[FitCurves],
    results: list[dict[str, Any]],
    X: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray,
    true_fn: Callable[[Any], Any],
    map_curve: np.ndarray,
    path: Path,
) -> None:
    k = len(runs)
    # Side by side; four or more methods wrap onto two rows to stay readable.
    ncols = k if k <= 3 else -(-k // 2)
    nrows = -(-k // ncols)
    fig, axes = plots.new_figure(
        nrows, ncols, figsize=(5.2 * ncols + 0.4, 4.5 * nrows + 0.3), sharey=True
    )
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    for i, (run, c, res) in enumerate(zip(runs, curves, results, strict=True)):
        ax = axes.flat[i]
        label = run.label
        if res.get("log_evidence") is not None:
            label += f" (log evidence {res['log_evidence']:.2f})"
        title = (
            f"{label}\nRMSE to true curve {res['rmse_to_true_curve']:.3f}, "
            f"90% band covers {res['coverage_of_true_curve_90']:.0%} of it"
        )
        plots.plot_fit_1d(
            ax, X, y, grid, c.mean, c.lower, c.upper, true_fn,
            noise_lower=c.noise_lower, noise_upper=c.noise_upper, map_curve=map_curve,
            level=LEVEL, title=title, legend=(i == 0),
        )  # fmt: skip
        ax.title.set_fontsize("medium")
        if i % ncols:
            ax.set_ylabel("")
    fig.suptitle("Bayesian neural network on the toy problem: posterior predictive")
    plots.save_figure(fig, path)


def _trace_figure(run: MethodRun, cfg: DemoConfig, noise_std: float, path: Path) -> None:
    h: LangevinHistory = run.history
    fig, axes = plots.new_figure(2, 1, figsize=(10.0, 6.4), sharex=True)
    plots.plot_traces(
        [axes[0, 0], axes[1, 0]],
        {"log posterior": h.logdensity, "sigma": h.sigma},
        steps_per_draw=h.thin,
        phases=[
            plots.TracePhase(
                f"burn-in (friction {cfg.burnin_friction:g}, mass {cfg.burnin_mass:g}, "
                f"h {cfg.burnin_step_size:g})",
                {"log posterior": h.burnin_logdensity, "sigma": h.burnin_sigma},
                h.burnin_thin,
            ),
            plots.TracePhase(
                "warm-up (production settings, discarded)",
                {"log posterior": h.warmup_logdensity, "sigma": h.warmup_sigma},
                h.warmup_thin,
            ),
        ],
        reference={"sigma": noise_std},
    )
    axes[0, 0].set_xlabel("")
    fig.suptitle(
        f"{run.label}: traces per chain (production: friction {cfg.friction:g}, "
        f"mass {cfg.mass:g}, h {cfg.step_size:g}, every {cfg.thin}th step)"
    )
    plots.save_figure(fig, path)


def _smc_figure(runs: list[MethodRun], num_data: int, path: Path) -> None:
    fig, axes = plots.new_figure(1, 2, figsize=(11.0, 4.2))
    plots.plot_smc_history(
        [axes[0, 0], axes[0, 1]],
        {r.label: r.history for r in runs},
        {r.label: int(r.positions.shape[0]) for r in runs},
        num_data,
    )
    fig.suptitle("SMC: per-stage diagnostics")
    plots.save_figure(fig, path)


# -- the demo -----------------------------------------------------------------------------------


def _versions() -> dict[str, Any]:
    import jaxlib
    import matplotlib
    import optax

    import langevin_nets

    return {
        "langevin_nets": langevin_nets.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "python": platform.python_version(),
    }


def _platform() -> dict[str, Any]:
    devices = jax.devices()
    return {
        "backend": devices[0].platform if devices else None,
        "device_count": len(devices),
        "cpu_count": os.cpu_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "system": platform.platform(),
    }


def _num(value: Any, spec: str) -> str:
    """Format a summary number; None (a non-finite value) reads ``n/a``."""
    return "n/a" if value is None else format(value, spec)


def _print_summary(summary: dict[str, Any], path: Path, files: list[str]) -> None:
    m = summary["model"]
    p = summary["problem"]
    mp = summary["map"]
    print(
        f"langevin-nets demo: BNN {tuple(m['layer_sizes'])} {m['activation']} "
        f"({m['num_parameters']} parameters), {p['num_data']} noisy points of "
        f"{TRUE_FUNCTION}, noise sd {p['noise_std']:g}"
    )
    print(
        f"MAP: loss {_num(mp['loss'], '.1f')}, sigma {_num(mp['sigma'], '.3f')} "
        f"({mp['wall_time_s']:.1f} s)"
    )
    rows = [("method", "sigma [90% interval]", "RMSE to truth", "truth in 90% band",
             "log pred. density", "log evidence", "time")]  # fmt: skip
    for name, r in summary["methods"].items():
        s = r["sigma"]
        rows.append(
            (
                name,
                f"{_num(s['mean'], '.3f')} [{_num(s['lower_90'], '.3f')}, "
                f"{_num(s['upper_90'], '.3f')}]",
                _num(r["rmse_to_true_curve"], ".3f"),
                _num(r["coverage_of_true_curve_90"], ".0%"),
                _num(r["log_predictive_density_train"], ".3f"),
                _num(r["log_evidence"], ".2f") if "log_evidence" in r else "-",
                f"{r['wall_time_s']:.1f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)).rstrip())
    print(f"outputs in {path}: {', '.join(files)}")
    print(f"total {summary['wall_time_s']['total']:.1f} s")


def run_demo(
    out_dir: str | os.PathLike,
    *,
    quiet: bool = False,
    seed: int = 0,
    quick: bool = False,
) -> dict[str, Any]:
    """Fit the toy problem with every available method and write the outputs.

    Parameters
    ----------
    out_dir : path
        Output directory. Created (with parents) if missing; a previous demo's output
        there is replaced. The files appear together when the run succeeds.
    quiet : bool
        No progress bars and no printed summary.
    seed : int
        Seeds the data noise (``PRNGKey(seed)``, as the sandbox README) and the samplers.
    quick : bool
        Smaller sizes (a fast check, not a good posterior).

    Returns
    -------
    dict
        The content of ``summary.json`` (see the module docstring).

    Raises
    ------
    ValueError
        If ``out_dir`` is a file, a non-empty directory that is not a previous demo's
        output, or cannot be created.
    TypeError
        If ``seed`` is not an integer.
    """
    t_start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    out = _check_out_dir(out_dir)
    cfg = demo_config(bool(quick))
    wall: dict[str, float] = {}

    X, y, true_fn = toy_problem(n=cfg.num_data, noise=cfg.noise_std, seed=seed)
    grid = np.linspace(0.0, 1.0, cfg.grid_size)[:, None]
    truth = np.asarray(true_fn(grid[:, 0]), dtype=float)
    model = BayesianMLP(
        cfg.layer_sizes,
        activation=cfg.activation,
        prior=cfg.prior,
        prior_scale=cfg.prior_scale,
        noise_shape=cfg.noise_shape,
    )
    posterior = model.posterior(X, y)
    # The data use PRNGKey(seed) itself; the samplers get keys from a different stream.
    k_map, k_langevin, k_smc = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1), 3)

    t0 = time.perf_counter()
    map_result = find_map(posterior, k_map, cfg.map_steps, cfg.map_learning_rate)
    jax.block_until_ready(map_result.position)
    wall["map"] = time.perf_counter() - t0
    map_pos = map_result.position
    map_curve = np.asarray(model.mean(map_pos, jnp.asarray(grid)))[:, 0]

    runs = [_run_langevin(posterior, k_langevin, map_pos, cfg, quiet)]
    wall["langevin"] = runs[0].metrics["wall_time_s"]
    smc = _load_smc()
    if smc is not None:
        keys = jax.random.split(k_smc, len(cfg.smc_methods))
        for spec, k in zip(cfg.smc_methods, keys, strict=True):
            run = _run_smc(smc, posterior, k, spec, cfg.smc_num_particles, quiet)
            wall[spec.name] = run.metrics["wall_time_s"]
            runs.append(run)

    t0 = time.perf_counter()
    results, curves = [], []
    for run in runs:
        metrics, c = _evaluate(run, model, X, y, grid, truth)
        results.append({"label": run.label, **run.metrics, **metrics})
        curves.append(c)

    summary: dict[str, Any] = {
        "generator": GENERATOR,
        "seed": seed,
        "quick": bool(quick),
        "problem": {
            "name": "toy",
            "true_function": TRUE_FUNCTION,
            "num_data": cfg.num_data,
            "noise_std": cfg.noise_std,
            "x_range": [0.0, 1.0],
            "evaluation_grid_size": cfg.grid_size,
            "credible_level": LEVEL,
        },
        "model": {
            "layer_sizes": list(cfg.layer_sizes),
            "activation": cfg.activation,
            "prior": cfg.prior,
            "prior_scale": cfg.prior_scale,
            "noise_prior": f"Gamma({cfg.noise_shape:g}, 1) on sigma",
            "num_parameters": model.dim,
        },
        "map": {
            "optimizer": "adam",
            "num_steps": cfg.map_steps,
            "learning_rate": cfg.map_learning_rate,
            "loss": float(map_result.loss_history[-1]),
            "sigma": float(model.sigma(map_pos)),
            "wall_time_s": wall["map"],
        },
        "methods": {run.name: r for run, r in zip(runs, results, strict=True)},
        "wall_time_s": wall,
        "versions": _versions(),
        "platform": _platform(),
    }

    files = ["summary.json", "fit.png", "traces.png"]
    smc_runs = [r for r in runs if r.name != "langevin"]
    if smc_runs:
        files.append("smc_history.png")
    summary["files"] = files
    with out.staging() as tmp:
        _fit_figure(runs, curves, results, X, y, grid, true_fn, map_curve, tmp / "fit.png")
        _trace_figure(runs[0], cfg, cfg.noise_std, tmp / "traces.png")
        if smc_runs:
            _smc_figure(smc_runs, cfg.num_data, tmp / "smc_history.png")
        wall["evaluation_and_plots"] = time.perf_counter() - t0
        wall["total"] = time.perf_counter() - t_start
        summary = to_jsonable(summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")

    if not quiet:
        _print_summary(summary, out.path, files)
        sys.stdout.flush()
    return summary


__all__ = ["DemoConfig", "MethodRun", "SMCSpec", "demo_config", "run_demo"]
