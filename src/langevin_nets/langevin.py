"""Langevin sampling: burn-in then production with the BAOAB kernel, in one compiled scan."""

from __future__ import annotations

import os
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
from langevin_nets.progress import ProgressBar
from langevin_nets.validation import nonnegative_int, positive_float, positive_int

Array = jax.Array

# Compiled samplers of recent calls, most recent last. Tracing and compiling the sampler
# takes seconds, longer than a short run, so a call with the same log density, record_fn
# and settings as a recent one runs the program already compiled (same results, bitwise).
_SAMPLERS: OrderedDict[Hashable, tuple[Any, ProgressBar]] = OrderedDict()
_MAX_SAMPLERS = 8


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


def _run_with_checkpoints(
    start: Callable, chunk: Callable, logdensity_fn: Callable, key: Array, x0: Array,
    num_samples: int, metropolis: bool, path: Any, every: int, resume: bool,
    settings: dict[str, Any],
) -> Any:  # fmt: skip
    """Run production ``every`` samples at a time, saving the state in between."""
    owner = getattr(logdensity_fn, "__self__", None)
    X, y = getattr(owner, "X", None), getattr(owner, "y", None)
    if isinstance(X, jax.Array | np.ndarray) and isinstance(y, jax.Array | np.ndarray):
        data_hash = "data:" + _ckpt.array_digest(X, y)
    else:
        # Plain function: the log density at the initial positions fingerprints it.
        probe = jax.jit(jax.vmap(logdensity_fn))(x0)
        data_hash = "logdensity:" + _ckpt.array_digest(probe)
    loaded = _ckpt.load(path) if resume else None
    if loaded is not None:
        _ckpt.check_compatible(
            loaded[1], path, kind="langevin", config=settings, data_hash=data_hash
        )
        state = _state_from_arrays(loaded[0], jax.eval_shape(start, key, x0), key, path)
        done = int(loaded[1]["sample"])
    else:
        state = start(key, x0)
        done = 0
        if not np.asarray(state[0]).all():
            return state[0], state[1], state[3], state[4]  # reported by _trace
    meta = _ckpt.header("langevin", settings, data_hash)
    init_ok, burn_acc, k_prod, carry, buf = state
    while done < num_samples:
        stop = min(done + every, num_samples)
        carry, buf = chunk(k_prod, carry, buf, jnp.int32(done), jnp.int32(stop))
        if not metropolis and np.asarray(carry[1]).any():
            break  # diverged: keep the last (finite) checkpoint; _trace raises
        done = stop
        info = {"sample": done, "finished": done == num_samples, "checkpoint_every": every}
        _ckpt.save(path, _state_arrays((init_ok, burn_acc, k_prod, carry, buf)), meta | info)
    return init_ok, burn_acc, carry, buf


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
    owner = getattr(logdensity_fn, "__self__", logdensity_fn)
    dim = getattr(owner, "dim", None)
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
    checkpoint : path, optional
        Save the run's state (chain states, samples so far, divergence counts, PRNG key,
        position in the run) to ``checkpoint.npz`` + ``checkpoint.json`` every
        ``checkpoint_every`` samples per chain and at the end; atomic writes (see
        :mod:`langevin_nets.checkpoint`). Burn-in is not cut: a run killed during burn-in
        starts again.
    checkpoint_every : int, optional
        Samples (per chain) between checkpoints; default a tenth of ``num_samples``.
    resume : bool
        Continue from the checkpoint if there is one (else start from the beginning);
        the result is bit for bit that of the uninterrupted checkpointed run. Without
        ``resume`` an existing checkpoint is an error.

    Returns
    -------
    LangevinTrace

    Raises
    ------
    ValueError
        For invalid arguments or an initial position where the density is not finite.
    DivergenceError
        If a chain's log density or gradient became non-finite during the run (unadjusted
        sampler; with Metropolis such proposals are rejected and counted). The message
        names the chain, the step and the phase. With checkpoints the run stops at the
        end of the slice where it happened and the last checkpoint keeps the finite state.
    CheckpointError (a ValueError)
        When resuming a checkpoint written with other settings, key or data.

    Notes
    -----
    The compiled sampler is kept for the last few distinct settings and reused by a
    call with the same ``logdensity_fn`` and ``record_fn`` objects and the same
    settings. As with ``jax.jit``, the functions are traced once: values they read
    from outside (a global, a mutated attribute) are those of the first such call.
    Pass a new function object to force a new trace. Runs with a checkpoint are
    compiled for each call, as two programs: the initial states and burn-in, and a slice
    of production ``[start, stop)`` with traced bounds (the same program for every slice).
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
    expected = _expected_dim(logdensity_fn)
    if expected is not None and dim != expected:
        raise ValueError(
            f"initial_position has {dim} coordinates but the posterior's dim is {expected}"
        )
    mass_arr = _check_mass(mass, dim, "mass")
    b_mass = mass_arr if burnin_mass is None else _check_mass(burnin_mass, dim, "burnin_mass")
    ckpt_every = _check_checkpoint(checkpoint, checkpoint_every, resume, num_samples)

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
        state, n_div, first_div = carry
        keys = jax.random.split(key, num_chains)
        state, info = step_fn(keys, state)
        bar.update(i)
        # The step at which each chain first diverged (-1: never), for the error message.
        first_div = jnp.where((first_div < 0) & info.is_divergent, i, first_div)
        n_div = n_div + info.is_divergent.astype(jnp.int32)
        return (state, n_div, first_div), info.acceptance_rate

    def warm_up(key: Array, x0: Array) -> Any:
        """Initial states and burn-in: ``(init_ok, carry, burn_acc, production key)``."""
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
        none = jnp.full((num_chains,), -1, jnp.int32)
        carry = (state, jnp.zeros((num_chains,), jnp.int32), none)

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
        state, n_div, first_div = carry
        state = state._replace(momentum=state.momentum * jnp.sqrt(mass_arr / b_mass))
        return init_ok, (state, n_div, first_div), burn_acc, k_prod

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

    # Records are written chains-first into buffers carried by the scan; stacked
    # samples-first (the scan's own way) they would need a transpose, i.e. one more
    # copy of every sample (~10% of a thin=1 run).
    def record_body(c_buf, ik):
        c, buf = c_buf
        c, rec = sample_body(c, ik)
        buf = jax.tree.map(
            lambda b, r: jax.lax.dynamic_update_index_in_dim(b, r, ik[0], axis=1), buf, rec
        )
        return (c, buf), None

    def empty_records(carry: Any, key: Array) -> Any:
        rec_shapes = jax.eval_shape(sample_body, carry, (jnp.int32(0), key))[1]
        return jax.tree.map(
            lambda s: jnp.zeros((s.shape[0], num_samples, *s.shape[1:]), s.dtype), rec_shapes
        )

    @jax.jit
    def run(key: Array, x0: Array) -> Any:
        init_ok, carry, burn_acc, k_prod = warm_up(key, x0)
        keys = jax.random.split(k_prod, num_samples)
        buf = empty_records(carry, keys[0])
        (carry, buf), _ = jax.lax.scan(record_body, (carry, buf), (jnp.arange(num_samples), keys))
        if num_chains == 1:
            buf = jax.tree.map(lambda a: a[0], buf)
        return init_ok, burn_acc, carry, buf

    # With checkpoints: two programs run a whole run or any slice of it. The first gives the
    # state after burn-in, the second runs samples [first, stop) from any state.
    @jax.jit
    def start(key: Array, x0: Array) -> Any:
        init_ok, carry, burn_acc, k_prod = warm_up(key, x0)
        return init_ok, burn_acc, k_prod, carry, empty_records(carry, k_prod)

    @jax.jit
    def chunk(k_prod: Array, carry: Any, buf: Any, first: Array, stop: Array) -> Any:
        keys = jax.random.split(k_prod, num_samples)

        def body(i, c_buf):
            return record_body(c_buf, (i, keys[i]))[0]

        return jax.lax.fori_loop(first, stop, body, (carry, buf))

    cache_key = _sampler_key(
        (logdensity_fn, record_fn),
        (num_samples, thin, num_burnin, num_chains, step_size, friction, b_step, b_friction)
        + (temperature, bool(metropolis), bool(progress_bar)),
        (mass_arr, b_mass),
    )
    if checkpoint is not None:
        # Runs with checkpoints keep their own two programs under a key of their own.
        cache_key = None if cache_key is None else ("checkpointed", cache_key)
        run = (start, chunk)
    if cache_key is not None:
        if cache_key in _SAMPLERS:
            _SAMPLERS.move_to_end(cache_key)
            # The cached program reports to the bar it was traced with.
            run, bar = _SAMPLERS[cache_key]
        else:
            _SAMPLERS[cache_key] = (run, bar)
            while len(_SAMPLERS) > _MAX_SAMPLERS:
                _SAMPLERS.popitem(last=False)

    if checkpoint is not None:
        start, chunk = run
        settings = {
            "num_samples": num_samples, "thin": thin, "num_burnin": num_burnin,
            "num_chains": num_chains, "dim": dim, "step_size": step_size, "friction": friction,
            "burnin_step_size": b_step, "burnin_friction": b_friction,
            "temperature": temperature, "metropolis": bool(metropolis),
            "mass": _ckpt.array_digest(mass_arr), "burnin_mass": _ckpt.array_digest(b_mass),
            "initial_position": _ckpt.array_digest(x0), "key": _ckpt.array_digest(_key_data(key)),
            "dtype": str(x0.dtype), "record_fn": record_fn is not None,
        }  # fmt: skip
        model = getattr(getattr(logdensity_fn, "__self__", None), "model", None)
        settings["model"] = None if model is None else _ckpt.describe(model)
        with bar:
            init_ok, burn_acc, carry, buf = _run_with_checkpoints(
                start, chunk, logdensity_fn, key, x0, num_samples, bool(metropolis),
                checkpoint, ckpt_every, resume, settings,
            )  # fmt: skip
        if num_chains == 1:
            buf = jax.tree.map(lambda a: a[0], buf)
        return _trace(
            init_ok, burn_acc, carry, buf, num_chains, total, metropolis, step_size, b_step,
            num_burnin, thin,
        )  # fmt: skip

    with bar:
        init_ok, burn_acc, carry, buf = run(key, x0)
    return _trace(
        init_ok, burn_acc, carry, buf, num_chains, total, metropolis, step_size, b_step,
        num_burnin, thin,
    )  # fmt: skip


