"""Langevin sampling: burn-in then production with the BAOAB kernel, in one compiled scan."""

from __future__ import annotations

import os
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import langevin_nets.checkpoint as _ckpt
import langevin_nets.kernels.baoab as baoab_kernel
from langevin_nets.errors import DivergenceError
from langevin_nets.kernels.baoab import BAOABState
from langevin_nets.model import Posterior
from langevin_nets.progress import ProgressBar
from langevin_nets.validation import choice, nonnegative_int, positive_float, positive_int

Array = jax.Array

ON_DIVERGENCE = ("raise", "restart")
# Restarts halve a chain's step size; with the default 10 it can shrink ~1000-fold.
RESTART_FACTOR = 0.5
DEFAULT_MAX_RESTARTS = 10
# With "restart", an unadjusted step that lowers the log density by more than this many nats
# counts as divergent (at equilibrium one step changes it by O(1); the same threshold marks
# divergent HMC transitions in Stan and BlackJAX).
BLOWUP_DROP = 1000.0
# Folded into a step's key to draw the fresh momentum of a restart, apart from the step's
# own uses of that key (the key itself: O-step noise; fold_in 1: accept test; 2: multi-step).
_RESTART_KEY = 7

# Compiled samplers of recent calls, most recent last. Tracing and compiling the sampler
# takes seconds, longer than a short run, so a call with the same log density, record_fn
# and settings as a recent one runs the program already compiled (same results, bitwise).
_SAMPLERS: OrderedDict[Hashable, tuple[Any, ProgressBar]] = OrderedDict()
_MAX_SAMPLERS = 8


class LangevinTrace(NamedTuple):
    """The output of :func:`langevin`.

    Leading axes are ``(num_chains, num_samples)`` when ``num_chains > 1``, else
    ``(num_samples,)``; per-chain fields have shape ``(num_chains,)``, or are scalars for
    one chain.

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
        Steps whose proposal had a non-finite log density or gradient, per chain
        (restarted steps included; with ``on_divergence="restart"``, an unadjusted step
        that lowered the log density by more than ``BLOWUP_DROP`` nats counts too).
    final_state : BAOABState
        Where each chain stopped (pass its position to continue).
    recorded : any
        ``record_fn(position)`` at each record, if ``record_fn`` was given, else None.
    num_gradient_evaluations : int
        Gradient evaluations across all chains, burn-in included.
    burnin_acceptance_rate : array
        Mean acceptance during burn-in, per chain (nan without burn-in).
    num_restarts : array
        Restarts per chain with ``on_divergence="restart"`` (0 with ``"raise"``).
    final_step_size : array
        The production step size each chain ended with: ``step_size`` halved once per
        restart (``step_size`` itself with ``"raise"``).
    """

    positions: Array
    logdensity: Array
    acceptance_rate: Array
    num_divergent: Array
    final_state: BAOABState
    recorded: Any
    num_gradient_evaluations: int
    burnin_acceptance_rate: Array
    # Added later, with defaults, so that code building a trace from the first eight
    # fields keeps working.
    num_restarts: Array | None = None
    final_step_size: Array | None = None


class _Chains(NamedTuple):
    """The scanned carry of all chains (leading axis: chain)."""

    state: BAOABState
    num_divergent: Array  # int32: steps with a non-finite proposal
    fatal_step: Array  # int32: step of the first divergence not recovered from (-1: none)
    scale: Array  # float: this chain's step size over the phase's (1, 1/2, 1/4... on restarts)
    num_restarts: Array  # int32
    # Where an unadjusted chain restarts: its state at the start of the phase (burn-in or
    # production). An unadjusted chain blows up over several steps, through finite but huge
    # values, so the state one step before the non-finite one is no place to restart from.
    anchor: BAOABState


class _Run(NamedTuple):
    """Everything a run carries from one program (or checkpoint) to the next."""

    init_ok: Array  # bool per chain: finite log density and gradient at the start
    burn_acc: Array  # sum of burn-in acceptances so far; their mean once burn-in is over
    chains: _Chains
    records: Any  # (positions, logdensity, acceptance, recorded), chains first


