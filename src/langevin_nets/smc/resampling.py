"""Resampling schemes and the effective sample size.

Each scheme is a pure function ``(key, weights, num_samples) -> ancestors``: ``weights``
are normalised (they sum to one, zeros allowed), ``ancestors`` is an ``int32`` array of
``num_samples`` particle indices. All four are unbiased: the expected number of copies of
particle ``j`` is ``num_samples * weights[j]``. A particle of weight zero is never chosen.
Every scheme draws its randomness as ``num_samples`` uniforms (:func:`uniforms`; systematic
uses the first), and :data:`FROM_UNIFORMS` holds each scheme as a function of them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

Array = jax.Array
Resampler = Callable[[Array, Array, int], Array]


def _inverse_cdf(weights: Array, u: Array) -> Array:
    """Indices ``j`` with ``cdf[j-1] <= u < cdf[j]`` for uniforms ``u`` in ``[0, 1)``."""
    cdf = jnp.cumsum(weights)
    cdf = cdf / cdf[-1]
    idx = jnp.searchsorted(cdf, u, side="right")
    # Rounding can leave cdf[-1] of the positive part a hair below u; never step past the
    # last particle with positive weight (a zero weight has cdf[j] == cdf[j-1] exactly, so
    # it cannot be hit otherwise).
    n = weights.shape[0]
    last_positive = n - 1 - jnp.argmax(weights[::-1] > 0)
    return jnp.minimum(idx, last_positive).astype(jnp.int32)


def _systematic(u: Array, weights: Array) -> Array:
    n = u.shape[0]
    return _inverse_cdf(weights, (u[0] + jnp.arange(n, dtype=u.dtype)) / n)


def _stratified(u: Array, weights: Array) -> Array:
    n = u.shape[0]
    return _inverse_cdf(weights, (u + jnp.arange(n, dtype=u.dtype)) / n)


def _multinomial(u: Array, weights: Array) -> Array:
    return _inverse_cdf(weights, u)


def _residual(u: Array, weights: Array) -> Array:
    n = u.shape[0]
    nw = n * weights
    counts = jnp.floor(nw)
    resid = nw - counts
    slots = jnp.arange(n)
    num_det = jnp.sum(counts)
    # Slot i < num_det goes to the particle whose block of copies holds it.
    det = jnp.searchsorted(jnp.cumsum(counts), slots, side="right").astype(jnp.int32)
    total_resid = jnp.sum(resid)
    safe = jnp.where(total_resid > 0, resid / jnp.where(total_resid > 0, total_resid, 1.0), weights)
    drawn = _multinomial(u, safe)
    return jnp.where(slots < num_det, det, drawn).astype(jnp.int32)


#: The schemes as functions of ``num_samples`` uniforms on ``[0, 1)`` and the weights. A
#: program that can take any scheme (the SMC engine's ``lax.switch``) draws the uniforms
#: once, outside the branches: each random draw adds a threefry block to the program, and
#: those blocks dominate the branches' compile time on CPU.
FROM_UNIFORMS: dict[str, Callable[[Array, Array], Array]] = {
    "systematic": _systematic,
    "stratified": _stratified,
    "multinomial": _multinomial,
    "residual": _residual,
}


def uniforms(key: Array, weights: Array, num_samples: int) -> Array:
    """The ``(num_samples,)`` uniforms every scheme draws from ``key``."""
    return jax.random.uniform(key, (num_samples,), weights.dtype)


def systematic(key: Array, weights: Array, num_samples: int) -> Array:
    """Systematic resampling: one uniform, ``num_samples`` evenly spaced points."""
    return _systematic(uniforms(key, weights, num_samples), weights)


def stratified(key: Array, weights: Array, num_samples: int) -> Array:
    """Stratified resampling: one uniform in each of ``num_samples`` equal strata."""
    return _stratified(uniforms(key, weights, num_samples), weights)


def multinomial(key: Array, weights: Array, num_samples: int) -> Array:
    """Multinomial resampling: ``num_samples`` independent draws."""
    return _multinomial(uniforms(key, weights, num_samples), weights)


def residual(key: Array, weights: Array, num_samples: int) -> Array:
    """Residual resampling: ``floor(N w_j)`` copies of each particle, the rest multinomial.

    The remaining ``R = N - sum_j floor(N w_j)`` draws use the residual weights
    ``(N w_j - floor(N w_j)) / R``.
    """
    return _residual(uniforms(key, weights, num_samples), weights)


RESAMPLERS: dict[str, Resampler] = {
    "systematic": systematic,
    "stratified": stratified,
    "multinomial": multinomial,
    "residual": residual,
}


def log_ess(log_weights: Array) -> Array:
    """Log of the effective sample size ``(sum w)^2 / sum w^2`` of unnormalised log weights."""
    return 2.0 * logsumexp(log_weights) - logsumexp(2.0 * log_weights)


def ess(log_weights: Array) -> Array:
    """Effective sample size of (unnormalised) log weights; 0 when all weights are zero."""
    out = jnp.exp(log_ess(log_weights))
    return jnp.where(jnp.isfinite(out), out, 0.0)
