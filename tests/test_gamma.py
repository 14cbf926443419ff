"""The loop-free Gamma draws of the noise prior (``langevin_nets.gamma``).

The draws must follow Gamma(a, 1) for shapes below one (the boosted branch), at one (the
sampler's worst acceptance) and above, with the shape traced; and the model's prior draw
must not hold a loop (the point of the module: ``jax.random.gamma``'s ``while_loop``
cost most of the prior draw's compilation).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from langevin_nets import BayesianMLP
from langevin_nets.gamma import log_gamma

N = 100_000


SHAPES = [0.05, 0.3, 1.0, 2.5, 10.0, 100.0]


@pytest.fixture(scope="module")
def draws():
    # One compiled program for every shape: the shape is traced.
    fn = jax.jit(jax.vmap(lambda k, a: log_gamma(k, a, (N,))))
    keys = jax.random.split(jax.random.PRNGKey(0), len(SHAPES))
    out = np.asarray(fn(keys, jnp.asarray(SHAPES)), np.float64)
    return dict(zip(SHAPES, out, strict=True))


@pytest.mark.parametrize("a", SHAPES)
def test_log_gamma_follows_the_gamma_distribution(draws, a):
    g = draws[a]
    assert np.all(np.isfinite(g))
    # Kolmogorov-Smirnov on log G (the CDF is Gamma's at exp(t)); the 0.1% critical value
    # for 1e5 draws is 1.95 / sqrt(N) = 0.0062.
    d = stats.kstest(g, lambda t: stats.gamma(a).cdf(np.exp(t))).statistic
    assert d < 1.95 / np.sqrt(N), d
    # E[log G] = digamma(a), Var[log G] = trigamma(a): within 5 Monte Carlo s.e.
    mean_se = np.sqrt(special.polygamma(1, a) / N)
    assert abs(g.mean() - special.digamma(a)) < 5 * mean_se
    var = special.polygamma(1, a)
    # Var of the sample variance: (kurtosis excess + 2) var^2 / N; the excess of log G is
    # psi'''(a) / psi'(a)^2.
    var_se = var * np.sqrt((special.polygamma(3, a) / var**2 + 2) / N)
    assert abs(g.var() - var) < 5 * var_se


def test_draws_differ_by_key_and_repeat_by_key():
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    a = np.asarray(log_gamma(k1, 1.5, (50,)))
    np.testing.assert_array_equal(a, np.asarray(log_gamma(k1, 1.5, (50,))))
    assert not np.any(a == np.asarray(log_gamma(k2, 1.5, (50,))))


def _loops(fn) -> int:
    """While loops in ``fn``'s lowered program other than threefry's (one per threefry
    function: its rounds); jax.random.gamma is one primitive in a jaxpr, so its rejection
    loop shows only once lowered."""
    text = jax.jit(fn).lower(jax.random.PRNGKey(0)).as_text()
    threefry = re.findall(r"func\.func private @threefry2x32", text)
    return text.count("stablehlo.while") - len(threefry)


def test_the_prior_draw_holds_no_loop():
    model = BayesianMLP((3, 8, 1))  # learned noise: a Gamma draw per sample
    assert _loops(lambda k: model.sample_prior(k, 32)) == 0
    # The check can fail: jax.random.gamma's draw holds one.
    assert _loops(lambda k: jax.random.gamma(k, 1.0, (32,))) > 0


def test_a_tiny_shape_stays_a_positive_noise_level():
    # log G ~ log(u) / a is far below float32's smallest normal for a = 1e-3; the prior
    # draw keeps sigma a positive float, as before.
    model = BayesianMLP((1, 4, 1), noise_shape=1e-3)
    x = np.asarray(model.sample_prior(jax.random.PRNGKey(0), 200))
    sigma = np.exp(x[:, 0].astype(np.float32))
    assert np.all(np.isfinite(x)) and np.all(sigma > 0)
    assert np.all(x[:, 0] >= np.log(np.finfo(np.float32).tiny))