def _trace(
    init_ok: Array, burn_acc: Array, carry: Any, buf: Any, num_chains: int, total: int,
    metropolis: bool, step_size: float, b_step: float, num_burnin: int, thin: int,
) -> LangevinTrace:  # fmt: skip
    """The trace of a finished run (``buf`` without its chain axis for one chain), or the
    error it ran into."""
    init_ok = np.asarray(init_ok)
    if not init_ok.all():
        bad = int(np.argmin(init_ok))
        raise ValueError(
            f"the log density or its gradient is not finite at the initial position of chain {bad}"
        )
    state, n_div, first_div = carry
    n_div = np.asarray(n_div)
    if not metropolis and n_div.any():
        raise DivergenceError(_divergence_message(np.asarray(first_div), num_burnin, thin,
                                                  step_size, b_step))  # fmt: skip
    pos, logp, acc, rec = buf
    final = state if num_chains > 1 else jax.tree.map(lambda a: a[0], state)
    return LangevinTrace(
        positions=pos,
        logdensity=logp,
        acceptance_rate=acc,
        num_divergent=n_div if num_chains > 1 else n_div[0],
        final_state=final,
        recorded=rec,
        num_gradient_evaluations=num_chains * (total + 1),
        burnin_acceptance_rate=burn_acc if num_chains > 1 else burn_acc[0],
    )


def _divergence_message(
    first_div: np.ndarray, num_burnin: int, thin: int, step_size: float, b_step: float
) -> str:
    """Which chain diverged first, at which step of which phase, and what to try."""
    diverged = np.flatnonzero(first_div >= 0)
    chain = int(diverged[np.argmin(first_div[diverged])])
    step = int(first_div[chain])
    if step < num_burnin:
        where = f"at burn-in step {step + 1} of {num_burnin}"
        hint = f"try a smaller burnin_step_size (now {b_step})"
    else:
        k = step - num_burnin
        where = f"at production step {k + 1} (while drawing sample {k // thin + 1})"
        hint = f"try a smaller step_size (now {step_size})"
    return (
        f"chain {chain} diverged (non-finite log density or gradient) {where}; "
        f"{len(diverged)} chain(s) diverged; {hint}, or metropolis=True"
    )
