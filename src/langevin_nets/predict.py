"""Posterior predictive summaries from samples or weighted particles."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from langevin_nets.model import BayesianMLP, _hyper_leaves, _model_with, _Structure
from langevin_nets.validation import as_float_matrix

Array = jax.Array

# Every computation below is one jitted program: run op by op, a prediction at new shapes
# compiled some 60 small programs (about 3 s of a small command-line fit).


@jax.jit
def _normalised(log_weights: Array) -> Array:
    return log_weights - logsumexp(log_weights)


def _positions_and_log_weights(samples: Any, log_weights: Any, dim: int) -> tuple[Array, Array]:
    """Flatten a trace, an SMC result or raw positions to ``(S, dim)`` and log weights ``(S,)``."""
    if hasattr(samples, "particles"):  # an SMC result
        if log_weights is None:
            log_weights = samples.log_weights
        positions = samples.particles
    elif hasattr(samples, "positions"):  # a Langevin trace
        positions = samples.positions
    else:
        positions = samples
    positions = jnp.asarray(positions)
    if positions.ndim < 1 or positions.shape[-1] != dim:
        raise ValueError(
            f"samples must have a last axis of size {dim} (the model's dim), "
            f"got shape {positions.shape}"
        )
    if positions.ndim != 2:
        positions = positions.reshape(-1, dim)
    S = positions.shape[0]
    # The log weights are a small host vector: checked and filled by NumPy, so that no
    # eager JAX operation is compiled for them.
    if log_weights is None:
        lw = jnp.asarray(np.full((S,), -math.log(S), dtype=positions.dtype))
    else:
        lw_host = np.asarray(log_weights, dtype=positions.dtype).reshape(-1)
        if lw_host.shape[0] != S:
            raise ValueError(f"log_weights has {lw_host.shape[0]} entries for {S} samples")
        if not np.any(np.isfinite(lw_host)):
            raise ValueError("log_weights has no finite entry")
        lw = _normalised(jnp.asarray(lw_host))
    return positions, lw


@jax.jit
def _mixture_quantile(q: Array, mu: Array, sigma: Array, w: Array) -> Array:
    """Quantile ``q`` of the Gaussian mixture sum_s w_s N(mu[s, i], sigma[s, i]) per point i."""
    lo = jnp.min(mu - 10.0 * sigma, axis=0)
    hi = jnp.max(mu + 10.0 * sigma, axis=0)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        cdf = jnp.sum(w[:, None] * norm.cdf((mid[None, :] - mu) / sigma), axis=0)
        below = cdf < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
    return 0.5 * (lo + hi)


def _weighted_quantile(q: Array, x: Array, w: Array) -> Array:
    """Weighted quantile over axis 0 of ``x`` ``(S, n)``."""
    order = jnp.argsort(x, axis=0)
    xs = jnp.take_along_axis(x, order, axis=0)
    cw = jnp.cumsum(w[order], axis=0)
    idx = jnp.argmax(cw >= q, axis=0)
    return jnp.take_along_axis(xs, idx[None, :], axis=0)[0]


@jax.jit
def _moments(mu: Array, sigma: Array, log_weights: Array) -> tuple[Array, ...]:
    """``(noise, weights, mean, std_without_noise, std)`` of the weighted samples."""
    if sigma.ndim == 1:
        sigma = sigma[:, None, None]
    noise = jnp.broadcast_to(sigma, mu.shape)
    weights = jnp.exp(log_weights)
    w = weights[:, None, None]
    m = jnp.sum(w * mu, axis=0)
    var_f = jnp.sum(w * (mu - m) ** 2, axis=0)
    var_noise = jnp.sum(w * noise**2, axis=0)
    return noise, weights, m, jnp.sqrt(var_f), jnp.sqrt(var_f + var_noise)


@functools.partial(jax.jit, static_argnames="with_noise")
def _band(
    samples: Array, noise: Array, weights: Array, level: Array, with_noise: bool
) -> tuple[Array, Array]:
    """The central ``level`` band per point and output: two ``(n, d_out)`` arrays."""
    S, n, d_out = samples.shape
    flat = jnp.moveaxis(samples, -1, 1).reshape(S, n * d_out)
    qs = (0.5 * (1 - level), 0.5 * (1 + level))
    if with_noise:
        scale = jnp.moveaxis(noise, -1, 1).reshape(S, n * d_out)
        bounds = [_mixture_quantile(q, flat, scale, weights) for q in qs]
    else:
        bounds = [_weighted_quantile(q, flat, weights) for q in qs]
    lo, hi = (b.reshape(d_out, n).T for b in bounds)
    return lo, hi


@jax.jit
def _log_predictive(y: Array, samples: Array, noise: Array, log_weights: Array) -> Array:
    """``log sum_s W_s p(y_i | theta_s)`` for each row ``i``."""
    ll = jnp.sum(norm.logpdf(y[None], samples, noise), axis=-1)
    return logsumexp(log_weights[:, None] + ll, axis=0)


@functools.partial(jax.jit, static_argnums=1)
def _squeeze_single(arrays: tuple[Array, ...], single: bool) -> tuple[Array, ...]:
    """Drop the output axis of ``(n, 1)`` arrays (one jitted call, not one op per array)."""
    return tuple(a[..., 0] for a in arrays) if single else arrays


@jax.jit
def _mean(a: Array) -> Array:
    return jnp.mean(a)


@jax.jit
def _rmse(y: Array, mean: Array) -> Array:
    return jnp.sqrt(jnp.mean((y - mean) ** 2))


@jax.jit
def _inside(y: Array, lo: Array, hi: Array) -> Array:
    return jnp.mean((y >= lo) & (y <= hi))


class Prediction:
    """Posterior predictive at new inputs, for a single-output or multi-output model.

    For one output, arrays have shape ``(n,)``; for several, ``(n, d_out)``.

    Attributes
    ----------
    mean : array
        Predictive mean.
    std : array
        Predictive standard deviation including observation noise.
    std_without_noise : array
        Standard deviation of the network output alone (epistemic).
    samples : array ``(S, n, d_out)``
        Network outputs for each sample.
    sigma : array ``(S,)`` or ``(S, n, d_out)``
        Noise level for each sample; per sample and point for a heteroscedastic model.
    noise : array ``(S, n, d_out)``
        The noise standard deviation of each sample at each point (``sigma`` broadcast).
    weights : array ``(S,)``
        Normalised sample weights.
    """

    def __init__(self, mu: Array, sigma: Array, log_weights: Array) -> None:
        self.samples = mu
        self.sigma = sigma
        self.log_weights = log_weights
        self._single = mu.shape[-1] == 1
        # ``_mean_2d``: the mean as (n, d_out) whatever the number of outputs.
        self.noise, self.weights, self._mean_2d, sd_f, sd = _moments(
            mu, jnp.asarray(sigma), log_weights
        )
        self.mean, self.std_without_noise, self.std = _squeeze_single(
            (self._mean_2d, sd_f, sd), self._single
        )

    def _targets(self, y: Any) -> Array:
        n, d_out = self.samples.shape[1:]
        yy = as_float_matrix(y, "y")
        if yy.shape != (n, d_out):
            raise ValueError(f"y must have {n} rows and {d_out} column(s), got shape {yy.shape}")
        return jnp.asarray(yy, dtype=self.samples.dtype)

    def interval(self, level: float = 0.9, noise: bool = True) -> tuple[Array, Array]:
        """Central credible band ``(lower, upper)`` holding ``level`` of the predictive mass.

        With ``noise=True`` the band is for a new observation (the Gaussian mixture over
        samples); otherwise for the network's output.
        """
        return _squeeze_single(self._band_2d(level, noise), self._single)

    def _band_2d(self, level: float, noise: bool) -> tuple[Array, Array]:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        level_ = jnp.asarray(level, self.samples.dtype)
        return _band(self.samples, self.noise, self.weights, level_, with_noise=bool(noise))

    def pointwise_log_predictive_density(self, y: Any) -> Array:
        """``log sum_s W_s p(y_i | theta_s)`` for each row ``i``: shape ``(n,)``."""
        return _log_predictive(self._targets(y), self.samples, self.noise, self.log_weights)

    def log_predictive_density(self, y: Any) -> float:
        """Mean over points of the log posterior predictive density of ``y``."""
        return float(_mean(self.pointwise_log_predictive_density(y)))

    def rmse(self, y: Any) -> float:
        """Root mean squared error of the predictive mean."""
        return float(_rmse(self._targets(y), self._mean_2d))

    def coverage(self, y: Any, level: float = 0.9) -> float:
        """Fraction of targets inside the ``level`` predictive interval (noise included)."""
        yy = self._targets(y)
        lo, hi = self._band_2d(level, noise=True)
        return float(_inside(yy, lo, hi))


def _outputs(model: Any, positions: Array, X: Array) -> tuple[Array, Array]:
    """``(outputs, sigma)`` of every position: ``sigma`` is ``(S,)``, or ``(S, n, d_out)``
    for a heteroscedastic model; the model's ``noise_floor`` included."""
    if getattr(model, "heteroscedastic", False):
        return jax.vmap(lambda p: model.mean_and_noise(p, X))(positions)
    mu = jax.vmap(lambda p: model.mean(p, X))(positions)
    sigma = jax.vmap(model.sigma)(positions)
    with_floor = getattr(model, "with_floor", None)
    return mu, (sigma if with_floor is None else with_floor(sigma))


