"""Sequential Monte Carlo for tempering and data annealing, as one compiled program.

The targets are ``pi_t(theta) ∝ p(theta) prod_i p(y_i | theta)^(w_t,i)`` with
``w_t = lam_t * mask_t``. Geometric tempering moves ``lam_t`` from 0 to 1 with every datum
in the mask; data annealing keeps ``lam_t = 1`` and lets in the first ``k_t`` points of a
data order. Shapes never change between stages: the stages are a ``jax.lax.while_loop``
writing into a history buffer of ``max_stages`` rows, and the particles are ``vmap``-ped.

A stage does, in this order:

1. reweight the particles (distributed as ``pi_{t-1}``) by the incremental likelihood
   ``sum_i (w_t,i - w_{t-1},i) log p(y_i | theta)``;
2. add ``log sum_j W_{t-1,j} exp(incr_j)`` to the log evidence;
3. resample when the ESS is below ``ess_threshold * N``;
4. move every particle with BAOAB moves that leave ``pi_t`` invariant.

Waste-free SMC (Dau & Chopin 2022, ``waste_free=P``) changes steps 3 and 4: every stage
resamples only ``N / P`` particles, runs each through ``P - 1`` moves, and keeps all ``P``
states of every chain as the ``N`` particles of the next stage, equally weighted. A stage
then costs about ``N / P * (P - 1)`` moves instead of ``N * num_mcmc_steps``.

The order matters: weighting the newest data with particles already moved toward
``pi_t`` counts those data twice and biases the evidence upward.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

import langevin_nets.checkpoint as _ckpt
import langevin_nets.kernels.baoab as baoab
from langevin_nets.errors import DivergenceError
from langevin_nets.optimize import is_prng_key
from langevin_nets.progress import LevelProgressBar, report_level
from langevin_nets.smc import schedules, sharding, tuning
from langevin_nets.smc.moves import MOVES, is_fast, move
from langevin_nets.smc.resampling import FROM_UNIFORMS, RESAMPLERS, ess
from langevin_nets.smc.resampling import uniforms as resampling_uniforms
from langevin_nets.smc.tempered import tempered_logdensity
from langevin_nets.validation import choice, fraction, nonnegative_int, positive_float, positive_int

Array = jax.Array

SCHEDULES = ("adaptive", "geometric", "linear", "data")

#: Moves per stage and BAOAB steps per move (chosen on the README toy problem; see the
#: module docs of ``smc`` for the measurements).
DEFAULT_NUM_MCMC_STEPS = 10
DEFAULT_NUM_INTEGRATION_STEPS = 20
#: Target acceptance of the step-size adaptation, per move kind.
DEFAULT_TARGET_ACCEPTANCE = {"hmc": 0.75, "ghmc": 0.9}
#: Default friction per move kind (``hmc``: plain HMC; ``ghmc``: partial refresh).
DEFAULT_FRICTION = {"hmc": 0.0, "ghmc": 1.0}
#: Smallest default stage cap (adaptive tempering's, in practice).
DEFAULT_MAX_STAGES = 1000


class SMCHistory(NamedTuple):
    """Per-stage diagnostics, numpy arrays of length ``num_stages``.

    Attributes
    ----------
    lam : tempering exponent reached (1 throughout for data annealing).
    num_data : data points in the target (``n`` throughout for tempering).
    ess : effective sample size after reweighting, before resampling.
    resampled : whether the stage resampled.
    acceptance_rate : mean Metropolis acceptance over the stage's moves (1 if unadjusted).
    step_size : step size of the stage's last move.
    num_integration_steps : BAOAB steps per move in the stage's last move.
    num_divergent : particles with a non-finite log density or gradient in the stage
        (at reweighting, or in a move proposal; plain HMC moves look only at a
        trajectory's end point, where a non-finite gradient on the way also shows).
    log_evidence_increment : ``log sum_j W_{t-1,j} exp(incr_j)``.
    """

    lam: np.ndarray
    num_data: np.ndarray
    ess: np.ndarray
    resampled: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    num_integration_steps: np.ndarray
    num_divergent: np.ndarray
    log_evidence_increment: np.ndarray


class SMCResult(NamedTuple):
    """The output of :func:`smc`.

    Attributes
    ----------
    particles : array ``(N, dim)``
        Final particles (all finite; a dropped particle keeps a finite position and weight 0).
        Split over the devices of a sharded run; a numpy array in a multi-process run (as
        are ``log_weights``).
    log_weights : array ``(N,)``
        Normalised log weights (``logsumexp = 0``; ``-inf`` for dropped particles).
    log_evidence : float
        Estimate of ``log p(y)`` (of the last target reached, if ``hit_max_stages``).
    history : SMCHistory
    num_stages : int
    hit_max_stages : bool
        The run stopped at ``max_stages`` before reaching the posterior.
    num_gradient_evaluations : int
        Gradient evaluations of the log density over all particles.
    num_devices : int
        Devices the particles were split over (1: not sharded).
    """

    particles: Array
    log_weights: Array
    log_evidence: float
    history: SMCHistory
    num_stages: int
    hit_max_stages: bool
    num_gradient_evaluations: int
    num_devices: int = 1


class _Target(NamedTuple):
    logprior: Callable[[Array], Array]
    loglikelihood_per_datum: Callable[[Array], Array]
    sample_prior: Callable[[Array, int], Array]


class _Config(NamedTuple):
    """The shapes of the compiled program (hashable): a change recompiles.

    Everything else is a runtime value in :class:`_Params`, so runs on one target with the
    same particle count and stage cap share one program whatever the schedule within its
    family (tempering, or data annealing), thresholds, resampling scheme or tuning
    options. The family is static because tempering needs only one log-likelihood
    per particle, ``(N,)``, while data annealing needs the ``(N, n)`` per-datum matrix: a
    program holding both would reserve memory for the matrix even when it never runs.
    ``fast_move`` is static too: plain HMC moves (the default) compile only the leapfrog
    path, every other move (``ghmc``, friction, unadjusted) only the general BAOAB path;
    holding both cost a third more compilation (yacht's network: 5.0 s against 3.5 s).
    ``mesh`` and ``particle_chunk`` say how the program is laid out (devices, memory), not
    what it computes: they are left out of checkpoints, as are ``tempering`` (the schedule
    kind is recorded) and ``fast_move`` (the move's settings are). ``num_chains`` is
    recorded only when it is set (waste-free), so that standard runs resume checkpoints
    written before it existed. ``progress`` (static, not recorded) compiles the progress
    bar's host callback in only when a bar is shown: a program holding a callback, even
    one behind a ``lax.cond`` that never fires, leaves jax's fast dispatch path and took
    about 0.6 ms more a call (toy problem, 8 particles, about 4 ms a call).
    """

    num_particles: int
    num_data: int
    max_stages: int
    tempering: bool = True
    mesh: Any = None  # jax.sharding.Mesh over the particles, or None for one device
    particle_chunk: int | None = None
    num_chains: int = 0  # waste-free SMC: chains resampled per stage (0: standard SMC)
    fast_move: bool = True  # plain HMC moves: only the leapfrog path is compiled
    progress: bool = False  # the progress bar's host callback is compiled in


# Schedule kinds, as indices of a lax.switch.
_KINDS = ("tempering-fixed", "tempering-adaptive", "data-fixed", "data-adaptive")
_RESAMPLING = tuple(RESAMPLERS)


class _Params(NamedTuple):
    """Runtime values: a change reuses the compiled program. Host (numpy) values when
    built, except the initial particles (a device array, or split over the mesh)."""

    kind: Array
    lambdas: Array
    batch_size: Array
    order: Array
    shuffle: Array
    target_ess: Array
    conditional_ess: Array
    ess_threshold: Array
    resampling: Array
    step_size: Array
    auto_step_size: Array
    adapt_step_size: Array
    friction: Array
    per_step_test: Array
    metropolis: Array
    mass: Array
    precondition: Array
    target_acceptance: Array
    num_mcmc_steps: Array
    num_integration_steps: Array
    adapt_length: Array
    trajectory_length: Array
    initial_particles: Array
    has_initial: Array
    bar_key: Array


class _Buffers(NamedTuple):
    lam: Array
    num_data: Array
    ess: Array
    resampled: Array
    acceptance_rate: Array
    step_size: Array
    num_integration_steps: Array
    num_divergent: Array
    log_evidence_increment: Array
    steps_per_particle: Array


class _Carry(NamedTuple):
    t: Array
    particles: Array
    log_weights: Array
    lam: Array
    k: Array
    log_evidence: Array
    log_step: Array
    failed: Array  # 0: fine; 1: every weight zero at reweighting; 2: after the moves
    key: Array
    order: Array  # data annealing: the order in which the points come in
    hist: _Buffers


#: Prior draws at which a checkpoint fingerprints a target given as plain functions.
_NUM_PROBES = 4


def _finite_state(state: baoab.BAOABState) -> Array:
    grads_ok = jnp.all(jnp.isfinite(state.logdensity_grad), axis=-1)
    return jnp.isfinite(state.logdensity) & grads_ok


def _normalise(log_weights: Array) -> tuple[Array, Array]:
    lw = jnp.where(jnp.isfinite(log_weights), log_weights, -jnp.inf)
    total = logsumexp(lw)
    return jnp.where(jnp.isfinite(total), lw - total, lw), total


def _traced_target(static: _Target | None, data: Any) -> _Target:
    """The target inside a compiled function: the static triple of plain functions, or
    the methods of the traced pytree posterior ``data``."""
    return static if static is not None else _as_target(data)


@functools.partial(jax.jit, static_argnames=("static_target", "config"))
def _init(
    static_target: _Target | None, config: _Config, data: Any, key: Array, params: _Params
) -> tuple[_Carry, Array]:
    """The state before the first stage, and the log-likelihood at a few of its particles
    (a fingerprint of the data for checkpoints).

    The target is ``static_target`` (plain functions, part of the compiled program) or, when
    that is None, the pytree posterior ``data`` (traced: one program for all data sets of a
    shape).
    """
    target = _traced_target(static_target, data)
    mesh = config.mesh
    N, n, S = config.num_particles, config.num_data, config.max_stages
    dtype = jnp.result_type(float)
    k_init, k_order, k_loop = jax.random.split(key, 3)

    particles = jnp.where(
        params.has_initial,
        params.initial_particles.astype(dtype),
        sharding.constrain(target.sample_prior(k_init, N).astype(dtype), mesh),
    )
    particles = sharding.constrain(particles, mesh)
    shuffled = jax.random.permutation(k_order, n).astype(jnp.int32)
    order = jnp.where(params.shuffle, shuffled, params.order)
    tempering = params.kind < 2
    lam0 = jnp.where(tempering, 0.0, 1.0).astype(dtype)
    k0 = jnp.where(tempering, n, 0).astype(jnp.int32)

    mass0 = _stage_mass(params, particles, jnp.zeros((N,), dtype))
    log_step0 = jnp.where(
        params.auto_step_size,
        jnp.log(tuning.initial_step_size(particles, mass0)),
        jnp.log(params.step_size),
    )

    def buf(dt: Any) -> Array:
        return jnp.zeros((S,), dt)

    hist = _Buffers(
        buf(dtype), buf(jnp.int32), buf(dtype), buf(bool), buf(dtype), buf(dtype),
        buf(jnp.int32), buf(jnp.int32), buf(dtype), buf(jnp.int32),
    )
    carry = _Carry(
        t=jnp.asarray(0, jnp.int32),
        particles=particles,
        log_weights=sharding.constrain(jnp.full((N,), -math.log(N), dtype), mesh),
        lam=lam0,
        k=k0,
        log_evidence=jnp.zeros((), dtype),
        log_step=log_step0.astype(dtype),
        failed=jnp.asarray(0, jnp.int32),
        key=k_loop,
        order=order,
        hist=hist,
    )
    probe = jax.vmap(target.loglikelihood_per_datum)(particles[: min(N, _NUM_PROBES)])
    return carry, probe


def _stage_mass(params: _Params, x: Array, log_weights: Array) -> Array:
    precond = tuning.preconditioning_mass(x, log_weights)
    return jnp.where(params.precondition, precond, params.mass)


@functools.partial(jax.jit, static_argnames=("static_target", "config"))
def _advance(
    static_target: _Target | None,
    config: _Config,
    data: Any,
    carry: _Carry,
    params: _Params,
    stop: Array,
) -> _Carry:
    """Run the stages ``carry.t, ..., stop - 1`` and return the state after them.

    Fewer stages run when the posterior is reached or every particle fails. ``stop`` is
    traced: one compiled program runs the whole schedule or any slice of it, and a run cut
    into slices (checkpoints) computes bit for bit what one call computes. The target is
    given as in :func:`_init`.

    With a mesh the particle arrays (particles, log weights, BAOAB states) are split over
    it: they are constrained to that sharding at the loop carry, after resampling and in
    the moves' loop, so the per-particle work stays on each device and only the global
    reductions and the resampling gather communicate.
    """
    target = _traced_target(static_target, data)
    mesh, chunk = config.mesh, config.particle_chunk
    N, n, S = config.num_particles, config.num_data, config.max_stages
    waste_free = config.num_chains > 0
    # Particles that start the moves: all N, or the N / P chains of waste-free SMC.
    n_start = config.num_chains if waste_free else N
    dtype = jnp.result_type(float)
    order = carry.order
    rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))

    def data_weights(lam: Array, k: Array) -> Array:
        return lam * (rank < k).astype(dtype)

    tempering = config.tempering

    def per_particle(f: Callable[[Any], Any], xs: Any) -> Any:
        # vmap over the particles, in chunks of ``particle_chunk`` per device if asked.
        return sharding.map_particles(f, xs, mesh, chunk)

    def stage_mass(x: Array, log_weights: Array) -> Array:
        return _stage_mass(params, x, log_weights)

    def done(c: _Carry) -> Array:
        return (c.lam >= 1.0) & (c.k >= n)

    def cond(c: _Carry) -> Array:
        return (c.t < jnp.minimum(stop, S)) & ~done(c) & (c.failed == 0)

    def criterion_switch(fn: Callable[[bool], Array]) -> Array:
        return jax.lax.cond(params.conditional_ess, lambda: fn(True), lambda: fn(False))

    def reweight_tempering(c: _Carry) -> tuple[Array, Array, Array]:
        """``(lam', k', incr)``: tempering needs only each particle's total log-likelihood,
        so the ``(N, n)`` matrix is never formed."""
        total = per_particle(lambda x: jnp.sum(target.loglikelihood_per_datum(x)), c.particles)

        def adaptive() -> Array:
            return criterion_switch(
                lambda cess: schedules.next_lambda(
                    c.log_weights, total, c.lam, params.target_ess, cess
                )
            ).astype(dtype)

        def fixed() -> Array:
            return params.lambdas[c.t].astype(dtype)

        lam = jax.lax.cond(params.kind == _KINDS.index("tempering-adaptive"), adaptive, fixed)
        return lam, c.k, (lam - c.lam) * total

    def reweight_data(c: _Carry) -> tuple[Array, Array, Array]:
        """``(lam', k', incr)`` for data annealing: the adaptive batch needs the per-datum
        log-likelihoods ``(N, n)`` for its bisection over the number of points."""
        ll = per_particle(target.loglikelihood_per_datum, c.particles)  # (N, n)

        def adaptive() -> Array:
            return criterion_switch(
                lambda cess: schedules.next_num_data(
                    c.log_weights, ll[:, order], c.k, params.target_ess, cess
                )
            ).astype(jnp.int32)

        def fixed() -> Array:
            return jnp.minimum(c.k + params.batch_size, n).astype(jnp.int32)

        k = jax.lax.cond(params.kind == _KINDS.index("data-adaptive"), adaptive, fixed)
        dw = data_weights(c.lam, k) - data_weights(c.lam, c.k)
        return c.lam, k, ll @ dw

    def stage(c: _Carry) -> _Carry:
        c = c._replace(
            particles=sharding.constrain(c.particles, mesh),
            log_weights=sharding.constrain(c.log_weights, mesh),
        )
        key, k_resample, k_move = jax.random.split(c.key, 3)

        # -- 1. reweight by the incremental likelihood (particles still target pi_{t-1}) --
        lam_new, k_new, incr = reweight_tempering(c) if tempering else reweight_data(c)
        incr = jnp.where(jnp.isfinite(incr), incr, -jnp.inf)
        was_alive = jnp.isfinite(c.log_weights)
        div_reweight = was_alive & ~jnp.isfinite(incr)

        # -- 2. evidence: log sum_j W_{t-1,j} exp(incr_j) -----------------------------------
        log_weights, log_increment = _normalise(c.log_weights + incr)
        failed = jnp.where(jnp.isfinite(log_increment), 0, 1).astype(jnp.int32)

        # -- 3. resample when the ESS is low (waste-free: N / P chain starts, always) -------
        stage_ess = ess(log_weights)
        w = jnp.where(failed == 0, jnp.exp(log_weights), jnp.full((N,), 1.0 / N, dtype))
        # One draw of uniforms serves every scheme (see resampling.FROM_UNIFORMS).
        u_resample = resampling_uniforms(k_resample, w, n_start)
        resamplers = [
            functools.partial(FROM_UNIFORMS[name], u_resample) for name in _RESAMPLING
        ]
        if waste_free:
            do_resample = jnp.asarray(True)
            # The mass from the weighted particles: all N, before only N / P are kept.
            mass = stage_mass(c.particles, log_weights)
            ancestors = jax.lax.switch(params.resampling, resamplers, w)
            log_weights = jnp.full((n_start,), -math.log(n_start), dtype)
        else:
            do_resample = stage_ess < params.ess_threshold * N
            ancestors = jax.lax.cond(
                do_resample,
                lambda: jax.lax.switch(params.resampling, resamplers, w),
                lambda: jnp.arange(N, dtype=jnp.int32),
            )
            log_weights = jnp.where(do_resample, jnp.full((N,), -math.log(N), dtype), log_weights)
        # The gather crosses devices (XLA's collectives); the copies land split again.
        particles = sharding.constrain(c.particles[ancestors], mesh)
        log_weights = sharding.constrain(log_weights, mesh)

        # -- 4. move with BAOAB moves that leave pi_t invariant ---------------------------------
        if tempering:
            # Every datum weighs lam_new; this form's gradient runs at the speed of the
            # posterior's (see smc/tempered.py).
            logdensity = tempered_logdensity(
                target.logprior, target.loglikelihood_per_datum, lam_new
            )
        else:
            w_new = data_weights(lam_new, k_new)

            def logdensity(theta: Array) -> Array:
                ll = target.loglikelihood_per_datum(theta)
                return target.logprior(theta) + jnp.dot(w_new, ll)

        if not waste_free:
            mass = stage_mass(particles, log_weights)
        states = per_particle(lambda x: baoab.init(x, logdensity), particles)
        states = sharding.constrain(states, mesh)
        alive = jnp.isfinite(log_weights) & _finite_state(states)

        def num_steps(h: Array) -> Array:
            by_length = tuning.num_steps_for_length(
                h, params.trajectory_length, params.num_integration_steps
            )
            return jnp.where(params.adapt_length, by_length, params.num_integration_steps)

        def one_move(keys: Array, states: baoab.BAOABState, h: Array, L: Array) -> tuple:
            def one(ks: tuple) -> tuple:
                return move(
                    ks[0], ks[1], logdensity, h, params.friction, mass, L,
                    params.per_step_test, params.metropolis, fast=config.fast_move,
                )

            return per_particle(one, (keys, states))
        n_alive = jnp.maximum(jnp.sum(alive), 1).astype(dtype)
        P = N // n_start  # states kept per chain (1 state and no buffer: standard SMC)

        def move_body(m: Array, mc: tuple) -> tuple:
            states, log_h, acc_total, div_any, steps_total, _, _, kept = mc
            # Without adaptation use the given step exactly (exp(log h) may round).
            h = jnp.where(params.adapt_step_size, jnp.exp(log_h), params.step_size)
            L = num_steps(h)
            keys = jax.random.split(jax.random.fold_in(k_move, m), n_start)
            keys = sharding.constrain(keys, mesh)
            states, info = one_move(keys, sharding.constrain(states, mesh), h, L)
            states = sharding.constrain(states, mesh)
            acc = jnp.sum(jnp.where(alive, info.acceptance_rate, 0.0)) / n_alive
            div = info.is_divergent & alive
            frac_div = jnp.sum(div) / n_alive
            adapted = tuning.update_log_step_size(log_h, acc, frac_div, params.target_acceptance)
            log_h = jnp.where(params.adapt_step_size, adapted, log_h)
            if waste_free:
                # Keep the chain's state after move m as its (m + 1)-th particle.
                ok_m = _finite_state(states) & alive
                kept = (kept[0].at[m + 1].set(states.position), kept[1].at[m + 1].set(ok_m))
            return states, log_h, acc_total + acc, div_any | div, steps_total + L, L, h, kept

        h0 = jnp.where(params.adapt_step_size, jnp.exp(c.log_step), params.step_size)
        # Waste-free: every chain's P states, (P, N / P, ...), all the chain's start at
        # first; move m overwrites row m + 1.
        kept0 = None
        if waste_free:
            kept0 = (
                jnp.broadcast_to(particles, (P, *particles.shape)),
                jnp.broadcast_to(alive, (P, n_start)),
            )
        init_mc = (
            states, c.log_step, jnp.zeros((), dtype), jnp.zeros((n_start,), bool),
            jnp.asarray(0, jnp.int32), num_steps(h0), h0, kept0,
        )
        moves_done = (
            jnp.minimum(params.num_mcmc_steps, P - 1) if waste_free else params.num_mcmc_steps
        )
        mc = jax.lax.fori_loop(0, moves_done, move_body, init_mc)
        states, log_step, acc_total, div_any, steps_total, last_L, last_h, kept = mc
        acc_mean = jnp.where(moves_done > 0, acc_total / jnp.maximum(moves_done, 1), 1.0)

        # A particle that ended non-finite (unadjusted moves) is dropped: weight zero, and
        # its last finite position kept so that no NaN reaches the output.
        if waste_free:
            start = jnp.broadcast_to(particles, kept[0].shape)
            ok = kept[1].reshape(N)
            particles = jnp.where(kept[1][..., None], kept[0], start).reshape(N, -1)
            log_weights = jnp.full((N,), -math.log(N), dtype)
        else:
            ok = _finite_state(states) & alive
            particles = jnp.where(ok[:, None], states.position, particles)
        log_weights, total = _normalise(jnp.where(ok, log_weights, -jnp.inf))
        failed = jnp.where((failed == 0) & ~jnp.isfinite(total), 2, failed).astype(jnp.int32)

        t = c.t
        h = c.hist
        hist = _Buffers(
            lam=h.lam.at[t].set(lam_new),
            num_data=h.num_data.at[t].set(k_new),
            ess=h.ess.at[t].set(stage_ess),
            resampled=h.resampled.at[t].set(do_resample),
            acceptance_rate=h.acceptance_rate.at[t].set(acc_mean),
            step_size=h.step_size.at[t].set(last_h),
            num_integration_steps=h.num_integration_steps.at[t].set(last_L),
            num_divergent=h.num_divergent.at[t].set(
                (jnp.sum(div_reweight) + jnp.sum(div_any)).astype(jnp.int32)
            ),
            log_evidence_increment=h.log_evidence_increment.at[t].set(log_increment),
            # One gradient per particle at the stage's start, then one per BAOAB step.
            steps_per_particle=h.steps_per_particle.at[t].set((1 + steps_total).astype(jnp.int32)),
        )
        if config.progress:
            level = jnp.where(tempering, lam_new, k_new.astype(dtype))
            report_level(params.bar_key, level, t + 1)
        return _Carry(
            t=t + 1,
            particles=sharding.constrain(particles, mesh),
            log_weights=sharding.constrain(log_weights, mesh),
            lam=lam_new,
            k=k_new,
            log_evidence=c.log_evidence + log_increment,
            log_step=log_step,
            failed=failed,
            key=key,
            order=c.order,
            hist=hist,
        )

    out = jax.lax.while_loop(cond, stage, carry)
    return out._replace(
        particles=sharding.constrain(out.particles, mesh),
        log_weights=sharding.constrain(out.log_weights, mesh),
    )


def _as_target(posterior: Any) -> _Target:
    names = ("logprior", "loglikelihood_per_datum", "sample_prior")
    if all(callable(getattr(posterior, a, None)) for a in names):
        return _Target(*(getattr(posterior, a) for a in names))
    if isinstance(posterior, tuple | list) and len(posterior) == 3:
        if not all(callable(f) for f in posterior):
            raise TypeError(
                "posterior given as a triple must hold three callables "
                "(logprior_fn, loglikelihood_per_datum_fn, sample_prior_fn)"
            )
        return _Target(*posterior)
    raise TypeError(
        "posterior must be a Posterior (with logprior, loglikelihood_per_datum and "
        "sample_prior) or a triple (logprior_fn, loglikelihood_per_datum_fn, sample_prior_fn), "
        f"got {type(posterior).__name__}"
    )


def _shapes(
    static: _Target | None, data: Any, key: Array, num_particles: int
) -> tuple[int, int]:
    """``(dim, num_data)`` by abstract evaluation (no compilation), checking what the target
    functions return.

    The target is given as to the compiled functions: ``static`` plain functions, or the
    pytree posterior ``data`` (arrays or ``jax.ShapeDtypeStruct`` leaves) when ``static``
    is None.
    """

    def abstract(name: str, arg: Any, *static_args: Any) -> Any:
        def f(d: Any, a: Any) -> Any:
            return getattr(_traced_target(static, d), name)(a, *static_args)

        return jax.eval_shape(f, data, arg)

    try:
        draws = abstract("sample_prior", key, num_particles)
    except Exception as err:
        raise ValueError(f"sample_prior(key, {num_particles}) failed: {err}") from err
    if len(draws.shape) != 2 or draws.shape[0] != num_particles:
        raise ValueError(
            f"sample_prior(key, {num_particles}) must return shape ({num_particles}, dim), "
            f"got {draws.shape}"
        )
    dim = int(draws.shape[1])
    theta = jax.ShapeDtypeStruct((dim,), jnp.result_type(float))
    try:
        ll = abstract("loglikelihood_per_datum", theta)
        lp = abstract("logprior", theta)
    except Exception as err:
        raise ValueError(f"the log prior or log-likelihood failed on a ({dim},) position: {err}") \
            from err
    if len(ll.shape) != 1 or ll.shape[0] < 1:
        raise ValueError(
            f"loglikelihood_per_datum must return one value per datum, shape (n,), got {ll.shape}"
        )
    if lp.shape != ():
        raise ValueError(f"logprior must return a scalar, got shape {lp.shape}")
    return dim, int(ll.shape[0])


def _target_shapes(
    static: _Target | None, data: Any, key: Array, num_particles: int
) -> tuple[int, int]:
    """:func:`_shapes`, remembered for pytree posteriors.

    A pytree posterior's shapes follow from its structure (the model is static) and its
    leaves' shapes and dtypes alone, so repeated runs on data of one shape skip the three
    abstract traces (a few milliseconds a call: a large share of a small run). Plain
    functions may close over anything and are evaluated every time.
    """
    if static is not None:
        return _shapes(static, None, key, num_particles)
    leaves, treedef = jax.tree_util.tree_flatten(data)
    return _cached_shapes(
        treedef,
        tuple((tuple(a.shape), np.dtype(a.dtype)) for a in leaves),
        (tuple(key.shape), key.dtype),
        num_particles,
        str(jnp.result_type(float)),
    )


@functools.lru_cache(maxsize=32)
def _cached_shapes(
    treedef: Any,
    leaf_types: tuple[tuple[tuple[int, ...], Any], ...],
    key_type: tuple[tuple[int, ...], Any],
    num_particles: int,
    float_dtype: str,
) -> tuple[int, int]:
    """:func:`_shapes` of the pytree posterior with this structure and these leaf shapes
    and dtypes. ``float_dtype`` (the positions' dtype, which depends on the x64 setting) is
    part of the cache key only."""
    data = treedef.unflatten([jax.ShapeDtypeStruct(s, d) for s, d in leaf_types])
    key = jax.ShapeDtypeStruct(*key_type)
    return _shapes(None, data, key, num_particles)


def _check_mass(mass: Any, dim: int) -> np.ndarray:
    m = np.asarray(mass, dtype=float)
    if m.ndim > 1 or (m.ndim == 1 and m.shape[0] != dim):
        raise ValueError(f"mass must be a scalar or have shape ({dim},), got shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("mass must be positive and finite")
    return np.broadcast_to(m, (dim,)).copy()


def _key_data(key: Array) -> np.ndarray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def _settings(
    posterior: Any, target: _Target, config: _Config, dim: int, key: Array, params: _Params
) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed: every runtime value of the program
    (small ones as values, arrays by hash), its shapes, the key and the model."""
    # How it runs: the kind, the move and its settings are recorded as runtime values.
    layout = ("mesh", "particle_chunk", "tempering", "fast_move", "progress")
    out: dict[str, Any] = {k: v for k, v in config._asdict().items() if k not in layout}
    if not config.num_chains:
        del out["num_chains"]  # standard SMC: as recorded before waste-free existed
    out.update(dim=dim, dtype=str(jnp.result_type(float)))
    for name, value in params._asdict().items():
        if name == "bar_key":  # how the run is shown, not what it computes
            continue
        a = np.asarray(value)
        out[name] = a.item() if a.size == 1 else _ckpt.array_digest(a)
    out["kind"] = _KINDS[out["kind"]]
    out["resampling"] = _RESAMPLING[out["resampling"]]
    out["key"] = _ckpt.array_digest(_key_data(key))
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    out["key_impl"] = str(jax.random.key_impl(key)) if typed else None
    model = getattr(posterior, "model", None)
    out["model"] = None if model is None else _ckpt.describe(model)
    return out


def _data_hash(posterior: Any, target: _Target, probe: Array | None) -> str | None:
    """Hash of the data: of ``X`` and ``y`` for a :class:`Posterior` (exact, portable and
    known before compiling), else of the log-likelihood at a few prior draws (``probe``, a
    fingerprint of data and model; None until it is computed)."""
    owner = getattr(target.loglikelihood_per_datum, "__self__", posterior)
    X, y = getattr(owner, "X", None), getattr(owner, "y", None)
    if isinstance(X, jax.Array | np.ndarray) and isinstance(y, jax.Array | np.ndarray):
        return "data:" + _ckpt.array_digest(X, y)
    return None if probe is None else "likelihood:" + _ckpt.array_digest(probe)


def _carry_arrays(carry: _Carry) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    carry = sharding.to_host(carry)  # the particles may be split over processes
    for name, value in carry._asdict().items():
        if name == "hist":
            out.update({f"hist.{k}": np.asarray(v) for k, v in value._asdict().items()})
        elif name == "key":
            out[name] = _key_data(value)
        else:
            out[name] = np.asarray(value)
    return out


def _carry_from_arrays(
    arrays: dict[str, np.ndarray], like: _Carry, path: str | os.PathLike
) -> _Carry:
    """A carry from checkpoint arrays, checked against a fresh one's names, shapes, dtypes."""
    expected = _carry_arrays(like)
    if set(arrays) != set(expected) or any(
        arrays[k].shape != v.shape or arrays[k].dtype != v.dtype for k, v in expected.items()
    ):
        raise _ckpt.CheckpointError(
            f"checkpoint {str(_ckpt.paths(path)[0])!r} does not hold the state this run "
            "expects (damaged, or written by another version); delete it to start afresh"
        )
    fields: dict[str, Any] = {}
    for name, value in like._asdict().items():
        if name == "hist":
            fields[name] = _Buffers(
                *(jnp.asarray(arrays[f"hist.{k}"]) for k in value._fields)
            )
        elif name == "key" and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            fields[name] = jax.random.wrap_key_data(
                jnp.asarray(arrays[name]), impl=jax.random.key_impl(value)
            )
        else:
            fields[name] = jnp.asarray(arrays[name])
    return _Carry(**fields)


def _run_with_checkpoints(
    static_target: _Target | None,
    config: _Config,
    data: Any,
    carry: _Carry,
    params: _Params,
    path: str | os.PathLike,
    every: int,
    meta: dict[str, Any],
) -> _Carry:
    """Run ``every`` stages at a time with the one compiled program, saving in between.

    In a multi-process run every process writes the same checkpoint (atomically, so
    concurrent writers to a shared file system are safe).
    """
    S, n = config.max_stages, config.num_data
    while True:
        t = int(carry.t)
        stop = min(t + every, S)
        carry = _advance(static_target, config, data, carry, params, _stop(stop, config))
        t_new = int(carry.t)
        if int(carry.failed):
            return carry  # keep the last good checkpoint; smc() raises
        finished = t_new < stop or t_new >= S or (float(carry.lam) >= 1.0 and int(carry.k) >= n)
        info = {
            "stage": t_new,
            "finished": finished,
            "lam": float(carry.lam),
            "num_data": int(carry.k),
            "log_evidence": float(carry.log_evidence),
            "checkpoint_every": every,
        }
        _ckpt.save(path, _carry_arrays(carry), {**meta, **info})
        if finished:
            return carry


def _stop(stop: int, config: _Config) -> np.ndarray | Array:
    """The traced last stage: a host value without a mesh, else replicated over the mesh
    like every scalar."""
    value = np.asarray(stop, np.int32)
    if config.mesh is None:
        return value
    layout = sharding.Layout(tuple(config.mesh.devices.flat), config.mesh)
    return sharding.put(value, layout, particle=False)


def _split_target(posterior: Any, target: _Target) -> tuple[_Target | None, Any]:
    """``(static, data)`` for the compiled functions.

    A pytree posterior (e.g. :class:`~langevin_nets.model.Posterior`: leaves ``X, y``,
    static part the model) is passed whole as a traced argument, so its data are inputs of
    the program and one compilation serves every data set of the same shape. Plain
    functions (a triple, or an object that is not a pytree of arrays) are static: part of
    the program, with whatever data they close over baked in.
    """
    if isinstance(posterior, tuple | list):
        return target, None
    leaves, treedef = jax.tree_util.tree_flatten(posterior)
    is_node = not (len(leaves) == 1 and leaves[0] is posterior)
    if is_node and leaves and all(isinstance(a, jax.Array | np.ndarray) for a in leaves):
        try:
            hash(treedef)
        except TypeError:
            return target, None
        return None, posterior
    return target, None


def _open_fraction(value: Any, name: str) -> float:
    v = fraction(value, name)
    if v >= 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def smc(
    posterior: Any,
    key: Array,
    *,
    num_particles: int,
    schedule: str | None = None,
    num_stages: int | None = None,
    lambdas: Any = None,
    batch_size: int | str = 1,
    data_order: Any = None,
    target_ess: float = 0.5,
    conditional_ess: bool = False,
    ess_threshold: float | None = None,
    resampling: str = "systematic",
    move: str = "hmc",
    num_mcmc_steps: int | None = None,
    waste_free: int | None = None,
    num_integration_steps: int = DEFAULT_NUM_INTEGRATION_STEPS,
    trajectory_length: float | None = None,
    metropolis: bool = True,
    step_size: float | None = None,
    friction: float | None = None,
    mass: Any = 1.0,
    precondition: bool = False,
    target_acceptance: float | None = None,
    adapt_step_size: bool | None = None,
    max_stages: int | None = None,
    initial_particles: Any = None,
    progress_bar: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    devices: Any = None,
    particle_chunk: int | None = None,
    data_chunk: int | None = None,
) -> SMCResult:
    """Sample a posterior and estimate its evidence with tempered or data-annealed SMC.

    Parameters
    ----------
    posterior : Posterior or (logprior_fn, loglikelihood_per_datum_fn, sample_prior_fn)
        ``loglikelihood_per_datum_fn(theta) -> (n,)``; ``sample_prior_fn(key, N) -> (N, dim)``.
    key : PRNG key
    num_particles : int
        ``N`` (at least 2).
    schedule : {"adaptive", "geometric", "linear", "data"}, optional
        ``adaptive`` (the default): tempering, the next exponent by bisection so that the
        ESS of the new weights is ``target_ess`` times the current ESS (``target_ess * N``
        after resampling), or the conditional ESS is ``target_ess * N``.
        ``geometric``: the original's path ``(100**u - 1) / 99`` over ``num_stages`` stages.
        ``linear``: ``lam = t / num_stages``. ``data``: data annealing, ``batch_size`` new
        points per stage (``batch_size="adaptive"``: as many as keep the ESS criterion at
        ``target_ess``, at least one).
    num_stages : int, optional
        Stages of the ``geometric`` and ``linear`` paths (required there).
    lambdas : sequence of float, optional
        A custom increasing tempering path ending at 1; leave ``schedule`` unset.
    batch_size : int or "adaptive"
        Data annealing: points added per stage (1 is the original).
    data_order : None, "shuffle" or a permutation of ``range(n)``
        Order in which data annealing lets the points in; ``"shuffle"`` draws it from ``key``.
    target_ess : float in (0, 1)
        Adaptive schedules' ESS target. A higher target gives more, gentler stages. That
        helps when the moves decorrelate little per stage (one or two moves): on a conjugate
        model with two HMC moves per stage, 0.66 instead of 0.5 (18 stages instead of 14)
        cut the spread of the log evidence from 0.36 to 0.12 nats at N = 4096 (16 seeds).
        Set ``ess_threshold`` to the same value to keep resampling at every stage.
    conditional_ess : bool
        Adaptive schedules use the conditional ESS.
    ess_threshold : float in [0, 1], optional
        Resample when ``ESS < ess_threshold * N`` (1: every stage; 0: never). Default 0.5;
        not used with ``waste_free``, which resamples every stage.
    resampling : {"systematic", "stratified", "multinomial", "residual"}
    move : {"hmc", "ghmc"}
        ``hmc``: one Metropolis test per move (a trajectory of ``L`` steps); ``ghmc``: one
        per step with a partial momentum refresh (``friction > 0``) and a flip on rejection.
    num_mcmc_steps : int, optional
        Moves per stage (momentum redrawn before each); default 10. Not used with
        ``waste_free``, whose chains make ``waste_free - 1`` moves.
    waste_free : int, optional
        Waste-free SMC (Dau & Chopin 2022) with chains of ``P = waste_free`` states: every
        stage resamples ``N / P`` particles, moves each ``P - 1`` times, and keeps all the
        states visited, equally weighted, as the next ``N`` particles. A stage costs about
        ``N / P * (P - 1)`` moves, against ``N * num_mcmc_steps`` for standard SMC, and the
        log evidence stays unbiased. ``N`` must be a multiple of ``P`` (at least 2), and
        of ``P`` times the device count when the particles are split over devices.
    num_integration_steps : int
        BAOAB steps per move ``L`` (the cap when ``trajectory_length`` is given).
    trajectory_length : float, optional
        Keep ``step_size * L`` near this length: ``L = ceil(T / h)``, capped.
    metropolis : bool
        Metropolis-adjusted moves (exact for any step size). ``False`` gives the original's
        unadjusted moves (e.g. ``step_size=1e-4, friction=100, mass=10, move="ghmc"``).
    step_size : float, optional
        Initial (or, without adaptation, fixed) step size; default from the prior spread.
    friction : float, optional
        BAOAB ``gamma`` within a move; default 0 for ``hmc`` and 1 for ``ghmc``.
    mass : float or array ``(dim,)``
        Diagonal mass (ignored with ``precondition``).
    precondition : bool
        Diagonal mass ``1 / Var[theta]`` from the particles at each stage.
    target_acceptance : float in (0, 1), optional
        Step-size adaptation target; default 0.75 for ``hmc``, 0.9 for ``ghmc``.
    adapt_step_size : bool, optional
        Adapt the step size after each move from the particles' mean acceptance (default:
        when ``metropolis``; needs ``metropolis``).
    max_stages : int, optional
        Cap on the number of stages (default: the larger of 1000, ``n`` and the length of a
        fixed path). Reaching it stops the run with ``hit_max_stages=True`` and a warning.
    initial_particles : array ``(N, dim)``, optional
        Draws from the prior to start from (default: ``sample_prior``).
    progress_bar : bool
        Show the annealing level reached on stderr. The bar's host callback is compiled in
        only when it is shown, so turning it on or off compiles another program.
    checkpoint : path, optional
        Save the sampler's whole state to ``checkpoint.npz`` and ``checkpoint.json`` (a
        suffix ``.npz`` or ``.json`` on the path is dropped) every ``checkpoint_every``
        stages and at the end. Writes are atomic; see :mod:`langevin_nets.checkpoint`.
    checkpoint_every : int, optional
        Stages between checkpoints (default 1; needs ``checkpoint``).
    resume : bool
        Continue from the checkpoint at ``checkpoint`` if there is one (else start from
        the beginning). The result is bit for bit that of the uninterrupted run with the
        same key. Without ``resume`` an existing checkpoint is an error, so that it is
        never overwritten by accident. A checkpoint does not record the devices: it can be
        resumed on another device count (equal in distribution, not bit for bit).
    devices : None, int, list of jax.Device or jax.sharding.Mesh
        Devices to split the particles over (see :mod:`langevin_nets.smc.sharding`).
        ``None``: all of ``jax.devices()`` (every process's in a multi-process run) when
        ``num_particles`` is divisible by their count, else one device with a
        ``UserWarning``. An int ``k``: the first ``k`` devices (``num_particles`` must be
        divisible by ``k``). A list of devices, or a mesh (of any axis types and shape, e.g.
        from :func:`jax.make_mesh`): those devices, in order. One device runs the plain
        unsharded program.
    particle_chunk : int, optional
        Evaluate the log-likelihoods and run the moves ``particle_chunk`` particles at a
        time on each device (a ``lax.map`` over chunks of the device's particles), so that
        the memory for intermediate values scales with the chunk, not with ``N``. Results
        equal the unchunked ones to float rounding. Default: all at once.
    data_chunk : int, optional
        Evaluate each particle's log-likelihood over the data ``data_chunk`` points at a
        time: ``posterior.with_data_chunk(data_chunk)`` (a :class:`Posterior` only; a
        triple of functions must chunk itself).

    Returns
    -------
    SMCResult

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before anything is compiled; when resuming, for a
        checkpoint written with other settings, another key or other data.
    DivergenceError
        If every particle's log density or gradient became non-finite in a stage.

    Notes
    -----
    The stages run in one compiled ``while_loop`` whose carry is the whole sampler state
    (particles, log weights, evidence so far, schedule position and data order, adapted
    step size, PRNG key, history, stage counter) and whose last stage is a traced
    argument: with checkpoints the same program runs ``checkpoint_every`` stages at a time
    and the state is saved in between. The checkpoint is left in place after the run; a
    resumed run that had already finished returns at once.

    A :class:`~langevin_nets.model.Posterior` is a traced argument of the program: runs on
    data sets of the same shape (and the same model, particle count and stage cap) share
    one compilation. A triple of functions is compiled in, data and all. Plain HMC moves
    (``move="hmc"``, friction 0, Metropolis) and every other move compile separate
    programs, each holding only its own path.

    Memory: tempering keeps one total log-likelihood per particle, ``(N,)``; data
    annealing forms the ``(N, n)`` per-datum matrix each stage (its adaptive batch
    bisects over the number of points, and the increments are partial sums over the data).

    Devices: the particles, their log weights and the moves' states are split over a 1-D
    mesh (axis ``particles``); the per-particle work runs on each device's share and XLA's
    collectives do the global steps (normalisation, ESS, evidence, adaptive bisection,
    resampling). In a multi-process run every process calls ``smc`` with the same
    arguments and gets the whole result as host (numpy) arrays. For a given key and
    device count the result is reproducible bit for bit. Across device counts the random
    draws are the same (partitionable threefry), but the sums over particles are reduced
    in another order, so results agree to float rounding at first; the rounding
    differences can change an accept/reject decision or a resampling index later in the
    run, after which the runs differ as two samples of the same law.
    """
    if data_chunk is not None:
        chunk_size = positive_int(data_chunk, "data_chunk")
        if isinstance(posterior, tuple | list):
            raise TypeError(
                "data_chunk needs a Posterior; a triple of functions evaluates its own "
                "log-likelihood (chunk inside loglikelihood_per_datum_fn)"
            )
        if not callable(getattr(posterior, "with_data_chunk", None)):
            raise TypeError(
                f"data_chunk needs a posterior with a with_data_chunk method; "
                f"{type(posterior).__name__} has none"
            )
        posterior = posterior.with_data_chunk(chunk_size)
    target = _as_target(posterior)
    static_target, data = _split_target(posterior, target)
    if not is_prng_key(key):
        raise TypeError(f"key must be a JAX PRNG key, got {type(key).__name__}")
    N = positive_int(num_particles, "num_particles")
    if N < 2:
        raise ValueError(f"num_particles must be at least 2, got {N}")
    p_chunk = None if particle_chunk is None else positive_int(particle_chunk, "particle_chunk")
    layout = sharding.resolve(devices, N)
    if p_chunk is not None and p_chunk >= N // layout.num_devices:
        p_chunk = None  # one chunk: the unchunked program
    if schedule is None:
        schedule = "adaptive" if lambdas is None else "custom"
    elif lambdas is not None:
        raise ValueError("lambdas sets its own tempering path; leave schedule unset")
    else:
        choice(schedule, "schedule", SCHEDULES)
    dim, n = _target_shapes(static_target, data, key, N)

    # -- schedule --------------------------------------------------------------------------
    lam_path = np.ones((1,))
    batch = 1
    shuffle = False
    order = np.arange(n)
    if schedule in ("geometric", "linear"):
        if num_stages is None:
            raise ValueError(f"schedule={schedule!r} needs num_stages")
        K = positive_int(num_stages, "num_stages")
        lam_path = (
            schedules.geometric_lambdas(K) if schedule == "geometric"
            else schedules.linear_lambdas(K)
        )
    elif num_stages is not None:
        raise ValueError("num_stages applies to the geometric and linear schedules only")
    if schedule == "custom":
        lam_path = schedules.check_lambdas(lambdas)
    if schedule == "data":
        if isinstance(batch_size, str):
            choice(batch_size, "batch_size", ("adaptive",))
            kind = "data-adaptive"
        else:
            batch = positive_int(batch_size, "batch_size")
            kind = "data-fixed"
        if isinstance(data_order, str):
            choice(data_order, "data_order", ("shuffle",))
            shuffle = True
        elif data_order is not None:
            order = np.asarray(data_order)
            if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
                raise ValueError(f"data_order must be a permutation of range({n})")
    else:
        if not (isinstance(batch_size, int | np.integer) and batch_size == 1):
            raise ValueError("batch_size applies to schedule='data' only")
        if data_order is not None:
            raise ValueError("data_order applies to schedule='data' only")
        kind = "tempering-adaptive" if schedule == "adaptive" else "tempering-fixed"
    adaptive = kind.endswith("adaptive")
    if conditional_ess and not adaptive:
        raise ValueError("conditional_ess applies to the adaptive schedules only")

    target_ess = _open_fraction(target_ess, "target_ess")
    thr: Any = 0.5 if ess_threshold is None else ess_threshold
    thr = float(thr) if isinstance(thr, int | float) else thr
    if not isinstance(thr, float) or not 0.0 <= thr <= 1.0:
        raise ValueError(f"ess_threshold must be a number in [0, 1], got {ess_threshold!r}")
    choice(resampling, "resampling", tuple(RESAMPLERS))
    choice(move, "move", MOVES)
    num_chains = 0
    if waste_free is not None:
        P = positive_int(waste_free, "waste_free")
        if P < 2:
            raise ValueError(f"waste_free (the chain length) must be at least 2, got {P}")
        if N % P:
            raise ValueError(
                f"waste_free={P} needs num_particles divisible by it (N / P chains of P "
                f"states); got num_particles={N}"
            )
        num_chains = N // P
        if num_chains % layout.num_devices:
            raise ValueError(
                f"waste_free={P} with num_particles={N} gives {num_chains} chains, which do "
                f"not split over {layout.num_devices} devices; make N / P a multiple of "
                f"{layout.num_devices}"
            )
        if num_mcmc_steps is not None:
            raise ValueError(
                "num_mcmc_steps does not apply with waste_free: each chain makes "
                f"waste_free - 1 = {P - 1} moves"
            )
        if ess_threshold is not None:
            raise ValueError("ess_threshold does not apply with waste_free: it resamples "
                             "every stage")  # fmt: skip
        num_mcmc_steps = P - 1
    M = nonnegative_int(
        DEFAULT_NUM_MCMC_STEPS if num_mcmc_steps is None else num_mcmc_steps, "num_mcmc_steps"
    )
    L = positive_int(num_integration_steps, "num_integration_steps")
    T = None
    if trajectory_length is not None:
        T = positive_float(trajectory_length, "trajectory_length")
    metropolis = bool(metropolis)
    if adapt_step_size is None:
        adapt_step_size = metropolis
    if adapt_step_size and not metropolis:
        raise ValueError(
            "adapt_step_size=True needs metropolis=True (the acceptance rate drives it); "
            "give a step_size with metropolis=False"
        )
    if step_size is None:
        if not adapt_step_size:
            raise ValueError("step_size is required when the step size is not adapted")
        h0 = 1.0
    else:
        h0 = positive_float(step_size, "step_size")
    if friction is None:
        gamma = DEFAULT_FRICTION[move]
    else:
        gamma = float(friction)
        if not np.isfinite(gamma) or gamma < 0:
            raise ValueError(f"friction must be a non-negative finite number, got {friction!r}")
    mass_arr = _check_mass(mass, dim)
    acc_target = (
        DEFAULT_TARGET_ACCEPTANCE[move] if target_acceptance is None
        else _open_fraction(target_acceptance, "target_acceptance")
    )
    if max_stages is None:
        # One default for every schedule on a data set, so that switching schedules reuses
        # the compiled program: enough for any fixed path and for data annealing.
        S = max(DEFAULT_MAX_STAGES, n, len(lam_path))
    else:
        S = positive_int(max_stages, "max_stages")
    if initial_particles is not None:
        x0 = np.asarray(initial_particles, dtype=float)
        if x0.shape != (N, dim):
            raise ValueError(f"initial_particles must have shape ({N}, {dim}), got {x0.shape}")
        if not np.all(np.isfinite(x0)):
            raise ValueError("initial_particles contains NaN or infinite values")
    else:
        x0 = np.zeros((N, dim))
    progress_bar = bool(progress_bar)
    if checkpoint is None:
        if checkpoint_every is not None or resume:
            raise ValueError("checkpoint_every and resume need a checkpoint path")
        every = 0
    else:
        _ckpt.paths(checkpoint)  # checks the path
        every = 1 if checkpoint_every is None else positive_int(
            checkpoint_every, "checkpoint_every"
        )
        if not isinstance(resume, bool | np.bool_):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if not resume and _ckpt.exists(checkpoint):
            raise _ckpt.CheckpointError(
                f"a checkpoint already exists at {str(_ckpt.paths(checkpoint)[0])!r}; pass "
                "resume=True to continue it, or delete it to start afresh"
            )

    dtype = jnp.result_type(float)
    lam_buf = np.ones((S,))
    lam_buf[: min(S, len(lam_path))] = lam_path[:S]
    config = _Config(
        num_particles=N,
        num_data=n,
        max_stages=S,
        tempering=kind.startswith("tempering"),
        mesh=layout.mesh,
        particle_chunk=p_chunk,
        num_chains=num_chains,
        fast_move=is_fast(gamma, move == "ghmc", metropolis),
        progress=progress_bar,
    )

    # The small settings stay host (numpy) values, which the compiled calls take in without a
    # dispatch apiece; the initial particles, possibly large, are copied to the device once.
    def flag(value: Any) -> np.ndarray:
        return np.asarray(bool(value))

    total = 1.0 if kind.startswith("tempering") else n
    bar = LevelProgressBar(total, desc="smc", enabled=progress_bar)
    params = _Params(
        kind=np.asarray(_KINDS.index(kind), np.int32),
        lambdas=np.asarray(lam_buf, dtype),
        batch_size=np.asarray(batch, np.int32),
        order=np.asarray(order, np.int32),
        shuffle=flag(shuffle),
        target_ess=np.asarray(target_ess, dtype),
        conditional_ess=flag(conditional_ess),
        ess_threshold=np.asarray(thr, dtype),
        resampling=np.asarray(_RESAMPLING.index(resampling), np.int32),
        step_size=np.asarray(h0, dtype),
        auto_step_size=flag(step_size is None),
        adapt_step_size=flag(adapt_step_size),
        friction=np.asarray(gamma, dtype),
        per_step_test=flag(move == "ghmc"),
        metropolis=flag(metropolis),
        mass=np.asarray(mass_arr, dtype),
        precondition=flag(precondition),
        target_acceptance=np.asarray(acc_target, dtype),
        num_mcmc_steps=np.asarray(M, np.int32),
        num_integration_steps=np.asarray(L, np.int32),
        adapt_length=flag(T is not None),
        trajectory_length=np.asarray(1.0 if T is None else T, dtype),
        initial_particles=jnp.asarray(x0, dtype),
        has_initial=flag(initial_particles is not None),
        bar_key=np.asarray(bar.key, np.int32),
    )
    # Inputs go where the program runs: particle arrays split over the mesh, the rest
    # replicated (without a device choice, the default device as before).
    # Settings are hashed from the host values, before the arrays are spread over devices.
    settings = None if checkpoint is None else _settings(
        posterior, target, config, dim, key, params
    )
    placed = devices is not None or layout.mesh is not None

    def place(tree: Any, particle: bool = False) -> Any:
        return sharding.put(tree, layout, particle) if placed else tree

    # The run's mesh is the current one while it runs: a mesh the caller has set (e.g. an
    # Explicit one from jax.make_mesh) would clash with the Auto mesh built here.
    with sharding.use(layout):
        params = place(params._replace(initial_particles=None))._replace(
            initial_particles=place(params.initial_particles, particle=True)
        )
        key_in, data = place(key), place(data)
        if checkpoint is None:
            with bar:
                carry, _ = _init(static_target, config, data, key_in, params)
                final = _advance(static_target, config, data, carry, params, _stop(S, config))
        else:
            loaded = _ckpt.load(checkpoint) if resume else None
            if loaded is not None:
                # Refuse a mismatch before compiling when possible (a Posterior's data hash
                # is known now; that of plain functions needs the compiled probe below).
                _ckpt.check_compatible(
                    loaded[1], checkpoint, kind="smc", config=settings,
                    data_hash=_data_hash(posterior, target, None),
                )  # fmt: skip
            with bar:
                carry, probe = _init(static_target, config, data, key_in, params)
                data_hash = _data_hash(posterior, target, probe)
                meta = _ckpt.header("smc", settings, data_hash)
                if loaded is not None:
                    _ckpt.check_compatible(
                        loaded[1], checkpoint, kind="smc", config=settings, data_hash=data_hash
                    )
                    carry = _carry_from_arrays(loaded[0], carry, checkpoint)
                    carry = place(carry._replace(particles=None, log_weights=None))._replace(
                        particles=place(carry.particles, particle=True),
                        log_weights=place(carry.log_weights, particle=True),
                    )
                final = _run_with_checkpoints(
                    static_target, config, data, carry, params, checkpoint, every, meta
                )
        if not final.particles.is_fully_addressable:
            # Split over processes: every process returns the whole result, on the host.
            final = sharding.to_host(final)
        # The scalars and history on the host (no device op outside the run's mesh).
        host = sharding.to_host(final._replace(particles=None, log_weights=None, key=None))
        final = host._replace(particles=final.particles, log_weights=final.log_weights)
    particles, log_weights = final.particles, final.log_weights
    reached = bool(final.lam >= 1.0) and int(final.k) >= n

    t = int(final.t)
    h = jax.tree.map(lambda a: np.asarray(a)[:t], final.hist)
    failed = int(final.failed)
    if failed:
        where = f"lambda={h.lam[-1]:.4g}" if kind.startswith("tempering") else (
            f"num_data={int(h.num_data[-1])}"
        )
        what = "at reweighting" if failed == 1 else "during the moves"
        raise DivergenceError(
            f"every particle diverged (non-finite log density or gradient) {what} at stage {t} "
            f"({where}); try a smaller step_size (last {float(h.step_size[-1]):.3g})"
            + ("" if metropolis else " or metropolis=True")
        )
    history = SMCHistory(
        lam=h.lam,
        num_data=h.num_data,
        ess=h.ess,
        resampled=h.resampled,
        acceptance_rate=h.acceptance_rate,
        step_size=h.step_size,
        num_integration_steps=h.num_integration_steps,
        num_divergent=h.num_divergent,
        log_evidence_increment=h.log_evidence_increment,
    )
    if not reached:
        level = (
            f"lambda={float(h.lam[-1]):.4g}" if kind.startswith("tempering")
            else f"num_data={int(h.num_data[-1])} of {n}"
        )
        warnings.warn(
            f"SMC stopped at max_stages={S} before reaching the posterior ({level}); "
            "the result targets that intermediate distribution",
            RuntimeWarning,
            stacklevel=2,
        )
    # Gradients per moved particle each stage, times the particles moved (N / P chains
    # when waste-free).
    grads = int((num_chains or N) * np.sum(h.steps_per_particle.astype(np.int64)))
    return SMCResult(
        particles=particles,
        log_weights=log_weights,
        log_evidence=float(final.log_evidence),
        history=history,
        num_stages=t,
        hit_max_stages=not reached,
        num_gradient_evaluations=grads,
        num_devices=layout.num_devices,
    )
