"""The heteroscedastic model: noise standard deviation ``sigma * exp(g(x))``.

Its densities and predictive are checked against hand computations with scipy; the
end-to-end tests check that SMC finds input-dependent noise where the data have it, that
the evidence tells the two noise models apart, and that every output of ``fit`` carries
the per-point noise.
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
from scipy import optimize, stats
from scipy.special import logsumexp

import langevin_nets as ln
from langevin_nets.cli import main
from langevin_nets.fit import FitResult, fit
from langevin_nets.io.config import InputError
from langevin_nets.networks import mlp

# A linear heteroscedastic model, layer_sizes (1, 1): position
# [log sigma, W[0,0] (mean slope), W[0,1] (noise slope), b[0] (mean), b[1] (noise offset)].
LINEAR = ln.BayesianMLP((1, 1), heteroscedastic=True)


def _linear_parts(position: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_sigma, w_mu, w_g, b_mu, b_g = position
    return w_mu * x + b_mu, np.exp(log_sigma + w_g * x + b_g)


def test_layout_and_repr() -> None:
    homo = ln.BayesianMLP((3, 5, 2))
    hetero = ln.BayesianMLP((3, 5, 2), heteroscedastic=True)
    # The last layer doubles: 5 * 2 more weights and 2 more biases.
    assert hetero.dim == homo.dim + 5 * 2 + 2
    assert hetero.parameter_names()[-1] == "b_1[3]"
    assert "heteroscedastic=True" in repr(hetero) and "heteroscedastic" not in repr(homo)
    assert hetero != ln.BayesianMLP((3, 5, 2)) and hash(hetero) == hash(
        ln.BayesianMLP((3, 5, 2), heteroscedastic=True)
    )
    assert LINEAR.parameter_names() == ["log_sigma", "W_0[0,0]", "W_0[0,1]", "b_0[0]", "b_0[1]"]


def test_loglikelihood_and_noise_level_match_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 30)
    y = rng.normal(size=30)
    position = np.array([-0.3, 1.2, 0.8, -0.5, 0.2])
    mu, sd = _linear_parts(position, x)
    ll = LINEAR.loglikelihood_per_datum(jnp.asarray(position), x[:, None], y[:, None])
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, mu, sd), rtol=1e-5)
    m, s = LINEAR.mean_and_noise(jnp.asarray(position), x[:, None])
    np.testing.assert_allclose(m[:, 0], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s[:, 0], sd, rtol=1e-5)
    np.testing.assert_allclose(LINEAR.noise_level(jnp.asarray(position), x[:, None]), s)
    np.testing.assert_allclose(LINEAR.mean(jnp.asarray(position), x[:, None]), m)
    # Its posterior is the prior times this likelihood.
    post = LINEAR.posterior(x[:, None], y)
    expect = float(LINEAR.logprior(jnp.asarray(position))) + stats.norm.logpdf(y, mu, sd).sum()
    assert float(post.logdensity(jnp.asarray(position))) == pytest.approx(expect, rel=1e-5)


def test_a_zero_noise_head_is_the_homoscedastic_model() -> None:
    # Same hidden layer and mean output; the noise head's weights and bias set to zero.
    homo = ln.BayesianMLP((2, 4, 1), activation="relu", prior="fan_in", prior_scale=1.5)
    hetero = ln.BayesianMLP((2, 4, 1), activation="relu", prior="fan_in", prior_scale=1.5,
                            heteroscedastic=True)  # fmt: skip
    p = np.asarray(homo.sample_prior(jax.random.PRNGKey(1)))
    parts = homo.constrained(p)
    W1 = np.concatenate([parts["W_1"], np.zeros((4, 1))], axis=1)
    b1 = np.concatenate([parts["b_1"], np.zeros(1)])
    q = np.concatenate([p[:1], parts["W_0"].ravel(), parts["b_0"], W1.ravel(), b1])
    assert q.shape == (hetero.dim,)
    X = np.random.default_rng(2).normal(size=(25, 2))
    y = np.random.default_rng(3).normal(size=(25, 1))
    np.testing.assert_allclose(
        hetero.loglikelihood_per_datum(jnp.asarray(q), X, y),
        homo.loglikelihood_per_datum(jnp.asarray(p), X, y),
        rtol=1e-5,
    )
    # The prior gains the head's terms at zero: fan-in N(0, s^2 / 4) weights, N(0, s^2) bias.
    head = 4 * stats.norm.logpdf(0.0, 0.0, 1.5 / 2.0) + stats.norm.logpdf(0.0, 0.0, 1.5)
    assert float(hetero.logprior(jnp.asarray(q))) == pytest.approx(
        float(homo.logprior(jnp.asarray(p))) + head, rel=1e-5
    )


def test_prediction_uses_the_noise_at_each_point() -> None:
    samples = np.array([[-0.3, 1.2, 0.8, -0.5, 0.2], [0.1, 0.9, -0.4, 0.3, -0.1]])
    log_weights = np.log([0.7, 0.3])
    x = np.array([-1.0, 0.0, 1.5])
    y = np.array([-1.5, 0.4, 1.0])
    pred = ln.predict(LINEAR, samples, x[:, None], log_weights=log_weights)
    mus, sds = zip(*(_linear_parts(s, x) for s in samples), strict=True)
    mus, sds, w = np.array(mus), np.array(sds), np.array([0.7, 0.3])
    assert pred.sigma.shape == (2, 3, 1) and pred.noise.shape == (2, 3, 1)
    np.testing.assert_allclose(pred.noise[..., 0], sds, rtol=1e-5)
    mean = w @ mus
    np.testing.assert_allclose(pred.mean, mean, rtol=1e-5, atol=1e-6)
    var = w @ (mus - mean) ** 2 + w @ sds**2
    np.testing.assert_allclose(pred.std, np.sqrt(var), rtol=1e-5)
    lpd = logsumexp(np.log(w)[:, None] + stats.norm.logpdf(y, mus, sds), axis=0)
    np.testing.assert_allclose(pred.pointwise_log_predictive_density(y), lpd, rtol=1e-5)
    # The 90% band: the mixture's 5% and 95% quantiles, solved here by scipy.
    lo, hi = pred.interval(0.9)
    for i in range(3):

        def cdf(t: float, i: int = i) -> float:
            return float(w @ stats.norm.cdf(t, mus[:, i], sds[:, i]))

        for q, got in ((0.05, lo[i]), (0.95, hi[i])):
            expect = optimize.brentq(lambda t, q=q: cdf(t) - q, -50, 50)
            assert float(got) == pytest.approx(expect, abs=1e-4)
    inside = np.mean([(lo[i] <= y[i] <= hi[i]) for i in range(3)])
    assert pred.coverage(y, 0.9) == pytest.approx(inside)


def test_bad_heteroscedastic_options_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="cannot take a fixed noise_std"):
        ln.BayesianMLP((1, 1), heteroscedastic=True, noise_std=0.5)
    with pytest.raises(TypeError, match="heteroscedastic must be True or False"):
        ln.BayesianMLP((1, 1), heteroscedastic="yes")
    # A user network must give the mean and the noise head.
    with pytest.raises(ValueError, match="must have 2 \\* d_out = 2 outputs"):
        ln.BayesianMLP((1, 3, 1), heteroscedastic=True, network=mlp((1, 3, 1)))
    ok = ln.BayesianMLP((1, 3, 1), heteroscedastic=True, network=mlp((1, 3, 2), "relu"))
    assert ok.dim == 1 + 3 + 3 + 3 * 2 + 2

    import langevin_nets.fit as fit_module

    monkeypatch.setattr(fit_module, "_run", lambda *a, **k: pytest.fail("pipeline ran"))
    X = np.linspace(0, 1, 10)[:, None]
    with pytest.raises(InputError, match="heteroscedastic learns the noise level"):
        fit_module.fit(X, X[:, 0], heteroscedastic=True, noise_std=1.0)
    with pytest.raises(TypeError, match="heteroscedastic must be"):
        fit_module.fit(X, X[:, 0], heteroscedastic="maybe")


def test_cli_rejects_heteroscedastic_with_a_fixed_noise(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(10)))
    out = tmp_path / "out"
    rc = main(["fit", "--data", str(data), "--heteroscedastic", "--noise-std", "1",
               "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--heteroscedastic learns the noise level" in err[0] and "--noise-std" in err[0]
    assert not out.exists()


def _growing_noise(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = sin(2x) + noise whose sd grows from 0.05 at x = -1 to 0.6 at x = 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    sd = 0.05 + 0.55 * (x + 1) / 2
    return x[:, None], np.sin(2 * x) + sd * rng.normal(size=n), sd


@pytest.fixture(scope="module")
def growing_noise_fits() -> dict[str, FitResult]:
    X, y, _ = _growing_noise(150, 0)
    Xt, yt, _ = _growing_noise(300, 1)
    common = dict(method="smc-adaptive", hidden=(16,), activation="tanh", particles=32,
                  steps=3, integration_steps=15, seed=0)  # fmt: skip
    return {
        name: fit(X, y, Xt, yt, heteroscedastic=h, **common)
        for name, h in (("homo", False), ("hetero", True))
    }


def test_smc_recovers_input_dependent_noise(growing_noise_fits) -> None:
    homo, hetero = growing_noise_fits["homo"], growing_noise_fits["hetero"]
    # The evidence prefers the true noise model by far (by 33 nats on this seed; a
    # Bayes factor of e^10 is already decisive).
    assert hetero.log_evidence > homo.log_evidence + 10.0
    assert hetero.test.log_likelihood > homo.test.log_likelihood + 0.2
    # The predictive noise follows the truth: sd 0.08 at x = -0.9 and 0.57 at x = 0.9.
    p = hetero.predict(np.array([[-0.9], [0.9]]), 0.9)
    noise = np.sqrt(np.asarray(p.std) ** 2 - np.asarray(p.std_without_noise) ** 2)
    assert 0.04 < noise[0] < 0.16 and 0.4 < noise[1] < 0.8
    # The homoscedastic fit can only average them.
    q = homo.predict(np.array([[-0.9], [0.9]]), 0.9)
    q_noise = np.sqrt(np.asarray(q.std) ** 2 - np.asarray(q.std_without_noise) ** 2)
    assert abs(q_noise[0] - q_noise[1]) < 0.05 * q_noise[0]


def test_constant_noise_is_not_mistaken_for_varying_noise() -> None:
    # Homoscedastic data: the extra head must not buy a better evidence (Occam's razor).
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, 150)
    y = np.sin(2 * x) + 0.3 * rng.normal(size=150)
    common = dict(method="smc-adaptive", hidden=(16,), activation="tanh", particles=32,
                  steps=3, integration_steps=15, seed=0)  # fmt: skip
    homo = fit(x[:, None], y, heteroscedastic=False, **common)
    hetero = fit(x[:, None], y, heteroscedastic=True, **common)
    assert hetero.log_evidence < homo.log_evidence + 1.0


def test_cli_fit_writes_per_point_noise(tmp_path: Path, capsys) -> None:
    X, y, _ = _growing_noise(60, 2)
    data = tmp_path / "train.csv"
    data.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(X[:, 0], y, strict=True)))
    out = tmp_path / "run"
    rc = main(["fit", "--data", str(data), "--test-fraction", "0.25", "--heteroscedastic",
               "--hidden", "8", "--particles", "16", "--steps", "2", "--integration-steps", "5",
               "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["heteroscedastic"] is True
    assert summary["model"]["heteroscedastic"] is True
    assert math.isfinite(summary["test"]["log_likelihood"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        idata = az.from_netcdf(str(out / "posterior.nc"))
    # The last layer has the mean and the noise head.
    assert idata.posterior["W_1"].shape[-1] == 2 and idata.posterior["b_1"].shape[-1] == 2
    assert "log_likelihood" in idata.groups() and "posterior_predictive" in idata.groups()
    assert np.all(np.isfinite(idata.posterior_predictive["y"].values))
    assert "heteroscedastic = true" in (out / "config.toml").read_text()


def test_a_discrete_target_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    import langevin_nets.fit as fit_module

    monkeypatch.setattr(fit_module, "_run", lambda *a, **k: None)
    X = np.linspace(0, 1, 60)[:, None]
    grades = np.arange(60) % 6  # six values, like wine quality
    with pytest.warns(fit_module.DiscreteTargetWarning, match="only 6 distinct values"):
        fit_module.fit(X, grades, heteroscedastic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fit_module.DiscreteTargetWarning)
        fit_module.fit(X, grades, heteroscedastic=False)  # one noise level: no collapse
        fit_module.fit(X, X[:, 0] ** 2, heteroscedastic=True)  # continuous


def test_cli_warns_once_about_a_discrete_target(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i / 30},{i % 3}\n" for i in range(30)))
    rc = main(["fit", "--data", str(data), "--heteroscedastic", "--hidden", "2",
               "--particles", "8", "--steps", "1", "--integration-steps", "2",
               "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = [ln_ for ln_ in err.splitlines() if "distinct values" in ln_]
    assert len(lines) == 1 and lines[0].startswith("warning: the target takes only 3")
