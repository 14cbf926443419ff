"""Maximum a posteriori estimation with optax's Adam, in one compiled scan."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from langevin_nets.model import Posterior
from langevin_nets.validation import positive_float, positive_int

Array = jax.Array


class MAPResult(NamedTuple):
    """The MAP position and the loss (negative log density) after each Adam step."""

    position: Array
    loss_history: Array


def is_prng_key(x: Any) -> bool:
    """Whether ``x`` looks like a JAX PRNG key (typed, or a raw ``uint32[2]``)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return True
    a = np.asarray(x) if not isinstance(x, jax.Array) else x
    return a.dtype == np.uint32 and a.shape == (2,)


def find_map(
    posterior: Any,
    key_or_init: Any,
    num_steps: int = 1000,
    learning_rate: float = 1e-3,
) -> MAPResult:
    """Maximise a log density with Adam.

    Parameters
    ----------
    posterior : Posterior or callable
        An object with ``logdensity`` (and ``sample_prior`` when a key is given),
        or a log density function of a flat position.
    key_or_init : PRNG key, or array ``(dim,)`` or ``(starts, dim)``
        A key (start from a prior draw), the starting position, or several starting
        positions, optimised side by side in one compiled program (``vmap``).
    num_steps : int
        Adam steps.
    learning_rate : float
        Adam's learning rate.

    Returns
    -------
    MAPResult
        ``position`` has the shape of the start; ``loss_history`` is ``(num_steps,)``, or
        ``(num_steps, starts)`` for several starts.

    Notes
    -----
    The search is one compiled program, reused by later calls: for a ``Posterior``, by any
    posterior of the same model structure and data shapes; for a plain function, by calls
    with the same function object (the last few are kept). As with ``jax.jit``, a plain
    function is traced once: values it reads from outside (a global, a mutated attribute)
    are those of its first call. The learning rate is an argument of the program.
    """
    num_steps = positive_int(num_steps, "num_steps")
    learning_rate = positive_float(learning_rate, "learning_rate")
    logdensity_fn: Callable[[Array], Array] = (
        posterior.logdensity if hasattr(posterior, "logdensity") else posterior
    )
    if not callable(logdensity_fn):
        raise TypeError("posterior must be a Posterior or a log density function")
    if is_prng_key(key_or_init):
        if not hasattr(posterior, "sample_prior"):
            raise TypeError("a key needs a posterior with sample_prior; pass an initial position")
        x0 = posterior.sample_prior(key_or_init)
    else:
        x0 = jnp.asarray(key_or_init, dtype=jnp.result_type(float))
        if x0.ndim not in (1, 2):
            raise ValueError(
                f"the initial position must be 1-D (dim,) or 2-D (starts, dim), got shape "
                f"{x0.shape}"
            )
        if not np.all(np.isfinite(np.asarray(x0))):
            raise ValueError("the initial position contains NaN or infinite values")

    lr = jnp.asarray(learning_rate, dtype=x0.dtype)
    if type(posterior) is Posterior:
        # The posterior is an argument (data and hyperparameters traced): one program
        # serves every data set of a shape and every prior, e.g. each split of a benchmark.
        x, history = _adam_on_posterior(posterior, x0, lr, num_steps)
    else:
        try:
            search = _plain_search(logdensity_fn, num_steps)
        except TypeError:  # an unhashable callable: compiled for this call alone
            search = _plain_search.__wrapped__(logdensity_fn, num_steps)
        x, history = search(x0, lr)
    return MAPResult(x, history)


# The last few searches for plain log-density functions, by (function object, steps): a
# call with the same function reuses its program, as langevin's sampler cache does.
@functools.lru_cache(maxsize=8)
def _plain_search(logdensity_fn: Callable[[Array], Array], num_steps: int) -> Callable:
    """The jitted ``(x0, learning_rate) -> (x, history)`` for a plain function."""
    return jax.jit(functools.partial(_adam, logdensity_fn, num_steps=num_steps))


def _adam(
    logdensity_fn: Callable[[Array], Array], x0: Array, learning_rate: Array, *, num_steps: int
) -> tuple[Array, Array]:
    """Adam from ``x0`` (one start, or ``(starts, dim)`` side by side): the final
    positions and the loss after each step."""
    optimizer = optax.adam(learning_rate)

    def loss(x: Array) -> Array:
        return -logdensity_fn(x)

    def one(x0: Array) -> tuple[Array, Array]:
        def body(carry, _):
            x, opt_state = carry
            value, g = jax.value_and_grad(loss)(x)
            updates, opt_state = optimizer.update(g, opt_state, x)
            return (optax.apply_updates(x, updates), opt_state), value

        (x, _), history = jax.lax.scan(body, (x0, optimizer.init(x0)), length=num_steps)
        return x, history

    return jax.vmap(one, out_axes=(0, 1))(x0) if x0.ndim == 2 else one(x0)


@functools.partial(jax.jit, static_argnums=3)
def _adam_on_posterior(
    posterior: Posterior, x0: Array, learning_rate: Array, num_steps: int
) -> tuple[Array, Array]:
    return _adam(posterior.logdensity, x0, learning_rate, num_steps=num_steps)