def _check_mass(mass: Any, dim: int, name: str) -> Array:
    m = np.asarray(mass, dtype=float)
    if m.ndim > 1 or (m.ndim == 1 and m.shape[0] != dim):
        raise ValueError(f"{name} must be a scalar or have shape ({dim},), got shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"{name} must be positive and finite")
    return jnp.asarray(m)


def _sampler_key(
    fns: tuple[Any, ...], settings: tuple[Any, ...], arrays: tuple[Array, ...]
) -> Hashable | None:
    """Everything the compiled sampler bakes in, or None if a callable is unhashable."""
    baked = tuple((a.shape, str(a.dtype), np.asarray(a).tobytes()) for a in arrays)
    key = (fns, settings, baked)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class _TracedDensity(NamedTuple):
    """A log density whose data are passed to the compiled sampler as arguments."""

    data: Posterior  # the pytree: data as leaves, the model static
    method: Callable | None  # the unbound Posterior method, or None for the Posterior itself
    static: Hashable  # what the compiled program depends on: method, model, data shapes

    def bind(self, data: Posterior) -> Callable[[Array], Array]:
        return data if self.method is None else types.MethodType(self.method, data)


def _traced_density(logdensity_fn: Callable) -> _TracedDensity | None:
    """A Posterior, or a method bound to one, as a traced log density (else None)."""
    if isinstance(logdensity_fn, types.MethodType):
        owner, method = logdensity_fn.__self__, logdensity_fn.__func__
    else:
        owner, method = logdensity_fn, None
    # Exactly Posterior: only that class is registered as a pytree, not its subclasses.
    if type(owner) is not Posterior:
        return None
    leaves, treedef = jax.tree_util.tree_flatten(owner)
    shapes = tuple((tuple(a.shape), str(a.dtype)) for a in leaves)
    return _TracedDensity(owner, method, ("posterior", method, treedef, shapes))


def _posterior_of(logdensity_fn: Callable) -> Any:
    """The Posterior behind ``logdensity_fn`` (itself or the owner of a bound method)."""
    return getattr(logdensity_fn, "__self__", logdensity_fn)


def _check_checkpoint(path: Any, every: Any, resume: Any, num_samples: int) -> int:
    if path is None:
        if every is not None or resume:
            raise ValueError("checkpoint_every and resume need a checkpoint path")
        return 0
    _ckpt.paths(path)
    if not isinstance(resume, bool | np.bool_):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if not resume and _ckpt.exists(path):
        raise _ckpt.CheckpointError(
            f"a checkpoint already exists at {str(_ckpt.paths(path)[0])!r}; pass "
            "resume=True to continue it, or delete it to start afresh"
        )
    if every is None:
        return max(1, num_samples // 10)
    return positive_int(every, "checkpoint_every")


def _key_data(key: Array) -> np.ndarray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def _state_arrays(state: Any) -> dict[str, np.ndarray]:
    """A run's state (a pytree) as named numpy arrays; PRNG keys as their raw data."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(p): _key_data(a) for p, a in leaves}


def _state_from_arrays(
    arrays: dict[str, np.ndarray], like: Any, key: Array, path: Any
) -> Any:
    """The state of shape ``like`` (from ``eval_shape``) stored in ``arrays``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [jax.tree_util.keystr(p) for p, _ in leaves]
    bad = sorted(set(names) ^ set(arrays))
    out = []
    for name, (_, s) in zip(names, leaves, strict=True):
        if bad:
            break
        a = arrays[name]
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
            try:
                out.append(jax.random.wrap_key_data(a, impl=jax.random.key_impl(key)))
            except Exception:
                bad.append(name)
            continue
        if a.shape != s.shape or a.dtype != s.dtype:
            bad.append(name)
        out.append(jnp.asarray(a))
    if bad:
        raise _ckpt.CheckpointError(
            f"checkpoint {str(_ckpt.paths(path)[0])!r} does not hold the state this run "
            f"expects ({bad[0]}: damaged, or written by another version); delete it"
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def _progress_of(meta: dict[str, Any], num_burnin: int, num_samples: int, path: Any) -> tuple:
    """``(burn-in steps done, samples done)`` recorded in a checkpoint's metadata."""
    b, s = meta.get("burnin_step"), meta.get("sample")
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (b, s))
    if not ok or not (0 <= b <= num_burnin and 0 <= s <= num_samples) or (s and b < num_burnin):
        raise _ckpt.CheckpointError(
            f"checkpoint {str(_ckpt.paths(path)[0])!r} does not say where the run stopped "
            "(damaged, or written by another version); delete it"
        )
    return b, s


def _run_with_checkpoints(
    programs: tuple[Callable, Callable, Callable], data: Any, key: Array, x0: Array,
    num_burnin: int, num_samples: int, thin: int, path: Any, every: int, resume: bool,
    settings: dict[str, Any], data_hash: str,
) -> _Run:  # fmt: skip
    """Run burn-in ``every * thin`` steps and production ``every`` samples at a time,
    saving the state after each slice (so also at the end of burn-in)."""
    start, burn_chunk, prod_chunk = programs
    loaded = _ckpt.load(path) if resume else None
    if loaded is not None:
        _ckpt.check_compatible(
            loaded[1], path, kind="langevin", config=settings, data_hash=data_hash
        )
        burned, done = _progress_of(loaded[1], num_burnin, num_samples, path)
        run = _state_from_arrays(loaded[0], jax.eval_shape(start, key, x0, data), key, path)
    else:
        run = start(key, x0, data)
        burned = done = 0
        if not np.asarray(run.init_ok).all():
            return run  # reported by _trace
    meta = _ckpt.header("langevin", settings, data_hash)

    def save() -> None:
        info = {
            "phase": "burn-in" if burned < num_burnin else "production",
            "burnin_step": burned, "sample": done, "finished": done == num_samples,
            "checkpoint_every": every,
        }  # fmt: skip
        _ckpt.save(path, _state_arrays(run), meta | info)

    # A slice that diverged beyond repair is not saved: the last checkpoint keeps the
    # finite state, and _trace raises. Burn-in is saved after every multiple of
    # `every * thin` steps (the steps of a production slice); its remainder runs with the
    # first production slice, before the next save. So a kill anywhere loses less than two
    # slices of work, and a short burn-in adds no write.
    slice_steps = every * thin
    while burned < num_burnin:
        stop = min((burned // slice_steps + 1) * slice_steps, num_burnin)
        run = burn_chunk(key, run, jnp.int32(burned), jnp.int32(stop), data)
        if (np.asarray(run.chains.fatal_step) >= 0).any():
            return run
        burned = stop
        if burned % slice_steps == 0:
            save()
    while done < num_samples:
        stop = min(done + every, num_samples)
        run = prod_chunk(key, run, jnp.int32(done), jnp.int32(stop), data)
        if (np.asarray(run.chains.fatal_step) >= 0).any():
            return run
        done = stop
        save()
    return run


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


def _expected_dim(logdensity_fn: Callable[[Array], Array]) -> int | None:
    """The position size a log density expects, when it says (a Posterior or its method)."""
    dim = getattr(_posterior_of(logdensity_fn), "dim", None)
    return dim if isinstance(dim, int) else None


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    on_divergence: str = "raise",
    max_restarts: int = DEFAULT_MAX_RESTARTS,
) -> LangevinTrace:
    """Sample ``exp(logdensity_fn)`` with BAOAB Langevin dynamics.

    Burn-in runs ``num_burnin`` steps with its own step size, friction and mass
    (default: the production ones), e.g. high friction and mass to settle after MAP;
    production then runs ``num_samples * thin`` steps and records every ``thin``-th.
    The whole run is one ``jax.lax.scan`` under ``jit``; chains are ``vmap``-ped.

    Parameters
    ----------
    logdensity_fn : callable
        Log of the unnormalised target density of a flat position ``(dim,)``. A
        :class:`~langevin_nets.model.Posterior` (or one of its methods, e.g.
        ``posterior.logdensity``) is passed to the compiled sampler as an argument, so
        one compiled sampler serves every data set of the same shape and model.
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
    checkpoint : path, optional
        Save the run's state (chain states, samples so far, divergence and restart
        counts, step sizes, position in the run) to ``checkpoint.npz`` +
        ``checkpoint.json``: after every ``checkpoint_every * thin`` steps of burn-in (the
        steps of a production slice; the rest of the burn-in runs with the first
        production slice), then every ``checkpoint_every`` samples per chain and at the
        end; atomic writes (see :mod:`langevin_nets.checkpoint`). A run killed during
        burn-in resumes from its last burn-in checkpoint.
    checkpoint_every : int, optional
        Samples (per chain) between checkpoints; default a tenth of ``num_samples``.
    resume : bool
        Continue from the checkpoint if there is one (else start from the beginning);
        the result is bit for bit that of the uninterrupted run. Without ``resume`` an
        existing checkpoint is an error.
    on_divergence : {"raise", "restart"}
        What a divergence (a step whose log density or gradient is not finite) does.
        ``"raise"``: an unadjusted chain stops the run with :class:`DivergenceError`; a
        Metropolis chain rejects the step and goes on (it is counted in
        ``num_divergent``). ``"restart"``: the chain goes back to its state before the
        step, with a fresh momentum, and continues with its step size halved (per chain;
        the factor applies to the burn-in and the production step sizes alike; see
        ``num_restarts`` and ``final_step_size``). Unadjusted chains restart in burn-in
        and production; Metropolis chains in burn-in only (in production they reject the
        divergent step, which keeps them exact; see Notes). An unadjusted chain restarts
        from the state it had at the start of the phase (it blows up through finite but
        huge values first), and with ``"restart"`` a step that lowers its log density by
        more than ``BLOWUP_DROP`` (1000) nats also counts as a divergence.
    max_restarts : int
        Restarts allowed per chain with ``"restart"``. After that a further divergence
        stops an unadjusted run with :class:`DivergenceError`; a Metropolis chain keeps
        its last step size and rejects the divergent steps.

    Returns
    -------
    LangevinTrace

    Raises
    ------
    ValueError
        For invalid arguments or an initial position where the density is not finite.
    DivergenceError
        If an unadjusted chain's log density or gradient became non-finite and was not
        (or no more) restarted. The message names the chain, the step and the phase. With
        checkpoints the run stops at the end of the slice where it happened and the last
        checkpoint keeps the finite state.
    CheckpointError (a ValueError)
        When resuming a checkpoint written with other settings, key or data.

    Notes
    -----
    *Restarts and exactness.* A restart changes a chain's kernel at a random time that
    depends on the chain's past, and the chain then starts its new kernel from where the
    trouble was (e.g. next to a region where the density is NaN). Each kernel leaves the
    target invariant when Metropolis-adjusted (the fresh momentum is an exact Gibbs move),
    but the switch is an adaptation: while restarts keep happening, the segments that
    start at the trouble spot over-weight it. Measured on N(0, 1) with the density NaN
    above 3 (Metropolis, step 1.5, 200 burn-in steps, 640 chains of 1000 samples), allowing
    restarts in production raised the variance by 0.015 +- 0.005 (3 standard errors);
    with restarts in burn-in only, as done here, the moments match the truncated normal's
    (0.00 +- 0.003). Metropolis chains therefore restart in burn-in only: production runs
    each chain with one fixed, exact kernel. A Metropolis step that is too large but
    finite is rejected, not restarted (the chain sticks rather than diverges): a low
    ``acceptance_rate`` shows it. Unadjusted chains must restart whenever they diverge
    (the alternative is to stop). Their samples are biased by the discretisation anyway,
    and a smaller step changes that bias (usually reduces it): a chain that restarted in
    production mixes two step sizes, and the segment after a restart starts at the
    trouble spot. A burn-in long enough to meet the trouble keeps production at one step
    size.

    *Compiled programs.* The compiled sampler is kept for the last few distinct settings
    and reused by a call with the same ``logdensity_fn`` and ``record_fn`` objects (for a
    Posterior: the same model structure, method and data shapes) and the same counts
    (samples, thinning, burn-in, chains), options and mass shapes; the step sizes,
    frictions, masses and temperature are arguments of the program, so a new value
    reuses it. As with
    ``jax.jit``, the functions are traced once: values they read from outside (a global,
    a mutated attribute) are those of the first such call. Pass a new function object to
    force a new trace. Runs with a checkpoint use three programs: the initial states, a
    slice ``[start, stop)`` of burn-in and a slice of production, with traced bounds (the
    same program for every slice).
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
    if not isinstance(on_divergence, str):
        raise TypeError(
            f"on_divergence must be one of {', '.join(ON_DIVERGENCE)}, got {on_divergence!r}"
        )
    on_divergence = choice(on_divergence, "on_divergence", ON_DIVERGENCE)
    max_restarts = nonnegative_int(max_restarts, "max_restarts")
    restart = on_divergence == "restart"
    restart_limit = max_restarts if restart else None  # what the programs depend on
    metropolis = bool(metropolis)
    x0 = _initial_positions(initial_position, num_chains)
    dim = x0.shape[1]
    expected = _expected_dim(logdensity_fn)
    if expected is not None and dim != expected:
        raise ValueError(
            f"initial_position has {dim} coordinates but the posterior's dim is {expected}"
        )
    mass_arr = _check_mass(mass, dim, "mass")
    b_mass = mass_arr if burnin_mass is None else _check_mass(burnin_mass, dim, "burnin_mass")
    ckpt_every = _check_checkpoint(checkpoint, checkpoint_every, resume, num_samples)

    traced = _traced_density(logdensity_fn)
    # The programs read the log density from their `data` argument when it is traced; the
    # plain function is closed over otherwise (and only then, so that a cached program
    # keeps no reference to the first call's data).
    plain_fn = None if traced is not None else logdensity_fn
    total = num_burnin + num_samples * thin
    bar = ProgressBar(total, desc="langevin", enabled=progress_bar)
    # The last entry: whether a divergence restarts the chain. Metropolis chains restart in
    # burn-in only: in production a rejection keeps them exact, and a change of step there
    # would bias the samples (see Notes).
    # The numbers are arguments of the programs (`data[1]`), not constants: a run with
    # another step size, friction, mass or temperature reuses the compiled sampler.
    knobs = {
        name: jnp.asarray(value, dtype=x0.dtype)
        for name, value in (
            ("step", step_size), ("friction", friction), ("mass", mass_arr),
            ("b_step", b_step), ("b_friction", b_friction), ("b_mass", b_mass),
            ("temperature", temperature),
        )
    }  # fmt: skip

    def burn_phase(data: Any) -> tuple:
        k = data[1]
        return (k["b_step"], k["b_friction"], k["b_mass"], restart, k["temperature"])

    def prod_phase(data: Any) -> tuple:
        k = data[1]
        return (k["step"], k["friction"], k["mass"], restart and not metropolis,
                k["temperature"])  # fmt: skip

    def density(data: Any) -> Callable[[Array], Array]:
        return plain_fn if traced is None else traced.bind(data[0])

    def advance(logdensity: Callable, phase: tuple, chains: _Chains, i: Array, key: Array):
        """Step ``i`` (counted from the start of burn-in) of every chain."""
        h, gamma, m, can_restart, temperature = phase

        def one(k, state, scale):
            # With "raise" the per-chain scale (always 1 then) stays out of the program.
            h_chain = h * scale if restart else h
            return baoab_kernel.step(
                k, state, logdensity, h_chain, gamma, m, temperature, metropolis
            )

        def back(k, state):
            fresh = baoab_kernel.sample_momentum(
                jax.random.fold_in(k, _RESTART_KEY), state.position, m, temperature
            )
            return state._replace(momentum=fresh)

        keys = jax.random.split(key, num_chains)
        state, info = jax.vmap(one)(keys, chains.state, chains.scale)
        bad = info.is_divergent
        if can_restart and not metropolis:
            # An unadjusted chain blows up through finite values before it overflows; a
            # fall of the log density by more than BLOWUP_DROP nats in one step is taken
            # as a divergence too, so the restart comes before the chain is lost.
            fell = chains.state.logdensity - state.logdensity > BLOWUP_DROP
            bad = bad | fell
        diverged = bad
        scale, restarts = chains.scale, chains.num_restarts
        if can_restart:
            redo = bad & (restarts < max_restarts)

            def do_restart(state):
                # A Metropolis chain goes back to the state before the step (it only ever
                # holds accepted, sane states); an unadjusted one to the phase's start.
                before = chains.state if metropolis else chains.anchor
                old = jax.vmap(back)(keys, before)
                return jax.tree.map(
                    lambda a, b: jnp.where(redo.reshape(-1, *[1] * (a.ndim - 1)), b, a),
                    state,
                    old,
                )

            # Outside vmap a cond branches for real: steps without a restart (nearly all)
            # skip the momentum draws and the selects.
            state = jax.lax.cond(redo.any(), do_restart, lambda s: s, state)
            scale = jnp.where(redo, scale * RESTART_FACTOR, scale)
            restarts = restarts + redo
            bad = bad & ~redo
        fatal = bad & (not metropolis)
        bar.update(i)
        chains = _Chains(
            state,
            chains.num_divergent + diverged.astype(jnp.int32),
            jnp.where((chains.fatal_step < 0) & fatal, i, chains.fatal_step),
            scale,
            restarts,
            chains.anchor,
        )
        return chains, info.acceptance_rate

    def end_burnin(run: _Run, data: Any) -> _Run:
        # Momentum carries over from burn-in; rescale it when the mass changes so it stays
        # N(0, T M) in law.
        st = run.chains.state
        st = st._replace(momentum=st.momentum * jnp.sqrt(data[1]["mass"] / data[1]["b_mass"]))
        acc = run.burn_acc / num_burnin if num_burnin else jnp.full_like(run.burn_acc, jnp.nan)
        return run._replace(burn_acc=acc, chains=run.chains._replace(state=st, anchor=st))

    def record(logdensity: Callable, phase: tuple, chains: _Chains, key: Array, s: Array):
        """Production sample ``s``: ``thin`` steps, then what is recorded."""
        keys = jax.random.split(key, thin)

        def inner(j, c_acc):
            c, acc = c_acc
            c, a = advance(logdensity, phase, c, num_burnin + s * thin + j, keys[j])
            return c, acc + a

        zero = jnp.zeros((num_chains,), x0.dtype)
        chains, acc = jax.lax.fori_loop(0, thin, inner, (chains, zero))
        st = chains.state
        rec = None if record_fn is None else jax.vmap(record_fn)(st.position)
        return chains, (st.position, st.logdensity, acc / thin, rec)

    def start_run(key: Array, x0: Array, data: Any) -> _Run:
        """Initial states; with no burn-in, already in production."""
        logdensity = density(data)
        init_keys = jax.random.split(jax.random.split(key, 3)[0], num_chains)
        state = jax.vmap(
            lambda x, k: baoab_kernel.init(
                x, logdensity, key=k, mass=data[1]["b_mass"], temperature=data[1]["temperature"]
            )
        )(x0, init_keys)
        init_ok = jnp.isfinite(state.logdensity) & jnp.all(
            jnp.isfinite(state.logdensity_grad), axis=-1
        )
        ints = jnp.zeros((num_chains,), jnp.int32)
        chains = _Chains(state, ints, ints - 1, jnp.ones((num_chains,), x0.dtype), ints, state)
        # Records are written chains-first into buffers carried by the loop; stacked
        # samples-first (the scan's own way) they would need a transpose, i.e. one more
        # copy of every sample (~10% of a thin=1 run).
        phase = prod_phase(data)
        shapes = jax.eval_shape(lambda c: record(logdensity, phase, c, key, 0)[1], chains)
        records = jax.tree.map(
            lambda s: jnp.zeros((s.shape[0], num_samples, *s.shape[1:]), s.dtype), shapes
        )
        run = _Run(init_ok, jnp.zeros((num_chains,), x0.dtype), chains, records)
        return run if num_burnin else end_burnin(run, data)

    def burn(key: Array, run: _Run, first: Any, stop: Any, data: Any) -> _Run:
        """Burn-in steps ``[first, stop)``; ends the burn-in when ``stop`` is its end."""
        logdensity, phase = density(data), burn_phase(data)
        keys = jax.random.split(jax.random.split(key, 3)[1], num_burnin)

        def body(i, c_acc):
            c, acc = c_acc
            c, a = advance(logdensity, phase, c, i, keys[i])
            return c, acc + a

        chains, acc = jax.lax.fori_loop(first, stop, body, (run.chains, run.burn_acc))
        run = run._replace(chains=chains, burn_acc=acc)
        if isinstance(stop, int):
            return end_burnin(run, data) if stop == num_burnin else run
        # A traced bound: select what end_burnin changes (not the whole record buffers).
        ended, last = end_burnin(run, data), stop == num_burnin
        p = jnp.where(last, ended.chains.state.momentum, chains.state.momentum)
        anchor = jax.tree.map(
            lambda a, b: jnp.where(last, a, b), ended.chains.anchor, chains.anchor
        )
        return run._replace(
            burn_acc=jnp.where(last, ended.burn_acc, acc),
            chains=chains._replace(state=chains.state._replace(momentum=p), anchor=anchor),
        )

    def produce(key: Array, run: _Run, first: Any, stop: Any, data: Any) -> _Run:
        """Production samples ``[first, stop)``."""
        logdensity, phase = density(data), prod_phase(data)
        keys = jax.random.split(jax.random.split(key, 3)[2], num_samples)

        def body(s, c_buf):
            c, buf = c_buf
            c, rec = record(logdensity, phase, c, keys[s], s)
            buf = jax.tree.map(
                lambda b, r: jax.lax.dynamic_update_index_in_dim(b, r, s, axis=1), buf, rec
            )
            return c, buf

        chains, records = jax.lax.fori_loop(first, stop, body, (run.chains, run.records))
        return run._replace(chains=chains, records=records)

    # Without checkpoints: one program (loops with constant bounds are scans). With them:
    # the same functions as three programs, the slice bounds traced, giving the same bits.
    @jax.jit
    def run_all(key: Array, x0: Array, data: Any) -> _Run:
        run = start_run(key, x0, data)
        if num_burnin:
            run = burn(key, run, 0, num_burnin, data)
        return produce(key, run, 0, num_samples, data)

    programs: Any = run_all
    if checkpoint is not None:
        programs = (jax.jit(start_run), jax.jit(burn), jax.jit(produce))

    fns = (logdensity_fn if traced is None else traced.static, record_fn)
    cache_key = _sampler_key(
        fns,
        (num_samples, thin, num_burnin, num_chains, metropolis, bool(progress_bar))
        + (on_divergence, restart_limit, np.shape(mass_arr), np.shape(b_mass)),
        (),
    )
    if checkpoint is not None:
        # Runs with checkpoints keep their own programs under a key of their own.
        cache_key = None if cache_key is None else ("checkpointed", cache_key)
    if cache_key is not None:
        if cache_key in _SAMPLERS:
            _SAMPLERS.move_to_end(cache_key)
            # The cached program reports to the bar it was traced with.
            programs, bar = _SAMPLERS[cache_key]
        else:
            _SAMPLERS[cache_key] = (programs, bar)
            while len(_SAMPLERS) > _MAX_SAMPLERS:
                _SAMPLERS.popitem(last=False)

    data = (None if traced is None else traced.data, knobs)
    report = dict(
        num_chains=num_chains, total=total, step_size=step_size, b_step=b_step,
        num_burnin=num_burnin, thin=thin, on_divergence=on_divergence,
        max_restarts=max_restarts,
    )  # fmt: skip
    if checkpoint is None:
        with bar:
            return _trace(programs(key, x0, data), **report)

    settings = {
        "num_samples": num_samples, "thin": thin, "num_burnin": num_burnin,
        "num_chains": num_chains, "dim": dim, "step_size": step_size, "friction": friction,
        "burnin_step_size": b_step, "burnin_friction": b_friction,
        "temperature": temperature, "metropolis": metropolis,
        "mass": _ckpt.array_digest(mass_arr), "burnin_mass": _ckpt.array_digest(b_mass),
        "initial_position": _ckpt.array_digest(x0), "key": _ckpt.array_digest(_key_data(key)),
        "dtype": str(x0.dtype), "record_fn": record_fn is not None,
        "on_divergence": on_divergence, "max_restarts": restart_limit,
    }  # fmt: skip
    owner = _posterior_of(logdensity_fn)
    model = getattr(owner, "model", None)
    settings["model"] = None if model is None else _ckpt.describe(model)
    # Chunked likelihoods round differently: a resume must use the same chunk.
    settings["data_chunk"] = getattr(owner, "data_chunk", None) if model is not None else None
    X, y = getattr(owner, "X", None), getattr(owner, "y", None)
    if isinstance(X, jax.Array | np.ndarray) and isinstance(y, jax.Array | np.ndarray):
        data_hash = "data:" + _ckpt.array_digest(X, y)
    else:
        # Plain function: the log density at the initial positions fingerprints it.
        probe = jax.jit(jax.vmap(logdensity_fn))(x0)
        data_hash = "logdensity:" + _ckpt.array_digest(probe)
    with bar:
        run = _run_with_checkpoints(
            programs, data, key, x0, num_burnin, num_samples, thin, checkpoint, ckpt_every,
            resume, settings, data_hash,
        )  # fmt: skip
    return _trace(run, **report)


def _trace(
    run: _Run, *, num_chains: int, total: int, step_size: float, b_step: float,
    num_burnin: int, thin: int, on_divergence: str, max_restarts: int,
) -> LangevinTrace:  # fmt: skip
    """The trace of a finished run, or the error it ran into."""
    init_ok = np.asarray(run.init_ok)
    if not init_ok.all():
        bad = int(np.argmin(init_ok))
        raise ValueError(
            f"the log density or its gradient is not finite at the initial position of chain {bad}"
        )
    chains = run.chains
    fatal = np.asarray(chains.fatal_step)
    scale = np.asarray(chains.scale)
    restarts = np.asarray(chains.num_restarts)
    if (fatal >= 0).any():
        raise DivergenceError(_divergence_message(
            fatal, scale, num_burnin, thin, step_size, b_step, on_divergence,
            max_restarts,
        ))  # fmt: skip

    def per_chain(a: Any) -> Any:
        return a if num_chains > 1 else jax.tree.map(lambda v: v[0], a)

    pos, logp, acc, rec = per_chain(run.records)
    return LangevinTrace(
        positions=pos,
        logdensity=logp,
        acceptance_rate=acc,
        num_divergent=per_chain(np.asarray(chains.num_divergent)),
        final_state=per_chain(chains.state),
        recorded=rec,
        num_gradient_evaluations=num_chains * (total + 1),
        burnin_acceptance_rate=per_chain(run.burn_acc),
        num_restarts=per_chain(restarts),
        final_step_size=per_chain(step_size * scale),
    )


def _divergence_message(
    fatal: np.ndarray, scale: np.ndarray, num_burnin: int, thin: int,
    step_size: float, b_step: float, on_divergence: str, max_restarts: int,
) -> str:  # fmt: skip
    """Which chain diverged first, at which step of which phase, and what to try."""
    diverged = np.flatnonzero(fatal >= 0)
    chain = int(diverged[np.argmin(fatal[diverged])])
    step = int(fatal[chain])
    if step < num_burnin:
        where = f"at burn-in step {step + 1} of {num_burnin}"
        name, base = "burnin_step_size", b_step
    else:
        k = step - num_burnin
        where = f"at production step {k + 1} (while drawing sample {k // thin + 1})"
        name, base = "step_size", step_size
    head = f"chain {chain} diverged (non-finite log density or gradient) {where}; "
    if on_divergence == "restart":
        return (
            head + f"this was after its max_restarts={max_restarts} restarts, which "
            f"had cut its step size to {base * scale[chain]:.4g}; "
            f"{len(diverged)} chain(s) gave up; try a smaller {name} (now {base}), a larger "
            "max_restarts, or metropolis=True"
        )
    return (
        head + f"{len(diverged)} chain(s) diverged; try a smaller {name} (now {base}), "
        "or metropolis=True, or on_divergence='restart'"
    )
