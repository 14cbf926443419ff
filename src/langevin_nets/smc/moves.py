"""MCMC moves that leave an SMC stage's target invariant, built on the BAOAB kernel.

A move starts from a fresh momentum draw and runs ``L`` steps of
:func:`langevin_nets.kernels.baoab.step` (``L`` may be a traced value, so it can change
between stages without recompiling):

* ``"hmc"``: one Metropolis test on the shadow work of the whole trajectory. With
  ``friction = 0`` BAOAB is the leapfrog scheme and this is exactly HMC.
* ``"ghmc"``: one Metropolis test per step on that step's shadow work, the momentum
  flipped on rejection and partly refreshed by the friction in every step: generalised HMC
  (Horowitz 1991). This is the test of ``baoab.step(..., metropolis=True)``.

With ``metropolis=False`` both run the same steps without any test (the original's
unadjusted moves). The kind and the Metropolis switch may be runtime values, so that one
compiled program serves all four combinations, or fixed when the program is built (the
SMC engine does this: a program then holds one path, not both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import langevin_nets.kernels.baoab as baoab
from langevin_nets.kernels.baoab import BAOABState

Array = jax.Array
MOVES = ("hmc", "ghmc")


class MoveInfo(NamedTuple):
    """What one move did to one particle.

    ``acceptance_rate``: Metropolis acceptance probability (mean over steps for ``ghmc``,
    1 when unadjusted); ``is_divergent``: a proposal had a non-finite density or gradient.
    """

    acceptance_rate: Array
    is_divergent: Array


def _finite(state: BAOABState) -> Array:
    return jnp.isfinite(state.logdensity) & jnp.all(jnp.isfinite(state.logdensity_grad))


def _metropolis(
    key: Array, proposal: BAOABState, current: BAOABState, work: Array, flip: bool
) -> tuple[BAOABState, Array]:
    """Accept ``proposal`` with probability ``min(1, exp(-work))``, else keep ``current``.

    A non-finite proposal or work is rejected. With ``flip`` a rejection reverses the
    momentum (needed for the per-step test to leave the target invariant).
    """
    work = jnp.where(_finite(proposal) & jnp.isfinite(work), work, jnp.inf)
    log_accept = jnp.minimum(0.0, -work)
    accepted = jnp.log(jax.random.uniform(key, (), work.dtype)) < log_accept
    rejected = current._replace(momentum=-current.momentum) if flip else current
    out = jax.tree.map(lambda a, b: jnp.where(accepted, a, b), proposal, rejected)
    return out, jnp.exp(log_accept)


def _baoab_move(
    key: Array,
    state: BAOABState,
    logdensity_fn: Callable[[Array], Array],
    step_size: Array,
    friction: Array,
    mass: Array | float,
    num_integration_steps: Array,
    per_step_test: Array | bool,
    metropolis: Array | bool,
) -> tuple[BAOABState, MoveInfo]:
    """One move of ``num_integration_steps`` BAOAB steps from a fresh momentum (general path).

    Parameters
    ----------
    key : PRNG key
    state : BAOABState with the density and force at the current position cached.
    logdensity_fn : the stage's target log density.
    step_size, friction : BAOAB's ``h`` and ``gamma`` (traced scalars).
    mass : scalar or ``(dim,)`` diagonal mass.
    num_integration_steps : number of steps ``L`` (a traced int is fine).
    per_step_test : test every step (``ghmc``) instead of the whole trajectory (``hmc``).
    metropolis : accept/reject at all.
    """
    k_mom, k_steps, k_accept = jax.random.split(key, 3)
    momentum = baoab.sample_momentum(k_mom, state.position, mass, 1.0)
    start = state._replace(momentum=momentum)
    dtype = state.logdensity.dtype
    step_test = jnp.asarray(metropolis) & jnp.asarray(per_step_test)
    trajectory_test = jnp.asarray(metropolis) & ~jnp.asarray(per_step_test)

    def body(i: Array, carry: tuple[BAOABState, Array, Array, Array]) -> tuple:
        s, work, acc, div = carry
        k = jax.random.fold_in(k_steps, i)
        proposal, info = baoab.step(k, s, logdensity_fn, step_size, friction, mass, 1.0, False, 1)
        tested, p_accept = _metropolis(
            jax.random.fold_in(k, 1), proposal, s, info.energy_error, flip=True
        )
        s = jax.tree.map(lambda a, b: jnp.where(step_test, a, b), tested, proposal)
        p_accept = jnp.where(step_test, p_accept, 1.0)
        return s, work + info.energy_error, acc + p_accept, div | info.is_divergent

    zero = jnp.zeros((), dtype)
    end, work, acc_sum, divergent = jax.lax.fori_loop(
        0, num_integration_steps, body, (start, zero, zero, jnp.asarray(False))
    )
    divergent = divergent | ~_finite(end)
    # One test over the whole trajectory (BAOAB is palindromic: the shadow work is exact).
    tested, p_traj = _metropolis(k_accept, end, start, work, flip=False)
    out = jax.tree.map(lambda a, b: jnp.where(trajectory_test, a, b), tested, end)
    steps = jnp.maximum(num_integration_steps, 1).astype(dtype)
    acceptance = jnp.where(trajectory_test, p_traj, acc_sum / steps)
    return out, MoveInfo(acceptance, divergent)


def _leapfrog_move(
    key: Array,
    state: BAOABState,
    logdensity_fn: Callable[[Array], Array],
    step_size: Array,
    mass: Array | float,
    num_integration_steps: Array,
) -> tuple[BAOABState, MoveInfo]:
    """The HMC move (friction 0, one test per trajectory) without the O step's noise.

    With friction 0 the O step multiplies a fresh normal draw by zero, and drawing it costs
    more than a small network's gradient. This path draws the same momentum and runs the
    same leapfrog map as :func:`_baoab_move`, equal up to rounding (tested), and tests the
    trajectory's end points. ``num_integration_steps`` must be at least 1 (the engine
    clips it so).

    It differs from the general path in one case: a trajectory that passes through a point
    where the density is not finite while its gradient stays finite (a ``jnp.where`` that
    returns ``-inf`` or NaN outside a support) is judged by its end points, as in plain
    HMC, where the general path's summed shadow work rejects it. The test stays exact: the
    leapfrog map is reversible and volume-preserving for any finite force. A non-finite
    gradient on the way makes the end point non-finite, and that is rejected and counted
    as divergent.
    """
    k_mom, _, k_accept = jax.random.split(key, 3)
    momentum = baoab.sample_momentum(k_mom, state.position, mass, 1.0)
    start = state._replace(momentum=momentum)
    half_h = 0.5 * step_size
    h_over_mass = step_size / mass
    grad = jax.grad(logdensity_fn)

    # Kick-drift form: the closing half kick of one step and the opening half kick of the
    # next are one full kick, so the loop carries only (q, p) and takes the gradient of the
    # position it was given. XLA:CPU runs this loop 10-15% faster per gradient than one
    # that carries the gradient and density between steps (2 cores, boston and the README
    # network). L steps are L gradients: L - 1 in the loop, the last with the density.
    p = momentum + half_h * state.logdensity_grad
    q = state.position + h_over_mass * p

    def body(_: Array, carry: tuple[Array, Array]) -> tuple[Array, Array]:
        q, p = carry
        p = p + step_size * grad(q)
        return q + h_over_mass * p, p

    q, p = jax.lax.fori_loop(0, num_integration_steps - 1, body, (q, p))
    logp, g = jax.value_and_grad(logdensity_fn)(q)
    end = BAOABState(q, p + half_h * g, logp, g)
    work = (-end.logdensity + baoab.kinetic_energy(end.momentum, mass)) - (
        -start.logdensity + baoab.kinetic_energy(start.momentum, mass)
    )
    divergent = ~_finite(end) | ~jnp.isfinite(work)
    out, p_accept = _metropolis(k_accept, end, start, work, flip=False)
    return out, MoveInfo(p_accept, divergent)


def move(
    key: Array,
    state: BAOABState,
    logdensity_fn: Callable[[Array], Array],
    step_size: Array,
    friction: Array,
    mass: Array | float,
    num_integration_steps: Array,
    per_step_test: Array | bool,
    metropolis: Array | bool,
    fast: bool | None = None,
) -> tuple[BAOABState, MoveInfo]:
    """One move of ``num_integration_steps`` BAOAB steps from a fresh momentum.

    Plain HMC moves (friction 0, Metropolis, one test per trajectory) take a noise-free fast
    path. Arguments as in :func:`_baoab_move`, and:

    fast : bool, optional
        ``None``: choose the path by a ``lax.cond`` on the runtime flags, so that every
        move kind shares one compiled program holding both paths. ``True`` / ``False``:
        the caller knows which path the flags take (:func:`is_fast`), and the program holds
        only that one (about a third less compilation for the SMC engine).
    """

    def leapfrog() -> tuple[BAOABState, MoveInfo]:
        return _leapfrog_move(key, state, logdensity_fn, step_size, mass, num_integration_steps)

    def general() -> tuple[BAOABState, MoveInfo]:
        return _baoab_move(
            key, state, logdensity_fn, step_size, friction, mass, num_integration_steps,
            per_step_test, metropolis,
        )  # fmt: skip

    if fast is not None:
        return leapfrog() if fast else general()
    return jax.lax.cond(is_fast(friction, per_step_test, metropolis), leapfrog, general)


def is_fast(friction: Any, per_step_test: Any, metropolis: Any) -> Any:
    """Whether a move with these settings takes the fast path: friction 0, a Metropolis
    test, one test per trajectory (host values give a bool, traced ones an array)."""
    if all(isinstance(v, (bool, int, float, np.ndarray, np.generic)) for v in
           (friction, per_step_test, metropolis)):  # fmt: skip
        return bool(metropolis) and not bool(per_step_test) and float(friction) == 0.0
    return jnp.asarray(metropolis) & ~jnp.asarray(per_step_test) & (jnp.asarray(friction) == 0)
