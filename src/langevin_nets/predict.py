"""Posterior predictive summaries from samples or weighted particles."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from langevin_nets.validation import as_float_matrix

Array = jax.Array


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
    positions = positions.reshape(-1, dim)
    S = positions.shape[0]
    if log_weights is None:
        lw = jnp.full((S,), -jnp.log(S))
    else:
        lw = jnp.asarray(log_weights, dtype=positions.dtype).reshape(-1)
        if lw.shape[0] != S:
            raise ValueError(f"log_weights has {lw.shape[0]} entries for {S} samples")
        if not bool(jnp.any(jnp.isfinite(lw))):
            raise ValueError("log_weights has no finite entry")
        lw = lw - logsumexp(lw)
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


def _weighted_quantile(q: float, x: Array, w: Array) -> Array:
    """Weighted quantile over axis 0 of ``x`` ``(S, n)``."""
    order = jnp.argsort(x, axis=0)
    xs = jnp.take_along_axis(x, order, axis=0)
    cw = jnp.cumsum(w[order], axis=0)
    idx = jnp.argmax(cw >= q, axis=0)
    return jnp.take_along_axis(xs, idx[None, :], axis=0)[0]


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
        sigma = jnp.asarray(sigma)
        if sigma.ndim == 1:
            sigma = sigma[:, None, None]
        self.noise = jnp.broadcast_to(sigma, mu.shape)
        self.log_weights = log_weights
        self.weights = jnp.exp(log_weights)
        w = self.weights[:, None, None]
        m = jnp.sum(w * mu, axis=0)
        var_f = jnp.sum(w * (mu - m) ** 2, axis=0)
        var_noise = jnp.sum(w * self.noise**2, axis=0)
        self._single = mu.shape[-1] == 1
        self.mean = self._shape(m)
        self.std_without_noise = self._shape(jnp.sqrt(var_f))
        self.std = self._shape(jnp.sqrt(var_f + var_noise))

    def _shape(self, a: Array) -> Array:
        return a[..., 0] if self._single else a

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
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        S, n, d_out = self.samples.shape
        flat = jnp.moveaxis(self.samples, -1, 1).reshape(S, n * d_out)
        qs = (0.5 * (1 - level), 0.5 * (1 + level))
        if noise:
            scale = jnp.moveaxis(self.noise, -1, 1).reshape(S, n * d_out)
            bounds = [_mixture_quantile(q, flat, scale, self.weights) for q in qs]
        else:
            bounds = [_weighted_quantile(q, flat, self.weights) for q in qs]
        lo, hi = (b.reshape(d_out, n).T for b in bounds)
        return self._shape(lo), self._shape(hi)

    def pointwise_log_predictive_density(self, y: Any) -> Array:
        """``log sum_s W_s p(y_i | theta_s)`` for each row ``i``: shape ``(n,)``."""
        yy = self._targets(y)
        ll = jnp.sum(norm.logpdf(yy[None], self.samples, self.noise), axis=-1)
        return logsumexp(self.log_weights[:, None] + ll, axis=0)

    def log_predictive_density(self, y: Any) -> float:
        """Mean over points of the log posterior predictive density of ``y``."""
        return float(jnp.mean(self.pointwise_log_predictive_density(y)))

    def rmse(self, y: Any) -> float:
        """Root mean squared error of the predictive mean."""
        yy = self._targets(y)
        m = self.mean[:, None] if self._single else self.mean
        return float(jnp.sqrt(jnp.mean((yy - m) ** 2)))

    def coverage(self, y: Any, level: float = 0.9) -> float:
        """Fraction of targets inside the ``level`` predictive interval (noise included)."""
        yy = self._targets(y)
        lo, hi = self.interval(level, noise=True)
        if self._single:
            lo, hi = lo[:, None], hi[:, None]
        return float(jnp.mean((yy >= lo) & (yy <= hi)))


def _outputs_fn(model: Any) -> Any:
    """A jitted ``(positions, X) -> (outputs, sigma)`` cached on the model.

    ``sigma`` is ``(S,)``, or ``(S, n, d_out)`` for a heteroscedastic model; the
    model's ``noise_floor`` included.
    """
    fn = getattr(model, "_predict_outputs", None)
    if fn is None:

        def outputs(positions: Array, X: Array) -> tuple[Array, Array]:
            if getattr(model, "heteroscedastic", False):
                return jax.vmap(lambda p: model.mean_and_noise(p, X))(positions)
            mu = jax.vmap(lambda p: model.mean(p, X))(positions)
            sigma = jax.vmap(model.sigma)(positions)
            with_floor = getattr(model, "with_floor", None)
            return mu, (sigma if with_floor is None else with_floor(sigma))

        fn = jax.jit(outputs)
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
