"""Langevin sampling: burn-in then production with the BAOAB kernel, in one compiled scan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import langevin_nets.kernels.baoab as baoab_kernel
from langevin_nets.errors import DivergenceError
from langevin_nets.kernels.baoab import BAOABState
from langevin_nets.progress import ProgressBar
from langevin_nets.validation import nonnegative_int, positive_float, positive_int

Array = jax.Array


class LangevinTrace(NamedTuple):
    """The output of :func:`langevin`.

    Leading axes are ``(num_chains, num_samples)`` when ``num_chains > 1``, else
    ``(num_samples,)``.

    Attributes
    ----------
    positions : array ``(..., dim)``
        Recorded positions (every ``thin``-th step of production).
    logdensity : array
        Log density at each recorded position.
    acceptance_rate : array
        Mean Metropolis acceptance probability over the steps since the previous
        record (1 for the unadjusted sampler).
    num_divergent : array
        Steps whose proposal had a non-finite log density or gradient, per chain.
    final_state : BAOABState
        Where each chain stopped (pass its position to continue).
    recorded : any
        ``record_fn(position)`` at each record, if ``record_fn`` was given, else None.
    num_gradient_evaluations : int
        Gradient evaluations across all chains, burn-in included.
    burnin_acceptance_rate : array
        Mean acceptance during burn-in, per chain (nan without burn-in).
    """

    positions: Array
    logdensity: Array
    acceptance_rate: Array
    num_divergent: Array
    final_state: BAOABState
    recorded: Any
    num_gradient_evaluations: int
    burnin_acceptance_rate: Array


def _check_mass(mass: Any, dim: int, name: str) -> Array:
    m = np.asarray(mass, dtype=float)
    if m.ndim > 1 or (m.ndim == 1 and m.shape[0] != dim):
        raise ValueError(f"{name} must be a scalar or have shape ({dim},), got shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"{name} must be positive and finite")
    return jnp.asarray(m)


def _initial_positions(initial_position: Any, num_chains: int) -> Array:
    x = np.asarray(initial_position, dtype=float)
    if x.ndim == 1:
        x = np.broadcast_to(x, (num_chains, x.shape[0]))
    elif x.ndim == 2:
        if x.shape[0] != num_chains:
            raise ValueError(
                f"initial_position has {x.shape[0]} rows but num_chains is {num_chains}"
            )
    else:
        raise ValueError(
            f"initial_position must have shape (dim,) or (num_chains, dim), got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("initial_position contains NaN or infinite values")
    return jnp.asarray(x, dtype=jnp.result_type(float))


def langevin(
    logdensity_fn: Callable[[Array], Array],
    key: Array,
    initial_position: Any,
    num_samples: int,
    *,
    step_size: float,
    friction: float,
    mass: Any = 1.0,
    temperature: float = 1.0,
    thin: int = 1,
    num_burnin: int = 0,
    burnin_step_size: float | None = None,
    burnin_friction: float | None = None,
    burnin_mass: Any = None,
    metropolis: bool = False,
    num_chains: int = 1,
    record_fn: Callable[[Array], Any] | None = None,
    progress_bar: bool = False,
) -> LangevinTrace:
    """Sample ``exp(logdensity_fn)`` with BAOAB Langevin dynamics.

    Burn-in runs ``num_burnin`` steps with its own step size, friction and mass
    (default: the production ones), e.g. high friction and mass to settle after MAP;
    production then runs ``num_samples * thin`` steps and records every ``thin``-th.
    The whole run is one ``jax.lax.scan`` under ``jit``; chains are ``vmap``-ped.

    Parameters
    ----------
    logdensity_fn : callable
        Log of the unnormalised target density of a flat position ``(dim,)``.
    key : PRNG key
    initial_position : array ``(dim,)`` or ``(num_chains, dim)``
    num_samples : int
        Samples recorded per chain.
    step_size, friction : float
        BAOAB's ``h`` (> 0) and ``gamma`` (>= 0).
    mass : float or array ``(dim,)``
        Diagonal mass.
    temperature : float
        Samples ``pi^(1/T)``.
    thin : int
        Steps between records.
    num_burnin : int
        Steps before recording starts.
    burnin_step_size, burnin_friction, burnin_mass : optional
        Burn-in settings.
    metropolis : bool
        Metropolis-adjust each step (exact for any step size; reports acceptance).
    num_chains : int
        Independent chains, run in parallel.
    record_fn : callable, optional
        ``record_fn(position)`` is evaluated and stored at each record (e.g. predictions).
    progress_bar : bool
        Show a progress bar on stderr.

    Returns
    -------
    LangevinTrace

    Raises
    ------
    ValueError
        For invalid arguments or an initial position where the density is not finite.
    DivergenceError
        If a chain's log density or gradient became non-finite during the run.
    """
    num_samples = positive_int(num_samples, "num_samples")
    thin = positive_int(thin, "thin")
    num_burnin = nonnegative_int(num_burnin, "num_burnin")
    num_chains = positive_int(num_chains, "num_chains")
    step_size = positive_float(step_size, "step_size")
    friction = float(friction)
    if not np.isfinite(friction) or friction < 0:
        raise ValueError(f"friction must be a non-negative finite number, got {friction!r}")
    temperature = positive_float(temperature, "temperature")
    b_step = (
        step_size
        if burnin_step_size is None
        else positive_float(burnin_step_size, "burnin_step_size")
    )
    b_friction = friction if burnin_friction is None else float(burnin_friction)
    if not np.isfinite(b_friction) or b_friction < 0:
        raise ValueError(f"burnin_friction must be non-negative, got {burnin_friction!r}")
    x0 = _initial_positions(initial_position, num_chains)
    dim = x0.shape[1]
    mass_arr = _check_mass(mass, dim, "mass")
    b_mass = mass_arr if burnin_mass is None else _check_mass(burnin_mass, dim, "burnin_mass")

    def make_step(h: float, gamma: float, m: Array) -> Callable[[Array, BAOABState], Any]:
        def one(key: Array, state: BAOABState) -> Any:
            return baoab_kernel.step(
                key, state, logdensity_fn, h, gamma, m, temperature, metropolis
            )

        return jax.vmap(one)

    burn_step = make_step(b_step, b_friction, b_mass)
    prod_step = make_step(step_size, friction, mass_arr)
    total = num_burnin + num_samples * thin
    bar = ProgressBar(total, desc="langevin", enabled=progress_bar)

    def advance(step_fn: Callable, carry: Any, i: Array, key: Array) -> Any:
        state, n_div = carry
        keys = jax.random.split(key, num_chains)
        state, info = step_fn(keys, state)
        bar.update(i)
        return (state, n_div + info.is_divergent.astype(jnp.int32)), info.acceptance_rate

    @jax.jit
    def run(key: Array, x0: Array) -> Any:
        k_init, k_burn, k_prod = jax.random.split(key, 3)
        init_keys = jax.random.split(k_init, num_chains)
        state = jax.vmap(
            lambda x, k: baoab_kernel.init(
                x, logdensity_fn, key=k, mass=b_mass, temperature=temperature
            )
        )(x0, init_keys)
        init_ok = jnp.isfinite(state.logdensity) & jnp.all(
            jnp.isfinite(state.logdensity_grad), axis=-1
        )
        carry = (state, jnp.zeros((num_chains,), jnp.int32))

        if num_burnin > 0:

            def burn_body(c, ik):
                return advance(burn_step, c, ik[0], ik[1])

            keys = jax.random.split(k_burn, num_burnin)
            carry, burn_acc = jax.lax.scan(burn_body, carry, (jnp.arange(num_burnin), keys))
            burn_acc = jnp.mean(burn_acc, axis=0)
        else:
            burn_acc = jnp.full((num_chains,), jnp.nan)

        # Momentum carries over from burn-in; rescale it when the mass changes so
        # it stays N(0, T M) in law.
        state, n_div = carry
        state = state._replace(momentum=state.momentum * jnp.sqrt(mass_arr / b_mass))
        carry = (state, n_div)

        def sample_body(c, ik):
            i, k = ik
            keys = jax.random.split(k, thin)
            idx = num_burnin + i * thin + jnp.arange(thin)

            def inner(c2, jk):
                return advance(prod_step, c2, jk[0], jk[1])

            c, acc = jax.lax.scan(inner, c, (idx, keys))
            st = c[0]
            rec = None if record_fn is None else jax.vmap(record_fn)(st.position)
            return c, (st.position, st.logdensity, jnp.mean(acc, axis=0), rec)

        keys = jax.random.split(k_prod, num_samples)
        carry, (pos, logp, acc, rec) = jax.lax.scan(
            sample_body, carry, (jnp.arange(num_samples), keys)
        )
        state, n_div = carry
        return init_ok, pos, logp, acc, rec, n_div, state, burn_acc

    with bar:
        init_ok, pos, logp, acc, rec, n_div, state, burn_acc = run(key, x0)

    init_ok = np.asarray(init_ok)
    if not init_ok.all():
        bad = int(np.argmin(init_ok))
        raise ValueError(
            f"the log density or its gradient is not finite at the initial position of chain {bad}"
        )
    n_div = np.asarray(n_div)
    if not metropolis and n_div.any():
        chain = int(np.argmax(n_div > 0))
        raise DivergenceError(
            f"chain {chain} diverged (non-finite log density or gradient) during the run; "
            f"try a smaller step_size (now {step_size}, burn-in {b_step})"
        )

    def chains_first(a: Any) -> Any:
        # scan stacks samples first: (samples, chains, ...) -> (chains, samples, ...)
        a = jnp.swapaxes(a, 0, 1)
        return a if num_chains > 1 else a[0]

    final = state if num_chains > 1 else jax.tree.map(lambda a: a[0], state)
    return LangevinTrace(
        positions=chains_first(pos),
        logdensity=chains_first(logp),
        acceptance_rate=chains_first(acc),
        num_divergent=n_div if num_chains > 1 else n_div[0],
        final_state=final,
        recorded=None if rec is None else jax.tree.map(chains_first, rec),
        num_gradient_evaluations=num_chains * (total + 1),
        burnin_acceptance_rate=burn_acc if num_chains > 1 else burn_acc[0],
    )
