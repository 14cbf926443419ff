"""Annealing schedules: fixed tempering paths and the adaptive choices of the next stage.

Every SMC target here is ``pi_t(theta) ∝ p(theta) prod_i p(y_i | theta)^(w_t,i)`` with
``w_t = lam_t * mask_t``: tempering moves ``lam`` from 0 to 1 with every datum in the mask;
data annealing keeps ``lam = 1`` and grows the mask (the first ``k_t`` points in a data order).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

Array = jax.Array

#: Log of the factor (0.999) by which adaptive schedules aim below the ESS target.
TARGET_MARGIN = float(np.log(0.999))
#: Base of the original's geometric path ``(base**u - 1) / (base - 1)``.
GEOMETRIC_BASE = 100.0


def geometric_lambdas(num_stages: int, base: float = GEOMETRIC_BASE) -> np.ndarray:
    """The original's path: ``(base**u - 1) / (base - 1)`` on ``u = linspace(0, 1, K + 1)[1:]``.

    ``base**linspace(0, 1)`` shifted and scaled to ``[0, 1]``; small steps first, where the
    likelihood bites hardest. Returns the ``num_stages`` exponents after the prior
    (``lam_0 = 0``), the last exactly 1.
    """
    u = np.linspace(0.0, 1.0, num_stages + 1)[1:]
    lam = (base**u - 1.0) / (base - 1.0)
    lam[-1] = 1.0
    return lam


def linear_lambdas(num_stages: int) -> np.ndarray:
    """Evenly spaced exponents ``1/K, 2/K, ..., 1``."""
    lam = np.linspace(0.0, 1.0, num_stages + 1)[1:]
    lam[-1] = 1.0
    return lam


def check_lambdas(lambdas: Any) -> np.ndarray:
    """Validate a user path: increasing, in ``(0, 1]``, ending at 1 (a leading 0 is dropped)."""
    try:
        lam = np.asarray(lambdas, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"lambdas must be a sequence of numbers, got {lambdas!r}") from None
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"lambdas must be a non-empty 1-D sequence, got shape {lam.shape}")
    if not np.all(np.isfinite(lam)):
        raise ValueError("lambdas contains NaN or infinite values")
    if lam[0] == 0.0:
        lam = lam[1:]
    if lam.size == 0 or np.any(np.diff(lam) <= 0) or lam[0] <= 0:
        raise ValueError(
            "lambdas must be strictly increasing and positive (a leading 0 is allowed)"
        )
    if lam[-1] != 1.0:
        raise ValueError(f"lambdas must end at 1, got last value {lam[-1]!r}")
    return lam


def _log_criterion(log_weights: Array, incr: Array, conditional: bool) -> Array:
    """Log ESS of ``log_weights + incr`` (or the log conditional ESS), per column of ``incr``.

    ``log_weights`` ``(N,)`` are normalised; ``incr`` is ``(N,)`` or ``(N, C)``. The
    conditional ESS (Zhou, Johansen & Aston 2016) is ``N (sum W G)^2 / sum W G^2``: it equals
    ``N`` for a zero increment whatever the current weights.
    """
    lw = log_weights if incr.ndim == 1 else log_weights[:, None]
    incr = jnp.where(jnp.isfinite(incr), incr, -jnp.inf)
    a = lw + incr
    if conditional:
        n = log_weights.shape[0]
        out = jnp.log(n) + 2.0 * logsumexp(a, axis=0) - logsumexp(lw + 2.0 * incr, axis=0)
    else:
        out = 2.0 * logsumexp(a, axis=0) - logsumexp(2.0 * a, axis=0)
    return jnp.where(jnp.isnan(out), -jnp.inf, out)


def log_target(log_weights: Array, target_ess: Array, conditional: bool) -> Array:
    """The log criterion value the next stage aims at.

    Conditional ESS: ``target_ess * N``. Plain ESS: ``target_ess`` times the current ESS, which
    is ``target_ess * N`` right after resampling and never stalls when the weights are already
    uneven (an absolute target below the current ESS could not be met by any step).
    Both aim a hair low (``TARGET_MARGIN``) so that, with ``ess_threshold == target_ess``,
    float rounding cannot leave the ESS a hair above the threshold and skip the resampling.
    """
    if conditional:
        return jnp.log(target_ess) + jnp.log(log_weights.shape[0]) + TARGET_MARGIN
    lw = jnp.where(jnp.isfinite(log_weights), log_weights, -jnp.inf)
    return jnp.log(target_ess) + 2.0 * logsumexp(lw) - logsumexp(2.0 * lw) + TARGET_MARGIN


def next_lambda(
    log_weights: Array,
    loglik: Array,
    lam: Array,
    target_ess: Array,
    conditional: bool,
    num_bisection: int = 50,
) -> Array:
    """Adaptive tempering: the next exponent in ``(lam, 1]`` by bisection.

    Picks ``lam' = lam + delta`` with the criterion of the weights
    ``log_weights + delta * loglik`` at the target, or 1 if the target holds all the way.
    The bisection returns the upper end of its final bracket, so the criterion lands just
    below the target (with ``ess_threshold >= target_ess`` the stage then resamples).

    Parameters
    ----------
    log_weights : (N,) normalised log weights of the current particles.
    loglik : (N,) total log-likelihood of each particle (non-finite -> weight zero).
    lam : current exponent.
    target_ess : fraction in (0, 1).
    conditional : use the conditional ESS.
    """
    goal = log_target(log_weights, target_ess, conditional)
    remaining = 1.0 - lam
    good = jnp.isfinite(loglik)
    ll = jnp.where(good, loglik, 0.0)

    def crit(delta: Array) -> Array:
        incr = jnp.where(good, delta * ll, -jnp.inf)
        return _log_criterion(log_weights, incr, conditional)

    def body(_: Any, bracket: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = crit(mid) >= goal
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    zero = jnp.zeros_like(remaining)
    _, hi = jax.lax.fori_loop(0, num_bisection, body, (zero, remaining))
    new = jnp.where(crit(remaining) >= goal, 1.0, jnp.minimum(lam + hi, 1.0))
    # Always make progress, even when lam + hi rounds to lam.
    return jnp.maximum(new, jnp.nextafter(lam, jnp.asarray(2.0, lam.dtype)))


def next_num_data(
    log_weights: Array,
    loglik_ordered: Array,
    k: Array,
    target_ess: Array,
    conditional: bool,
) -> Array:
    """Adaptive data annealing: as many new points as keep the criterion at the target (>= 1).

    ``loglik_ordered`` is the ``(N, n)`` per-datum log-likelihood of the current particles
    with the columns in the data order; its running sum gives the incremental weights of
    every candidate ``k'`` at once. Returns ``k'`` in ``[k + 1, n]``: the largest ``k'`` such
    that every ``k < j <= k'`` meets the target, at least ``k + 1``.
    """
    N, n = loglik_ordered.shape
    zeros = jnp.zeros((N, 1), loglik_ordered.dtype)
    cum = jnp.concatenate([zeros, jnp.cumsum(loglik_ordered, axis=1)], axis=1)  # (N, n + 1)
    base = jnp.take(cum, k, axis=1)
    incr = cum - base[:, None]
    crit = _log_criterion(log_weights, incr, conditional)  # (n + 1,)
    goal = log_target(log_weights, target_ess, conditional)
    j = jnp.arange(n + 1)
    bad = (j > k) & (crit < goal)
    first_bad = jnp.where(jnp.any(bad), jnp.argmax(bad), n + 1)
    return jnp.clip(first_bad - 1, k + 1, n).astype(k.dtype)
