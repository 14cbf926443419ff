"""report.png: the fit, the sampler's history and the calibration, on one page.

Drawn with the reusable plots of :mod:`langevin_nets.plots` on an Agg figure (pyplot's
global state is not touched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from langevin_nets import plots


def _fit_panel(
    ax: Any, result: Any, X: np.ndarray, y: np.ndarray, X_test: Any, y_test: Any
) -> None:
    """One feature: the curve and bands on a grid; several: predictions against targets."""
    if X.shape[1] == 1:
        xs = X[:, 0] if X_test is None else np.concatenate([X[:, 0], X_test[:, 0]])
        lo, hi = float(xs.min()), float(xs.max())
        pad = 0.05 * (hi - lo or 1.0)
        grid = np.linspace(lo - pad, hi + pad, 200)
        p = result.predict(grid[:, None], 0.9)
        plots.plot_fit_1d(ax, X[:, 0], y, grid, p.mean, p.function_lower, p.function_upper,
                          noise_lower=p.lower, noise_upper=p.upper, title="fit (train data)")
        if X_test is not None and y_test is not None:
            ax.plot(X_test[:, 0], y_test, "x", color="tab:red", ms=4, label="test data")
            ax.legend(loc="best", fontsize="small", framealpha=0.9)
        ax.set_xlabel(result.feature_names[0])
        ax.set_ylabel(result.target_name)
        return
    which, Xe, ye = ("test", X_test, y_test) if y_test is not None else ("train", X, y)
    p = result.predict(Xe, 0.9)
    plots.plot_predictions_vs_targets(ax, ye, p.mean, p.lower, p.upper, level=0.9)
    ax.set_title(f"predictions vs targets ({which} data, noise included)")
    ax.set_xlabel(f"observed {result.target_name}")


def _calibration_panel(ax: Any, result: Any) -> None:
    drawn = False
    for name, m, color in (("train", result.train, "tab:blue"), ("test", result.test, "tab:red")):
        if m is None:
            continue
        levels = [float(k) for k in m.calibration]
        cov = list(m.calibration.values())
        if not drawn:
            plots.plot_calibration(ax, levels, cov, label=f"{name} (n={m.n})")
            drawn = True
        else:
            ax.plot(levels, cov, marker="s", ms=4, color=color, label=f"{name} (n={m.n})")
            ax.legend(loc="upper left", fontsize="small")
    ax.set_xlabel("nominal level of the predictive interval")


def _stage_moves_panels(ax_acc: Any, ax_h: Any, result: Any) -> None:
    h = result.raw.history
    stage = np.arange(1, len(np.asarray(h.ess)) + 1)
    acc = np.asarray(h.acceptance_rate, dtype=float)
    ax_acc.plot(stage, acc, marker="o", ms=3.5, color="tab:green")
    ax_acc.set_ylim(-0.02, 1.05)
    ax_acc.set_xlabel("stage")
    ax_acc.set_ylabel("mean acceptance rate")
    ax_acc.set_title("MCMC moves: acceptance")
    steps = np.asarray(h.step_size, dtype=float)
    ax_h.semilogy(stage, steps, marker="o", ms=3.5, color="tab:purple")
    ax_h.set_xlabel("stage")
    ax_h.set_ylabel("step size (standardised units)")
    ax_h.set_title("MCMC moves: step size")


def _trace_panels(axes: Any, result: Any) -> None:
    C = result.draws.shape[0]
    tr = result.raw
    thin = int(result.config["thin"])
    draws = {"log posterior density": np.asarray(tr.logdensity).reshape(C, -1)}
    if result.model.learns_noise:
        # A heteroscedastic model's sigma is the level where its noise head outputs zero.
        where = ", at g(x) = 0" if getattr(result.model, "heteroscedastic", False) else ""
        if getattr(result.model, "noise_floor", 0.0):
            where += ", floor not included"
        draws[f"noise sigma ({result.target_name} units{where})"] = (
            np.exp(result.draws[..., 0]) * float(result.y_scaler.scale[0])
        )
    else:
        draws["first weight"] = result.draws[..., 0]
    plots.plot_traces(list(axes[: len(draws)]), draws, steps_per_draw=thin)
    for ax in axes[: len(draws)]:
        ax.set_xlabel("production step")
        ax.set_title("Langevin trace")


def write_report(
    path: Path,
    result: Any,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> None:
    """Draw the report of a :class:`~langevin_nets.fit.FitResult` to ``path``.

    Top: the fit (curve and bands for one feature, else predictions against targets
    with 90% intervals) and the calibration (coverage of central predictive intervals
    at several levels). Below: for SMC the stage history (ESS, annealing path,
    acceptance, step size); for Langevin the traces of the log density and the noise.
    """
    smc = result.stages is not None and hasattr(result.raw, "history")
    rows = 3 if smc else 2
    fig, axes = plots.new_figure(rows, 2, figsize=(11.0, 4.0 * rows))
    _fit_panel(axes[0, 0], result, X, y, X_test, y_test)
    _calibration_panel(axes[0, 1], result)
    if smc:
        label = result.method
        plots.plot_smc_history(list(axes[1]), {label: result.raw.history},
                               int(result.particles.shape[0]), int(X.shape[0]))  # fmt: skip
        _stage_moves_panels(axes[2, 0], axes[2, 1], result)
    else:
        _trace_panels(axes[1], result)
    parts = [result.method, f"layers {list(result.model.layer_sizes)}"]
    for name, m in (("train", result.train), ("test", result.test)):
        if m is not None:
            parts.append(f"{name}: RMSE {m.rmse:.4g}, LL {m.log_likelihood:.3f}, "
                         f"cov90 {m.coverage_90:.2f}")  # fmt: skip
    if result.log_evidence is not None:
        parts.append(f"log Z {result.log_evidence:.6g}")
    fig.suptitle("  |  ".join(parts), fontsize=9)
    plots.save_figure(fig, path, dpi=100)
