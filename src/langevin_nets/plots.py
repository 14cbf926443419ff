"""Small, reusable matplotlib plots for fits, traces, SMC histories and calibration.

Every function draws on axes it is given and returns them, so callers compose figures.
:func:`new_figure` builds a figure on the Agg canvas without touching pyplot's global
state (no display is needed, and a user's interactive backend is left alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Colours: data, truth, posterior, MAP (colour-blind safe pairs from the tab10 palette).
DATA_COLOR = "0.25"
TRUE_COLOR = "black"
POSTERIOR_COLOR = "tab:blue"
MAP_COLOR = "tab:orange"


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.0),
               **subplot_kw: Any) -> tuple[Figure, np.ndarray]:  # fmt: skip
    """A figure on the Agg canvas and its axes as a 2-D array ``(nrows, ncols)``."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (the format follows the suffix)."""
    fig.savefig(Path(path), dpi=dpi)


def _col(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=float).reshape(-1)


def plot_fit_1d(
    ax: Axes,
    X: Any,
    y: Any,
    grid: Any,
    mean: Any,
    lower: Any,
    upper: Any,
    true_fn: Callable[[np.ndarray], Any] | None = None,
    *,
    noise_lower: Any = None,
    noise_upper: Any = None,
    map_curve: Any = None,
    level: float = 0.9,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """A 1-D regression fit: data, posterior mean, credible bands, truth and MAP.

    Parameters
    ----------
    ax : matplotlib Axes
    X, y : arrays ``(n,)`` or ``(n, 1)``
        Training data.
    grid : array ``(m,)`` or ``(m, 1)``
        Inputs where ``mean``, ``lower`` and ``upper`` were evaluated.
    mean, lower, upper : arrays ``(m,)``
        Posterior mean and the ``level`` band of the function (no noise).
    true_fn : callable, optional
        The true regression function, drawn as a black line.
    noise_lower, noise_upper : arrays ``(m,)``, optional
        The ``level`` band of a new observation (noise included), drawn lightly.
    map_curve : array ``(m,)``, optional
        The MAP network's output, drawn dashed.
    level : float
        Credible level, for the legend.
    title : str, optional
    legend : bool
    """
    g = _col(grid)
    pct = f"{100 * level:g}%"
    if noise_lower is not None and noise_upper is not None:
        ax.fill_between(g, _col(noise_lower), _col(noise_upper), color=POSTERIOR_COLOR,
                        alpha=0.12, lw=0, label=f"{pct} band, new observation")  # fmt: skip
    ax.fill_between(g, _col(lower), _col(upper), color=POSTERIOR_COLOR, alpha=0.35, lw=0,
                    label=f"{pct} band, function")  # fmt: skip
    if true_fn is not None:
        ax.plot(g, _col(true_fn(g)), color=TRUE_COLOR, lw=1.5, label="true curve")
    ax.plot(g, _col(mean), color=POSTERIOR_COLOR, lw=2.0, label="posterior mean")
    if map_curve is not None:
        ax.plot(g, _col(map_curve), color=MAP_COLOR, lw=1.3, ls="--", label="MAP")
    ax.plot(_col(X), _col(y), "o", color=DATA_COLOR, ms=3.5, mfc="white", mew=1.0,
            label="data", zorder=5)  # fmt: skip
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="lower left", fontsize="small", framealpha=0.9)
    return ax


class TracePhase(NamedTuple):
    """Draws of a phase shown before production (burn-in, warm-up) on a shaded span.

    ``draws`` maps each traced quantity to an array ``(num_chains, num_draws)`` taken every
    ``steps_per_draw`` steps.
    """

    label: str
    draws: Mapping[str, Any]
    steps_per_draw: int = 1


def plot_traces(
    axes: Sequence[Axes],
    draws: Mapping[str, Any],
    *,
    steps_per_draw: int = 1,
    phases: Sequence[TracePhase] = (),
    reference: Mapping[str, float] | None = None,
) -> Sequence[Axes]:
    """Trace plots: one axis per quantity, one line per chain, x in sampler steps.

    Parameters
    ----------
    axes : sequence of Axes
        One per entry of ``draws``.
    draws : mapping name -> array ``(num_chains, num_draws)``
        Production draws (a 1-D array is one chain).
    steps_per_draw : int
        Sampler steps between draws (the thinning).
    phases : sequence of TracePhase
        Earlier phases (burn-in, warm-up), drawn in order before production, each on
        its own shaded span.
    reference : mapping name -> float, optional
        A horizontal reference line (e.g. the true value), per quantity.
    """
    if len(axes) != len(draws):
        raise ValueError(f"got {len(axes)} axes for {len(draws)} traced quantities")
    colors = [f"C{i}" for i in range(10)]
    shades = ("0.82", "0.93")

    def lines(ax: Axes, start: int, values: Any, every: int, label: str | None) -> int:
        v = np.atleast_2d(np.asarray(values, dtype=float))
        x = start + every * np.arange(1, v.shape[1] + 1)
        for c in range(v.shape[0]):
            ax.plot(x, v[c], color=colors[c % 10], lw=0.8, alpha=0.85,
                    label=label if c == 0 else None)  # fmt: skip
        return start + every * v.shape[1]

    for ax, (name, values) in zip(axes, draws.items(), strict=True):
        offset = 0
        for i, phase in enumerate(phases):
            if name not in phase.draws:
                continue
            end = lines(ax, offset, phase.draws[name], phase.steps_per_draw, None)
            ax.axvspan(offset, end, color=shades[i % 2], zorder=0, lw=0, label=phase.label)
            offset = end
        lines(ax, offset, values, steps_per_draw, "chains")
        if reference is not None and name in reference:
            ax.axhline(reference[name], color="black", ls="--", lw=1.0,
                       label=f"true value {reference[name]:g}")  # fmt: skip
        ax.set_ylabel(name)
        ax.set_xlabel("step")
        ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return axes