@functools.partial(jax.jit, static_argnums=0)
def _mlp_outputs(
    structure: _Structure, hyper: dict[str, Array], positions: Array, X: Array
) -> tuple[Array, Array]:
    # The hyperparameters are traced: models that differ only in them (a prior-scale sweep,
    # the splits of a benchmark with their own noise floors) share the program.
    return _outputs(_model_with(structure.model, hyper), positions, X)


def _outputs_fn(model: Any) -> Any:
    """A jitted ``(positions, X) -> (outputs, sigma)`` for ``model``: one program per
    structure for a :class:`BayesianMLP` (its class is part of the structure), else one
    cached on the model object."""
    if isinstance(model, BayesianMLP):
        structure, hyper = _Structure(model), _hyper_leaves(model)
        return functools.partial(_mlp_outputs, structure, hyper)
    fn = getattr(model, "_predict_outputs", None)
    if fn is None:
        fn = jax.jit(functools.partial(_outputs, model))
        model._predict_outputs = fn
    return fn


def predict(model: Any, samples: Any, X_new: Any, log_weights: Any = None) -> Prediction:
    """Posterior predictive of ``model`` at ``X_new``.

    Parameters
    ----------
    model : BayesianMLP (or a Posterior, whose model is used)
    samples : LangevinTrace, SMC result, or array ``(..., dim)``
        An SMC result's weights are used unless ``log_weights`` is given.
    X_new : array ``(n, d_in)``
    log_weights : array, optional
        Unnormalised log weights, one per sample.

    Returns
    -------
    Prediction
    """
    model = getattr(model, "model", model)
    X = as_float_matrix(X_new, "X_new")
    if X.shape[1] != model.layer_sizes[0]:
        raise ValueError(
            f"X_new has {X.shape[1]} columns but the model takes {model.layer_sizes[0]}"
        )
    positions, lw = _positions_and_log_weights(samples, log_weights, model.dim)
    Xj = jnp.asarray(X, dtype=positions.dtype)
    mu, sigma = _outputs_fn(model)(positions, Xj)
    return Prediction(mu, sigma, lw)
