"""The BAOAB Langevin integrator (Leimkuhler & Matthews) as an ``init``/``step`` kernel.

One step of size ``h`` with force ``F = grad log pi``, diagonal mass ``M``,
friction ``gamma`` and temperature ``T`` (target ``pi^(1/T)``):

    B: p += h/2 F(q)          A: q += h/2 M^-1 p
    O: p = c p + sqrt((1 - c^2) T M) xi,   c = exp(-gamma h)
    A: q += h/2 M^-1 p        B: p += h/2 F(q)

The force at the end of a step is cached in the state, so a step costs one
gradient evaluation.

With ``metropolis=True`` the step (or a trajectory of ``num_integration_steps``
steps) is accepted with probability ``min(1, exp(-W / T))``, where ``W`` is the
shadow work: the change of the total energy ``H = -log pi(q) + p.M^-1.p / 2``
over the deterministic B and A parts, the heat exchanged in the O parts left out.
BAOAB is palindromic, so this is a non-equilibrium candidate Monte Carlo move
(Nilmeier et al., PNAS 2011) and leaves ``pi^(1/T)`` exactly invariant for any
step size. A rejected move returns to the start with the momentum flipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
LogDensityFn = Callable[[Array], Array]


class BAOABState(NamedTuple):
    """State of the integrator: plain arrays, so it can be checkpointed and sharded."""

    position: Array
    momentum: Array
    logdensity: Array
    logdensity_grad: Array


class BAOABInfo(NamedTuple):
    """What one step did.

    ``acceptance_rate`` is the Metropolis acceptance probability (1 for the
    unadjusted kernel), ``energy_error`` the shadow work ``W`` of the move,
    ``is_divergent`` whether the proposal's log density or gradient was not finite.
    """

    acceptance_rate: Array
    is_accepted: Array
    energy_error: Array
    is_divergent: Array


class Kernel(NamedTuple):
    """An ``init``/``step`` pair with its parameters bound."""

    init: Callable[..., BAOABState]
    step: Callable[[Array, BAOABState], tuple[BAOABState, BAOABInfo]]


def kinetic_energy(momentum: Array, mass: Array | float) -> Array:
    """``p . M^-1 . p / 2`` for a scalar or diagonal mass."""
    return 0.5 * jnp.sum(momentum * momentum / mass)


def sample_momentum(key: Array, position: Array, mass: Array | float, temperature: float) -> Array:
    """A draw from the momentum's stationary law N(0, T M)."""
    return jnp.sqrt(temperature * mass) * jax.random.normal(key, position.shape, position.dtype)


def init(
    position: Array,
    logdensity_fn: LogDensityFn,
    momentum: Array | None = None,
    key: Array | None = None,
    mass: Array | float = 1.0,
    temperature: float = 1.0,
) -> BAOABState:
    """Evaluate the density and force at ``position`` and set the momentum.

    The momentum is ``momentum`` if given, a draw from N(0, T M) if ``key`` is given,
    else zero.
    """
    position = jnp.asarray(position)
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    if momentum is None:
        if key is None:
            momentum = jnp.zeros_like(position)
        else:
            momentum = sample_momentum(key, position, mass, temperature)
    return BAOABState(position, jnp.asarray(momentum, position.dtype), logdensity, grad)


def _finite(state: BAOABState) -> Array:
    return jnp.isfinite(state.logdensity) & jnp.all(jnp.isfinite(state.logdensity_grad))


def _one_step(
    key: Array,
    state: BAOABState,
    logdensity_fn: LogDensityFn,
    step_size: Array | float,
    friction: Array | float,
    mass: Array | float,
    temperature: Array | float,
) -> tuple[BAOABState, Array]:
    """One BAOAB step; returns the new state and the shadow work of the step."""
    h = step_size
    q, p, logp, g = state
    k0 = kinetic_energy(p, mass)
    p = p + 0.5 * h * g
    q = q + 0.5 * h * p / mass
    k_before_o = kinetic_energy(p, mass)
    c = jnp.exp(-friction * h)
    xi = jax.random.normal(key, p.shape, p.dtype)
    p = c * p + jnp.sqrt((1.0 - c * c) * temperature * mass) * xi
    k_after_o = kinetic_energy(p, mass)
    q = q + 0.5 * h * p / mass
    logp_new, g_new = jax.value_and_grad(logdensity_fn)(q)
    p = p + 0.5 * h * g_new
    k1 = kinetic_energy(p, mass)
    # Shadow work: total energy change minus the heat the O step exchanged.
    work = (-logp_new + k1) - (-logp + k0) - (k_after_o - k_before_o)
    return BAOABState(q, p, logp_new, g_new), work