def _history_field(history: Any, name: str) -> np.ndarray:
    return np.asarray(getattr(history, name), dtype=float).reshape(-1)


def plot_smc_history(
    axes: Sequence[Axes],
    histories: Mapping[str, Any],
    num_particles: int | Mapping[str, int],
    num_data: int,
) -> Sequence[Axes]:
    """SMC diagnostics per stage: the ESS and how far along the path each stage is.

    Parameters
    ----------
    axes : two Axes
        Left: ESS / N after reweighting (filled markers where the stage resampled).
        Right: the tempering exponent lambda, or for data annealing the fraction of the
        data in the target (``num_data / n``).
    histories : mapping label -> SMCHistory
        Each with per-stage arrays ``ess``, ``lam``, ``num_data`` and ``resampled``.
    num_particles : int or mapping label -> int
    num_data : int
        Data points in the full posterior.
    """
    ax_ess, ax_path = axes
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        N = num_particles[label] if isinstance(num_particles, Mapping) else num_particles
        ess = _history_field(h, "ess") / float(N)
        resampled = _history_field(h, "resampled").astype(bool)
        stage = np.arange(1, ess.size + 1)
        ax_ess.plot(stage, ess, color=color, lw=1.2, marker="o", ms=3.5, mfc="white",
                    label=label)  # fmt: skip
        ax_ess.plot(stage[resampled], ess[resampled], "o", color=color, ms=3.5)
        nd = _history_field(h, "num_data")
        lam = _history_field(h, "lam")
        # Data annealing moves num_data (lambda stays 1); tempering moves lambda.
        is_data = bool(np.any(nd < num_data))
        progress = nd / float(num_data) if is_data else lam
        kind = "fraction of data" if is_data else "lambda"
        ax_path.plot(stage, progress, color=color, lw=1.2, marker="o", ms=3.5,
                     label=f"{label} ({kind})")  # fmt: skip
    ax_ess.set_xlabel("stage")
    ax_ess.set_ylabel("ESS / N (filled: resampled)")
    ax_ess.set_ylim(0, 1.05)
    ax_ess.set_title("effective sample size after reweighting")
    ax_ess.legend(fontsize="small")
    ax_path.set_xlabel("stage")
    ax_path.set_ylabel("lambda, or fraction of data")
    ax_path.set_ylim(-0.02, 1.05)
    ax_path.set_title("annealing path")
    ax_path.legend(fontsize="small", loc="lower right")
    return axes


def plot_calibration(ax: Axes, levels: Any, coverages: Any, *, label: str | None = None) -> Axes:
    """Empirical coverage of central credible intervals against their nominal level.

    Points on the diagonal are calibrated; below it the bands are too narrow.
    """
    lv = _col(levels)
    cv = _col(coverages)
    if lv.shape != cv.shape:
        raise ValueError(f"levels and coverages differ in length: {lv.size} vs {cv.size}")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1.0, label="ideal")
    ax.plot(lv, cv, marker="o", ms=4, color=POSTERIOR_COLOR, label=label or "observed")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal level of the credible interval")
    ax.set_ylabel("fraction of targets inside")
    ax.set_title("calibration")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_predictions_vs_targets(
    ax: Axes, y: Any, mean: Any, lower: Any, upper: Any, *, level: float = 0.9
) -> Axes:
    """Predictive mean against the observed target, with the ``level`` band as error bars."""
    yy, m, lo, hi = (_col(a) for a in (y, mean, lower, upper))
    inside = (yy >= lo) & (yy <= hi)
    err = np.vstack([np.maximum(m - lo, 0.0), np.maximum(hi - m, 0.0)])
    ax.errorbar(yy, m, yerr=err, fmt="none", ecolor=POSTERIOR_COLOR, alpha=0.35, lw=0.8)
    ax.plot(yy[inside], m[inside], "o", ms=3.5, color=POSTERIOR_COLOR,
            label=f"target inside {100 * level:g}% band ({inside.mean():.0%})")  # fmt: skip
    if (~inside).any():
        ax.plot(yy[~inside], m[~inside], "x", ms=4.5, color="tab:red", label="target outside")
    lims = [min(yy.min(), lo.min()), max(yy.max(), hi.max())]
    ax.plot(lims, lims, color="0.5", ls="--", lw=1.0, label="y = prediction")
    ax.set_xlabel("observed target")
    ax.set_ylabel("predictive mean")
    ax.set_title("predictions vs targets")
    ax.legend(loc="upper left", fontsize="small")
    return ax


__all__ = [
    "TracePhase",
    "new_figure",
    "plot_calibration",
    "plot_fit_1d",
    "plot_predictions_vs_targets",
    "plot_smc_history",
    "plot_traces",
    "save_figure",
]
