"""Tuning the moves of an SMC stage from the current particles.

* Step size: after each move, ``log h += rate * (acceptance - target)`` with the mean
  acceptance over the live particles, and an extra halving when more than
  ``DIVERGENCE_BACKOFF_FRACTION`` of the proposals diverged.
* Trajectory length: a fixed number of steps ``L``, or ``L = ceil(T / h)`` for a target
  length ``T`` (capped), so the trajectory keeps its physical length as ``h`` shrinks.
* Preconditioning: a diagonal mass ``1 / Var[theta]`` from the weighted particles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

#: Multiplier of the acceptance error in the log step-size update (one move to the next).
ADAPTATION_RATE = 1.0
#: Largest change of log h from one move to the next (a factor of e).
MAX_LOG_CHANGE = 1.0
#: Fraction of diverging proposals above which the step size is halved on top of the update.
DIVERGENCE_BACKOFF_FRACTION = 0.1
#: Bounds on the step size.
MIN_STEP_SIZE = 1e-10
MAX_STEP_SIZE = 1e4


def update_log_step_size(
    log_step: Array,
    acceptance: Array,
    divergent_fraction: Array,
    target_acceptance: Array,
) -> Array:
    """One multiplicative step-size update toward the target acceptance.

    Divergent proposals count as rejections in ``acceptance``; when they are more than a
    small fraction the step is halved as well, so a blow-up is left quickly.
    """
    change = jnp.clip(ADAPTATION_RATE * (acceptance - target_acceptance), -MAX_LOG_CHANGE,
                      MAX_LOG_CHANGE)
    backoff = jnp.where(divergent_fraction > DIVERGENCE_BACKOFF_FRACTION, jnp.log(0.5), 0.0)
    new = log_step + change + backoff
    return jnp.clip(new, jnp.log(MIN_STEP_SIZE), jnp.log(MAX_STEP_SIZE))


def weighted_moments(particles: Array, log_weights: Array) -> tuple[Array, Array]:
    """Weighted mean and variance per coordinate; particles of weight zero are ignored."""
    w = jnp.exp(log_weights - jnp.max(log_weights))
    w = jnp.where(jnp.isfinite(log_weights), w, 0.0)
    w = w / jnp.sum(w)
    x = jnp.where(w[:, None] > 0, particles, 0.0)
    mean = jnp.sum(w[:, None] * x, axis=0)
    var = jnp.sum(w[:, None] * (x - mean) ** 2, axis=0)
    return mean, var


def preconditioning_mass(particles: Array, log_weights: Array) -> Array:
    """Diagonal mass ``1 / Var[theta]``, normalised to a geometric mean of 1.

    The normalisation keeps the step size on the same scale when the mass changes from one
    stage to the next, so the adapted step carries over. Variances are floored at a
    1e-8 fraction of their mean so that a collapsed coordinate cannot blow up the mass.
    """
    _, var = weighted_moments(particles, log_weights)
    var = jnp.maximum(var, 1e-8 * jnp.mean(var) + 1e-30)
    mass = 1.0 / var
    return mass / jnp.exp(jnp.mean(jnp.log(mass)))


def initial_step_size(particles: Array, mass: Array | float) -> Array:
    """A starting step from the prior particles: half the smallest spread in velocity units.

    For a Gaussian of standard deviation ``s`` and mass ``m`` leapfrog is stable for
    ``h < 2 s sqrt(m)``; a quarter of that bound is a safe start that adaptation then tunes.
    """
    _, var = jax.vmap(lambda x: (jnp.mean(x), jnp.var(x)), in_axes=1)(particles)
    scale = jnp.sqrt(jnp.maximum(var, 1e-30) * mass)
    return 0.5 * jnp.min(scale)


def num_steps_for_length(step_size: Array, trajectory_length: Array, max_steps: Array) -> Array:
    """``ceil(T / h)`` integration steps, between 1 and ``max_steps``."""
    steps = jnp.ceil(trajectory_length / step_size)
    return jnp.clip(steps, 1, max_steps).astype(jnp.int32)
