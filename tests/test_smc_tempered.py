"""The stage density of tempering SMC, ``log p + lam * sum log p(y_i | .)``, with its custom VJP.

Its value and gradients must be those of the plain expression (up to float rounding), for
any exponent, under ``jit`` and ``vmap`` with the data traced, as the engine uses it; and
they must stay non-finite where the plain form is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin_nets.model import BayesianMLP
from langevin_nets.smc.tempered import tempered_logdensity

MODEL = BayesianMLP((2, 8, 1), activation="tanh")


def posterior(n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.sin(X[:, :1]) + 0.1 * rng.normal(size=(n, 1))
    return MODEL.posterior(X, y)


def plain(post, lam):
    return lambda t: post.logprior(t) + lam * jnp.sum(post.loglikelihood_per_datum(t))


def fast(post, lam):
    return tempered_logdensity(post.logprior, post.loglikelihood_per_datum, lam)


@pytest.mark.parametrize("lam", [0.0, 1e-4, 0.37, 1.0])
def test_value_and_gradient_match_the_plain_form(lam):
    post = posterior()
    thetas = post.sample_prior(jax.random.PRNGKey(1), 5)
    for theta in thetas:
        v0, g0 = jax.value_and_grad(plain(post, lam))(theta)
        v1, g1 = jax.value_and_grad(fast(post, lam))(theta)
        np.testing.assert_allclose(v1, v0, rtol=1e-6, atol=1e-6)
        scale = float(jnp.max(jnp.abs(g0)))
        np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-6 * scale)
        # grad alone (the leapfrog loop's call) is the same function
        np.testing.assert_allclose(jax.grad(fast(post, lam))(theta), g1, rtol=1e-6, atol=0)


def test_gradient_with_respect_to_the_exponent_is_the_loglikelihood():
    post = posterior()
    theta = post.sample_prior(jax.random.PRNGKey(2))

    def f(lam):
        return fast(post, lam)(theta)

    np.testing.assert_allclose(
        jax.grad(f)(jnp.float32(0.25)), post.loglikelihood(theta), rtol=1e-6
    )


def test_under_jit_and_vmap_with_traced_data_and_exponent():
    # The engine's use: data traced (a pytree argument), the exponent a traced scalar,
    # the particles vmapped.
    post = posterior()
    thetas = post.sample_prior(jax.random.PRNGKey(3), 7)

    @jax.jit
    def grads(p, lam, xs):
        return jax.vmap(jax.value_and_grad(fast(p, lam)))(xs)

    @jax.jit
    def reference(p, lam, xs):
        return jax.vmap(jax.value_and_grad(plain(p, lam)))(xs)

    for lam in (0.05, 0.8):
        (v1, g1), (v0, g0) = grads(post, lam, thetas), reference(post, lam, thetas)
        np.testing.assert_allclose(v1, v0, rtol=1e-6)
        np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(g0))))
    # another data set of the same shape goes through the same program, with its own values
    other = posterior(seed=4)
    np.testing.assert_allclose(
        grads(other, 0.5, thetas)[1], reference(other, 0.5, thetas)[1], rtol=1e-5, atol=1e-4
    )


def test_non_finite_likelihood_stays_non_finite():
    def logprior(t):
        return -0.5 * jnp.sum(t**2)

    def loglik(t):
        # -inf outside t[0] > 0, as a likelihood with a support would be
        return jnp.where(t[0] > 0, -jnp.sum((t - 1.0) ** 2), -jnp.inf) * jnp.ones((3,))

    f = tempered_logdensity(logprior, loglik, jnp.float32(0.5))
    assert np.isneginf(f(jnp.array([-1.0, 0.0])))
    inside = jnp.array([2.0, 0.5])
    v, g = jax.value_and_grad(f)(inside)
    ref = jax.value_and_grad(lambda t: logprior(t) + 0.5 * jnp.sum(loglik(t)))(inside)
    np.testing.assert_allclose(v, ref[0], rtol=1e-6)
    np.testing.assert_allclose(g, ref[1], rtol=1e-6)
