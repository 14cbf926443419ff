"""The noise floor: a fixed noise standard deviation ``q`` added in quadrature.

The densities are checked against scipy with the noise ``sqrt(q**2 + s**2)``; ``fit``
is checked for the units of the floor (the target's, converted to the standardised ones)
and for ``"auto"``, the rounding noise ``h / sqrt(12)`` of a target on a grid.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import langevin_nets as ln
from langevin_nets.cli import main
from langevin_nets.fit import DiscreteTargetWarning, fit, rounding_noise
from langevin_nets.io.config import InputError

# Linear heteroscedastic: [log sigma, W (mean), W (noise), b (mean), b (noise)].
POSITION = np.array([-0.3, 1.2, 0.8, -0.5, 0.2])


def _data(n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(-2, 2, n), rng.normal(size=n)


@pytest.mark.parametrize("floor", [0.0, 0.3, 2.0])
def test_heteroscedastic_likelihood_adds_the_floor_in_quadrature(floor: float) -> None:
    x, y = _data()
    model = ln.BayesianMLP((1, 1), heteroscedastic=True, noise_floor=floor)
    log_sigma, w_mu, w_g, b_mu, b_g = POSITION
    mu, s = w_mu * x + b_mu, np.exp(log_sigma + w_g * x + b_g)
    sd = np.sqrt(floor**2 + s**2)
    p = jnp.asarray(POSITION)
    ll = model.loglikelihood_per_datum(p, x[:, None], y[:, None])
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, mu, sd), rtol=1e-5)
    np.testing.assert_allclose(model.noise_level(p, x[:, None])[:, 0], sd, rtol=1e-5)
    # The prior does not change: sigma keeps its Gamma prior.
    plain = ln.BayesianMLP((1, 1), heteroscedastic=True)
    assert float(model.logprior(p)) == float(plain.logprior(p))


def test_homoscedastic_likelihood_and_prediction_use_the_floor() -> None:
    x, y = _data()
    model = ln.BayesianMLP((1, 1), noise_floor=0.4)
    samples = np.array([[-0.3, 1.2, -0.5], [0.5, 0.9, 0.3]])
    for p in samples:
        sd = math.hypot(0.4, math.exp(p[0]))
        ll = model.loglikelihood_per_datum(jnp.asarray(p), x[:, None], y[:, None])
        np.testing.assert_allclose(ll, stats.norm.logpdf(y, p[1] * x + p[2], sd), rtol=1e-5)
    pred = ln.predict(model, samples, x[:, None])
    expect = np.hypot(0.4, np.exp(samples[:, 0]))
    # A homoscedastic prediction keeps one noise level per sample, floor included.
    assert pred.sigma.shape == (2,)
    np.testing.assert_allclose(pred.sigma, expect, rtol=1e-6)
    np.testing.assert_allclose(pred.noise[:, :, 0], np.broadcast_to(expect[:, None], (2, 25)),
                               rtol=1e-6)  # fmt: skip
    # A fixed noise level takes the floor too.
    fixed = ln.BayesianMLP((1, 1), noise_std=0.3, noise_floor=0.4)
    ll = fixed.loglikelihood_per_datum(jnp.asarray([1.2, -0.5]), x[:, None], y[:, None])
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, 1.2 * x - 0.5, 0.5), rtol=1e-5)


def test_the_floor_bounds_the_likelihood_where_the_noise_head_collapses() -> None:
    # A noise head pushed to exp(-30): without a floor each exact fit is worth ~28 nats,
    # with it no more than the density of N(0, q) at its centre.
    x = np.array([0.0, 1.0])
    y = 2.0 * x
    p = jnp.asarray([0.0, 2.0, 0.0, 0.0, -30.0])
    free = ln.BayesianMLP((1, 1), heteroscedastic=True)
    floored = ln.BayesianMLP((1, 1), heteroscedastic=True, noise_floor=0.25)
    assert np.all(np.asarray(free.loglikelihood_per_datum(p, x[:, None], y[:, None])) > 25.0)
    got = np.asarray(floored.loglikelihood_per_datum(p, x[:, None], y[:, None]))
    np.testing.assert_allclose(got, stats.norm.logpdf(0.0, 0.0, 0.25), rtol=1e-6)
    # ... and its gradient stays finite there.
    g = jax.grad(lambda q: jnp.sum(floored.loglikelihood_per_datum(q, x[:, None], y[:, None])))(p)
    assert np.all(np.isfinite(np.asarray(g)))


def test_no_floor_is_the_model_without_one() -> None:
    assert ln.BayesianMLP((2, 3, 1), noise_floor=0.0) == ln.BayesianMLP((2, 3, 1))
    floored = ln.BayesianMLP((2, 3, 1), noise_floor=0.1)
    assert floored != ln.BayesianMLP((2, 3, 1)) and "noise_floor=0.1" in repr(floored)
    assert "noise_floor" not in repr(ln.BayesianMLP((2, 3, 1)))
    with pytest.raises(ValueError, match="noise_floor must be a non-negative finite number"):
        ln.BayesianMLP((1, 1), noise_floor=-0.1)
    with pytest.raises(TypeError, match="noise_floor must be a non-negative number"):
        ln.BayesianMLP((1, 1), noise_floor="high")


def test_rounding_noise_of_a_target_on_a_grid() -> None:
    grades = np.array([3, 5, 6, 6, 7, 8, 5, 4])
    assert rounding_noise(grades) == pytest.approx(1 / math.sqrt(12))
    assert rounding_noise(grades / 2) == pytest.approx(0.5 / math.sqrt(12))
    # Not a grid: more than 20 distinct values, or a single value.
    assert rounding_noise(np.linspace(0, 1, 21)) == 0.0
    assert rounding_noise(np.full(5, 3.0)) == 0.0


def test_fit_takes_the_floor_in_the_targets_units(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    grades = np.round(2 * X[:, 0] + 10 + rng.normal(size=40))  # spacing 1, std about 2
    common = dict(hidden=(), particles=8, steps=1, integration_steps=2, seed=0)
    with warnings.catch_warnings():
        # With a floor, a heteroscedastic fit of a discrete target is not warned about.
        warnings.simplefilter("error", DiscreteTargetWarning)
        auto = fit(X, grades, heteroscedastic=True, noise_floor="auto", **common)
    s_y = float(auto.y_scaler.scale[0])
    assert auto.resolved["noise_floor"] == pytest.approx(1 / math.sqrt(12))
    assert auto.model.noise_floor == pytest.approx(1 / math.sqrt(12) / s_y)
    given = fit(X, grades, noise_floor=0.7, **common)
    assert given.resolved["noise_floor"] == 0.7
    assert given.model.noise_floor == pytest.approx(0.7 / s_y)

    # The checks below come before anything is compiled.
    import langevin_nets.fit as fit_module

    monkeypatch.setattr(fit_module, "_run", lambda *a, **k: None)
    # Without a floor the warning stays.
    with pytest.warns(DiscreteTargetWarning, match="noise floor"):
        fit_module.fit(X, grades, heteroscedastic=True)
    monkeypatch.setattr(fit_module, "_run", lambda *a, **k: pytest.fail("pipeline ran"))
    with pytest.raises(InputError, match="noise_floor 1e\\+300 is too large"):
        fit_module.fit(X, grades, noise_floor=1e300)
    for bad in (-1.0, "high", float("nan")):
        with pytest.raises((InputError, TypeError), match="noise_floor must be a non-negative "
                                                           "number or auto"):  # fmt: skip
            fit_module.fit(X, grades, noise_floor=bad)


def test_cli_noise_floor(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i / 30},{i % 3}\n" for i in range(30)))
    out = tmp_path / "run"
    rc = main(["fit", "--data", str(data), "--heteroscedastic", "--noise-floor", "auto",
               "--hidden", "2", "--particles", "8", "--steps", "1", "--integration-steps", "2",
               "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "distinct values" not in err  # the floor answers the discrete-target warning
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["noise_floor"] == "auto"
    assert summary["model"]["noise_floor"] == pytest.approx(1 / math.sqrt(12))
    assert 'noise_floor = "auto"' in (out / "config.toml").read_text()

    rc = main(["fit", "--data", str(data), "--noise-floor", "-2", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--noise-floor must be a non-negative number or auto" in err[0]
    assert not (tmp_path / "x").exists()