def step(
    key: Array,
    state: BAOABState,
    logdensity_fn: LogDensityFn,
    step_size: Array | float,
    friction: Array | float,
    mass: Array | float = 1.0,
    temperature: Array | float = 1.0,
    metropolis: bool = False,
    num_integration_steps: int = 1,
) -> tuple[BAOABState, BAOABInfo]:
    """Advance ``num_integration_steps`` BAOAB steps, with one optional Metropolis test.

    Parameters
    ----------
    key : PRNG key
    state : BAOABState
    logdensity_fn : callable
        Log of the (unnormalised) target density of a flat position.
    step_size, friction : float or scalar array
        ``h`` and ``gamma``; may be traced values (tuned per SMC stage).
    mass : float or array of shape ``(dim,)``
        Diagonal mass.
    temperature : float
        Samples ``pi^(1/T)``.
    metropolis : bool
        Accept/reject the whole trajectory with its shadow work (exact for any ``h``).
    num_integration_steps : int
        Steps per call (static).

    Returns
    -------
    (BAOABState, BAOABInfo)
    """

    def body(carry, k):
        s, w = carry
        s_new, dw = _one_step(k, s, logdensity_fn, step_size, friction, mass, temperature)
        return (s_new, w + dw), None

    if num_integration_steps == 1:
        new_state, work = _one_step(
            key, state, logdensity_fn, step_size, friction, mass, temperature
        )
    else:
        # Not split(key, n): with JAX's partitionable threefry split(key, n)[1] equals the
        # accept key fold_in(key, 1) below, which tied the accept test to step 2's noise.
        keys = jax.random.split(jax.random.fold_in(key, 2), num_integration_steps)
        zero = jnp.zeros((), state.logdensity.dtype)
        (new_state, work), _ = jax.lax.scan(body, (state, zero), keys)

    finite = _finite(new_state)
    if not metropolis:
        one = jnp.ones((), state.logdensity.dtype)
        info = BAOABInfo(one, jnp.asarray(True), work, ~finite)
        return new_state, info

    work = jnp.where(finite & jnp.isfinite(work), work, jnp.inf)
    log_accept = jnp.minimum(0.0, -work / temperature)
    accept_prob = jnp.exp(log_accept)
    # The key for the accept test must differ from the noise keys.
    u = jax.random.uniform(jax.random.fold_in(key, 1), (), state.logdensity.dtype)
    accepted = jnp.log(u) < log_accept
    rejected_state = state._replace(momentum=-state.momentum)
    out = jax.tree.map(lambda a, b: jnp.where(accepted, a, b), new_state, rejected_state)
    return out, BAOABInfo(accept_prob, accepted, work, ~finite)


def build_kernel(
    logdensity_fn: LogDensityFn,
    step_size: float,
    friction: float,
    mass: Array | float = 1.0,
    temperature: float = 1.0,
    metropolis: bool = False,
    num_integration_steps: int = 1,
) -> Kernel:
    """Bind the BAOAB parameters and return a :class:`Kernel`.

    ``kernel.init(position, key=None)`` -> state (momentum drawn if ``key`` is given);
    ``kernel.step(key, state)`` -> ``(state, info)``.
    """

    def init_fn(position: Array, key: Array | None = None) -> BAOABState:
        return init(position, logdensity_fn, key=key, mass=mass, temperature=temperature)

    def step_fn(key: Array, state: BAOABState) -> tuple[BAOABState, BAOABInfo]:
        return step(
            key,
            state,
            logdensity_fn,
            step_size,
            friction,
            mass,
            temperature,
            metropolis,
            num_integration_steps,
        )

    return Kernel(init_fn, step_fn)
