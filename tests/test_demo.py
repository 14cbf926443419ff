"""The demo end to end (quick sizes), its output directory handling, and its diagnostics.

The quick demo runs once per module with a stand-in SMC engine, so the test checks the
demo (files, summary, fit quality of the Langevin posterior) without paying for three
SMC compilations; one further test runs the real engine through the demo's SMC adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.image as mpimg
import numpy as np
import pytest

from langevin_nets import demo as demo_mod
from langevin_nets.demo import GENERATOR, SMCSpec, run_demo
from langevin_nets.model import BayesianMLP

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _FakeHistory(NamedTuple):
    lam: np.ndarray
    num_data: np.ndarray
    ess: np.ndarray
    resampled: np.ndarray
    acceptance_rate: np.ndarray


class _FakeResult(NamedTuple):
    particles: Any
    log_weights: Any
    log_evidence: float
    history: _FakeHistory
    num_stages: int
    hit_max_stages: bool
    num_gradient_evaluations: int


def _fake_smc(posterior, key, *, num_particles, schedule="adaptive", num_stages=None,
              progress_bar=False, **options):  # fmt: skip
    """Importance sampling from the prior, dressed as an SMC result (interface stand-in)."""
    particles = posterior.sample_prior(key, num_particles)
    loglik = jax.vmap(posterior.loglikelihood)(particles)
    log_weights = loglik - jax.scipy.special.logsumexp(loglik)
    stages = num_stages or 3
    n = posterior.num_data
    data = schedule == "data"
    history = _FakeHistory(
        lam=np.ones(stages) if data else np.linspace(0.1, 1.0, stages),
        num_data=np.linspace(n / stages, n, stages).astype(int) if data else np.full(stages, n),
        ess=np.full(stages, num_particles / 2.0),
        resampled=np.arange(stages) % 2 == 0,
        acceptance_rate=np.full(stages, 0.8),
    )
    log_evidence = float(jax.scipy.special.logsumexp(loglik) - jnp.log(num_particles))
    return _FakeResult(particles, log_weights, log_evidence, history, stages, False,
                       num_particles * stages)  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One quick demo into a directory holding a previous demo's (stale) output."""
    out = tmp_path_factory.mktemp("demo") / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"generator": GENERATOR}))
    (out / "stale.txt").write_text("from a previous run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_mod, "_load_smc", lambda: _fake_smc)
        summary = run_demo(out, quiet=True, quick=True, seed=0)
    return out, summary


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert path.stat().st_size > 20_000, f"{path.name} is suspiciously small"
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 400
    # Not a blank canvas: a plot has many distinct grey levels.
    assert np.unique(np.round(img[..., :3].mean(axis=-1), 2)).size > 20


def _finite_numbers(obj: Any, where: str = "summary") -> None:
    """Every number in the summary is finite (NaN would have become null)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_numbers(v, f"{where}[{i}]")
    elif isinstance(obj, bool | str):
        pass
    else:
        assert isinstance(obj, int | float) and np.isfinite(obj), f"{where} = {obj!r}"


def test_files_written_and_stale_output_replaced(demo_run):
    out, _ = demo_run
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fit.png", "smc_history.png", "summary.json", "traces.png"]
    for name in ("fit.png", "traces.png", "smc_history.png"):
        _check_png(out / name)
    # Nothing left beside it: the staging directory was renamed, the old one removed.
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_summary_fields(demo_run):
    out, summary = demo_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["generator"] == GENERATOR
    assert summary["seed"] == 0 and summary["quick"] is True
    assert summary["model"]["layer_sizes"] == [1, 50, 50, 1]
    assert summary["model"]["num_parameters"] == BayesianMLP((1, 50, 50, 1)).dim
    assert summary["problem"]["num_data"] == 50
    assert np.isfinite(summary["map"]["loss"]) and summary["map"]["sigma"] > 0
    assert list(summary["methods"]) == ["langevin", "smc_data", "smc_geometric", "smc_adaptive"]
    assert summary["files"] == ["summary.json", "fit.png", "traces.png", "smc_history.png"]
    for key in ("langevin_nets", "jax", "jaxlib", "optax", "numpy", "python"):
        assert isinstance(summary["versions"][key], str)
    assert summary["versions"]["jax"] == jax.__version__
    walls = summary["wall_time_s"]
    assert set(walls) >= {"map", "langevin", "smc_data", "evaluation_and_plots", "total"}
    assert all(v > 0 for v in walls.values())
    assert walls["total"] >= walls["map"] + walls["langevin"]

    common = {
        "label", "sampler", "num_samples", "sigma", "train_rmse", "rmse_to_true_curve",
        "coverage_of_true_curve_90", "coverage_of_data_90", "log_predictive_density_train",
        "acceptance_rate", "num_gradient_evaluations", "wall_time_s",
    }  # fmt: skip
    for name, m in summary["methods"].items():
        assert common <= set(m), f"{name} lacks {common - set(m)}"
        _finite_numbers(m, name)
        # The stand-in's weights sit almost all on one particle, so the band is that
        # particle's sigma and the weighted mean is it plus what the other weights add:
        # with seed 0, smc_geometric puts 2.5e-6 on a particle whose sigma is 1.67 above the
        # top one's, which moves the mean 4e-6 above the band. The mean can leave the band
        # by at most (1 - top weight) x (sigma range); 1e-4 relative bounds that here.
        s = m["sigma"]
        assert s["lower_90"] <= s["upper_90"]
        slack = 1e-4 * abs(s["mean"])
        assert s["lower_90"] - slack <= s["mean"] <= s["upper_90"] + slack
        assert 0.0 <= m["coverage_of_true_curve_90"] <= 1.0
    for name in ("smc_data", "smc_geometric", "smc_adaptive"):
        m = summary["methods"][name]
        assert {"log_evidence", "num_stages", "history"} <= set(m)
        assert len(m["history"]["ess"]) == m["num_stages"]
    assert summary["methods"]["smc_data"]["sampler"]["schedule"] == "data"
    assert summary["methods"]["smc_geometric"]["sampler"]["num_stages"] >= 2


def test_langevin_posterior_is_sensible(demo_run):
    """The quick Langevin posterior recovers the noise and covers the true curve.

    Bounds: the posterior sd of sigma is about sigma / sqrt(2 n) = 0.5 / 10 = 0.05, so
    [0.35, 0.75] leaves 3 sd plus the realised noise's own spread (the data's noise sd is
    itself within +-0.05 of 0.5 for most seeds). The training RMSE of a good fit is near
    sigma; 90% bands hold about 45 of the 50 data points (binomial sd 2.1 points), so 0.7
    is 4.7 sd below. The log predictive density of a Gaussian with sigma = 0.5 is
    -log(0.5 sqrt(2 pi)) - 1/2 = -0.73 per point on average. A fit that misses the curve
    (RMSE ~ 1) or a collapsed band fails these; the quick demo reaches RMSE ~ 0.11 and
    full coverage. The curve bounds are for the seed-0 data (the README's): with seed 1
    the noise happens to average +0.33 sd (2.3 standard errors, mostly on the right) and
    every method's posterior, honestly, misses the curve there (coverage ~0.4).
    """
    m = demo_run[1]["methods"]["langevin"]
    assert m["num_samples"] == 4 * 40
    assert 0.35 < m["sigma"]["mean"] < 0.75
    assert 0.35 < m["train_rmse"] < 0.65
    assert m["rmse_to_true_curve"] < 0.25
    assert m["coverage_of_true_curve_90"] >= 0.8
    assert 0.7 <= m["coverage_of_data_90"] <= 1.0
    assert -1.0 < m["log_predictive_density_train"] < -0.5
    assert m["num_divergent"] == 0
    assert m["acceptance_rate"] == 1.0  # unadjusted BAOAB accepts every step
    cfg = demo_mod.demo_config(quick=True)
    steps = cfg.num_burnin + cfg.num_warmup + cfg.num_samples * cfg.thin
    assert m["num_gradient_evaluations"] == cfg.num_chains * (steps + 3)


def test_printed_summary_names_the_outputs(demo_run, capsys):
    out, summary = demo_run
    demo_mod._print_summary(summary, out, summary["files"])
    text = capsys.readouterr().out
    assert str(out) in text and "fit.png" in text
    for name in summary["methods"]:
        assert name in text
    rmse = summary["methods"]["langevin"]["rmse_to_true_curve"]
    assert f"{rmse:.3f}" in text


def test_out_path_that_is_a_file_raises(tmp_path):
    f = tmp_path / "taken"
    f.write_text("not a directory")
    with pytest.raises(ValueError, match="output path .* is a file"):
        run_demo(f, quiet=True, quick=True)
    assert f.read_text() == "not a directory"


def test_refuses_to_replace_a_directory_that_is_not_demo_output(tmp_path):
    d = tmp_path / "precious"
    d.mkdir()
    (d / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="holds no previous demo output"):
        run_demo(d, quiet=True, quick=True)
    assert (d / "data.csv").read_text() == "1,2\n"


def test_bad_seed_raises(tmp_path):
    with pytest.raises(TypeError, match="seed"):
        run_demo(tmp_path / "o", quiet=True, seed=1.5)
    assert not (tmp_path / "o").exists()


def test_real_smc_engine_through_the_demo_adapter():
    """The demo's SMC adapter and evaluation accept the engine's real result."""
    smc = demo_mod._load_smc()
    if smc is None:
        pytest.skip("langevin_nets.smc is not importable")
    X = np.linspace(0, 1, 20)[:, None]
    y = np.sin(4 * X)
    model = BayesianMLP((1, 8, 1))
    posterior = model.posterior(X, y)
    spec = SMCSpec("smc_geometric", "geometric", {"schedule": "geometric", "num_stages": 3,
                                                  "num_mcmc_steps": 1})  # fmt: skip
    run = demo_mod._run_smc(smc, posterior, jax.random.PRNGKey(0), spec, 16, quiet=True)
    assert run.positions.shape == (16, model.dim)
    assert run.metrics["num_stages"] == 3 == len(run.metrics["history"]["ess"])
    assert np.isfinite(run.metrics["log_evidence"])
    grid = np.linspace(0, 1, 30)[:, None]
    metrics, curves = demo_mod._evaluate(run, model, X, y, grid, np.sin(4 * grid[:, 0]))
    assert np.all(curves.lower <= curves.upper)
    _finite_numbers(metrics)


def test_split_rhat_and_ess_match_an_ar1_process():
    """ESS of AR(1) chains against the closed form N (1 - phi) / (1 + phi).

    For 4 chains of 4000 draws with phi = 0.8 the exact value is 1777.8; over 200 seeds
    the estimator's mean was 1767 and its sd 128, so 4.5 sd (575) bounds a fixed seed.
    Chains with different means must give R-hat far above 1.
    """
    rng = np.random.default_rng(7)
    phi, m, n = 0.8, 4, 4000
    e = rng.normal(size=(m, n))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    rhat, ess = demo_mod._split_rhat_ess(x)
    assert abs(ess - m * n * (1 - phi) / (1 + phi)) < 575
    assert abs(rhat - 1.0) < 0.02
    shifted = x + 3.0 * np.arange(m)[:, None]
    assert demo_mod._split_rhat_ess(shifted)[0] > 1.5


def test_report_plots_render(tmp_path):
    """The plots the CLI's report reuses draw valid images and check their inputs."""
    from langevin_nets import plots

    rng = np.random.default_rng(0)
    y = rng.normal(size=40)
    mean = y + 0.3 * rng.normal(size=40)
    fig, axes = plots.new_figure(1, 2, figsize=(10, 4))
    plots.plot_calibration(axes[0, 0], [0.5, 0.8, 0.9, 0.95], [0.45, 0.8, 0.88, 0.97])
    plots.plot_predictions_vs_targets(axes[0, 1], y, mean, mean - 0.5, mean + 0.5)
    path = tmp_path / "report.png"
    plots.save_figure(fig, path)
    _check_png(path)
    with pytest.raises(ValueError, match="differ in length"):
        plots.plot_calibration(axes[0, 0], [0.5, 0.9], [0.5])
    with pytest.raises(ValueError, match="axes"):
        plots.plot_traces([axes[0, 0]], {"a": np.zeros((2, 5)), "b": np.zeros((2, 5))})
