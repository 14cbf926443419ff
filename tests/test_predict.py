"""``predict`` against hand computations on a tiny sample set."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

import langevin_nets as ln

# Linear model y = w x + b with learned noise: positions are (log sigma, w, b).
MODEL = ln.BayesianMLP((1, 1))
SIGMA = np.array([0.5, 1.0, 0.2])
W = np.array([1.0, 2.0, -1.0])
B = np.array([0.0, 1.0, 0.5])
SAMPLES = np.stack([np.log(SIGMA), W, B], axis=1)
X_NEW = np.array([[0.0], [1.0], [-2.0]])
Y = np.array([0.3, 1.5, -0.4])
MU = W[:, None] * X_NEW[:, 0] + B[:, None]  # (S, n)


def hand(weights):
    """Mean, epistemic std and total std of the mixture sum_s w_s N(mu_s, sigma_s^2)."""
    mean = weights @ MU
    var_f = weights @ (MU - mean) ** 2
    var = var_f + weights @ SIGMA**2
    return mean, np.sqrt(var_f), np.sqrt(var)


def mixture_quantile(q, weights, i):
    cdf = lambda t: weights @ stats.norm.cdf(t, MU[:, i], SIGMA) - q  # noqa: E731
    return optimize.brentq(cdf, -50, 50, xtol=1e-12)


def hand_lpd(weights):
    ll = stats.norm.logpdf(Y[None, :], MU, SIGMA[:, None])
    return logsumexp(np.log(weights)[:, None] + ll, axis=0)


LOG_WEIGHTS = np.log(np.array([3.0, 2.0, 1.0])) + 7.0  # unnormalised on purpose


@pytest.mark.parametrize("log_weights", [None, LOG_WEIGHTS], ids=["uniform", "weighted"])
def test_summaries_match_hand_computation(log_weights):
    weights = np.full(3, 1 / 3) if log_weights is None else np.array([3, 2, 1]) / 6
    pred = ln.predict(MODEL, SAMPLES, X_NEW, log_weights=log_weights)
    mean, std_f, std = hand(weights)
    np.testing.assert_allclose(pred.weights, weights, rtol=1e-6)
    np.testing.assert_allclose(pred.mean, mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pred.std_without_noise, std_f, rtol=1e-5)
    np.testing.assert_allclose(pred.std, std, rtol=1e-5)
    assert pred.samples.shape == (3, 3, 1) and pred.mean.shape == (3,)
    np.testing.assert_allclose(pred.sigma, SIGMA, rtol=1e-6)

    # Predictive band with noise: quantiles of the Gaussian mixture (bisection in float32).
    lo, hi = pred.interval(0.8)
    for i in range(3):
        assert float(lo[i]) == pytest.approx(mixture_quantile(0.1, weights, i), abs=1e-5)
        assert float(hi[i]) == pytest.approx(mixture_quantile(0.9, weights, i), abs=1e-5)

    # Without noise: weighted quantiles of the three network outputs. With these weights the
    # 0.1 quantile is the smallest output and the 0.9 quantile the largest...
    lo_f, hi_f = pred.interval(0.8, noise=False)
    np.testing.assert_allclose(lo_f, MU.min(0), rtol=1e-6)
    np.testing.assert_allclose(hi_f, MU.max(0), rtol=1e-6)
    # ...while a 0.2 band is the weighted median of each point.
    med_lo, med_hi = pred.interval(0.2, noise=False)
    order = np.argsort(MU, axis=0)
    cum = np.cumsum(weights[order], axis=0)
    for i in range(3):
        expect_lo = MU[order[np.argmax(cum[:, i] >= 0.4), i], i]
        expect_hi = MU[order[np.argmax(cum[:, i] >= 0.6), i], i]
        assert float(med_lo[i]) == pytest.approx(expect_lo)
        assert float(med_hi[i]) == pytest.approx(expect_hi)

    np.testing.assert_allclose(
        pred.pointwise_log_predictive_density(Y), hand_lpd(weights), rtol=1e-5
    )
    assert pred.log_predictive_density(Y) == pytest.approx(hand_lpd(weights).mean(), rel=1e-5)
    assert pred.rmse(Y) == pytest.approx(np.sqrt(np.mean((Y - mean) ** 2)), rel=1e-5)

    lo9 = [mixture_quantile(0.05, weights, i) for i in range(3)]
    hi9 = [mixture_quantile(0.95, weights, i) for i in range(3)]
    inside = np.mean([(lo9[i] <= Y[i] <= hi9[i]) for i in range(3)])
    assert pred.coverage(Y, 0.9) == pytest.approx(inside)


def test_single_gaussian_interval():
    # One sample, x = 0: the predictive law is N(b, sigma^2) exactly.
    pred = ln.predict(MODEL, np.array([np.log(0.7), 3.0, -1.2]), [[0.0]])
    lo, hi = pred.interval(0.9)
    z = 1.6448536269514722  # Phi^-1(0.95)
    assert float(lo[0]) == pytest.approx(-1.2 - z * 0.7, abs=1e-5)
    assert float(hi[0]) == pytest.approx(-1.2 + z * 0.7, abs=1e-5)
    assert float(pred.std[0]) == pytest.approx(0.7) and float(pred.std_without_noise[0]) == 0.0
    assert pred.log_predictive_density([-1.2]) == pytest.approx(
        stats.norm.logpdf(0, 0, 0.7), rel=1e-6
    )


def test_coverage_and_rmse_helpers():
    # One sample N(0, 1) at 10 points: coverage counts targets inside +-1.645.
    pred = ln.predict(MODEL, np.array([0.0, 0.0, 0.0]), np.zeros((10, 1)))
    y = np.array([0.0, 0.5, -1.0, 1.6, -1.64, 1.66, -1.7, 3.0, 0.1, -0.1])
    assert pred.coverage(y, 0.9) == pytest.approx(0.7)
    assert pred.coverage(y, 0.5) == pytest.approx(0.4)  # |y| <= 0.674
    assert pred.rmse(y) == pytest.approx(np.sqrt(np.mean(y**2)), rel=1e-6)


class FakeTrace(NamedTuple):
    positions: np.ndarray


class FakeSMC(NamedTuple):
    particles: np.ndarray
    log_weights: np.ndarray


def test_input_kinds_give_the_same_prediction():
    ref = ln.predict(MODEL, SAMPLES, X_NEW, log_weights=LOG_WEIGHTS)
    smc = ln.predict(MODEL, FakeSMC(SAMPLES, LOG_WEIGHTS), X_NEW)
    np.testing.assert_allclose(smc.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(smc.std, ref.std, rtol=1e-6)
    # Explicit log_weights override the SMC result's own.
    override = ln.predict(MODEL, FakeSMC(SAMPLES, np.zeros(3)), X_NEW, log_weights=LOG_WEIGHTS)
    np.testing.assert_allclose(override.mean, ref.mean, rtol=1e-6)

    # A (chains, samples, dim) trace is flattened; a Posterior stands in for its model.
    chains = np.stack([SAMPLES, SAMPLES])
    post = MODEL.posterior(X_NEW, Y)
    from_trace = ln.predict(post, FakeTrace(chains), X_NEW)
    uniform = ln.predict(MODEL, SAMPLES, X_NEW)
    assert from_trace.samples.shape == (6, 3, 1)
    np.testing.assert_allclose(from_trace.mean, uniform.mean, rtol=1e-6)
    np.testing.assert_allclose(from_trace.std, uniform.std, rtol=1e-6)


def test_multi_output_shapes():
    model = ln.BayesianMLP((2, 3, 2))
    samples = np.random.default_rng(0).normal(size=(4, model.dim))
    pred = ln.predict(model, samples, np.ones((5, 2)))
    assert pred.mean.shape == pred.std.shape == pred.std_without_noise.shape == (5, 2)
    lo, hi = pred.interval(0.9)
    assert lo.shape == hi.shape == (5, 2) and np.all(lo < hi)
    assert pred.pointwise_log_predictive_density(np.zeros((5, 2))).shape == (5,)
    # Per output, the summaries are those of the matching column of the network's outputs.
    mu = np.asarray(jnp.stack([model.mean(jnp.asarray(t), jnp.ones((5, 2))) for t in samples]))
    np.testing.assert_allclose(pred.mean, mu.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.std_without_noise, mu.std(0), rtol=1e-4, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="X_new has 2 columns"):
        ln.predict(MODEL, SAMPLES, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="X_new contains NaN"):
        ln.predict(MODEL, SAMPLES, [[np.nan]])
    with pytest.raises(ValueError, match="last axis of size 3"):
        ln.predict(MODEL, SAMPLES[:, :2], X_NEW)
    with pytest.raises(ValueError, match="log_weights has 2 entries for 3 samples"):
        ln.predict(MODEL, SAMPLES, X_NEW, log_weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="no finite entry"):
        ln.predict(MODEL, SAMPLES, X_NEW, log_weights=np.full(3, -np.inf))
    pred = ln.predict(MODEL, SAMPLES, X_NEW)
    for level in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            pred.interval(level)
    with pytest.raises(ValueError, match="y must have 3 rows"):
        pred.rmse(np.zeros(4))
    with pytest.raises(ValueError, match="y contains NaN"):
        pred.log_predictive_density([0.0, np.nan, 0.0])


def test_zero_weight_samples_are_ignored():
    lw = np.array([0.0, -np.inf, 0.0])
    pred = ln.predict(MODEL, SAMPLES, X_NEW, log_weights=lw)
    keep = ln.predict(MODEL, SAMPLES[[0, 2]], X_NEW)
    np.testing.assert_allclose(pred.mean, keep.mean, rtol=1e-6)
    np.testing.assert_allclose(pred.std, keep.std, rtol=1e-6)
    assert np.isfinite(pred.log_predictive_density(Y))
    np.testing.assert_allclose(
        jnp.asarray(pred.interval(0.9)), jnp.asarray(keep.interval(0.9)), atol=1e-5
    )


def test_a_prediction_compiles_one_program_per_summary():
    # Op by op, a prediction at new shapes compiled some 60 programs (about 3 s of a small
    # command-line fit); each summary is one jitted program now, and nothing recompiles
    # at shapes already seen.
    from helpers import count_compiles

    rng = np.random.default_rng(1)
    samples = 0.1 * rng.normal(size=(5, MODEL.dim))

    def everything(n):
        X = np.linspace(-1.0, 1.0, n)[:, None]
        y = np.sin(X[:, 0])
        pred = ln.predict(MODEL, samples, X, log_weights=np.arange(5.0))
        pred.interval(0.9)
        pred.interval(0.5, noise=False)
        return pred.log_predictive_density(y), pred.rmse(y), pred.coverage(y, 0.8)

    count_compiles(everything, 7)
    assert count_compiles(everything, 7)[1] == 0
    # Nine summaries (outputs, moments, squeeze, two bands, density, mean, rmse,
    # coverage) and a few conversions at the new row count.
    assert count_compiles(everything, 8)[1] <= 12


def test_models_differing_in_hyperparameters_share_the_prediction_program():
    # The outputs program is keyed on the model's structure, its noise level and floor
    # traced: each split of a benchmark (its own noise floor) and each prior scale of a
    # sweep reuses it, and each prediction still has its own noise.
    from helpers import count_compiles

    X = np.linspace(-1.0, 1.0, 9)[:, None]
    rng = np.random.default_rng(2)

    def outputs(model):
        pred = ln.predict(model, samples[:, : model.dim], X)
        return pred.samples, pred.noise

    def hetero(scale, floor):
        return ln.BayesianMLP(
            (1, 3, 1), prior_scale=scale, heteroscedastic=True, noise_floor=floor
        )

    samples = 0.1 * rng.normal(size=(6, hetero(1.0, 0.1).dim))
    count_compiles(outputs, hetero(1.0, 0.1))
    (mu, noise), n = count_compiles(outputs, hetero(2.0, 0.3))
    assert n == 0
    exact = hetero(2.0, 0.3).noise_level(samples[0], X)
    np.testing.assert_allclose(noise[0], exact, rtol=1e-6)
    assert float(noise.min()) >= 0.3 * (1 - 1e-6)
    # A fixed noise level is a leaf too.
    count_compiles(outputs, ln.BayesianMLP((1, 3, 1), noise_std=0.5))
    (_, noise), n = count_compiles(outputs, ln.BayesianMLP((1, 3, 1), noise_std=0.25))
    assert n == 0 and np.allclose(noise, 0.25)
