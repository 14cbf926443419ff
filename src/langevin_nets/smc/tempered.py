"""The tempered log density ``log p(theta) + lam * sum_i log p(y_i | theta)`` of one stage.

Written the plain way, its gradient feeds the traced ``lam`` into the likelihood's backward
pass as the cotangent of every datum. XLA:CPU then fuses and schedules that backward pass
differently from the posterior's, whose cotangent is the constant 1, and on two cores the
HMC moves ran 1.2-1.3x slower per gradient (boston, 32 particles, ReLU network). The
compiled loops hold the same kernels, one for one, so the difference lies in how they are
scheduled on the threads, not in the arithmetic. The custom VJP below takes the
likelihood's gradient with the unit cotangent and scales the ``(dim,)`` result by ``lam``:
the same value and gradient up to rounding, at the posterior gradient's speed.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def tempered_logdensity(
    logprior: Callable[[Array], Array],
    loglikelihood_per_datum: Callable[[Array], Array],
    lam: Array,
) -> Callable[[Array], Array]:
    """``theta -> logprior(theta) + lam * sum(loglikelihood_per_datum(theta))``.

    Parameters
    ----------
    logprior, loglikelihood_per_datum : the target's functions of one position.
    lam : the tempering exponent (a traced scalar is fine).

    Returns
    -------
    callable
        The log density of one position. Its reverse-mode derivative (``jax.grad``,
        ``jax.value_and_grad``, ``jax.vjp``) is exact, with respect to ``theta`` and ``lam``;
        forward mode (``jax.jvp``) is not defined for it.
    """

    def total_loglikelihood(theta: Array) -> Array:
        return jnp.sum(loglikelihood_per_datum(theta))

    @jax.custom_vjp
    def density(lam: Array, theta: Array) -> Array:
        return logprior(theta) + lam * total_loglikelihood(theta)

    def forward(lam: Array, theta: Array) -> tuple[Array, tuple]:
        lp, g_prior = jax.value_and_grad(logprior)(theta)
        ll, g_lik = jax.value_and_grad(total_loglikelihood)(theta)
        return lp + lam * ll, (lam, ll, g_prior, g_lik)

    def backward(res: tuple, ct: Array) -> tuple[Array, Array]:
        lam, ll, g_prior, g_lik = res
        g_lam = jnp.asarray(ct * ll, jnp.result_type(lam))
        return g_lam, ct * (g_prior + lam * g_lik)

    density.defvjp(forward, backward)
    return lambda theta: density(lam, theta)
