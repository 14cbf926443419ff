"""Gamma draws without a loop, for the prior on the noise level.

``jax.random.gamma`` runs Marsaglia and Tsang's rejection sampler in a ``while_loop``. Under
``vmap`` and inside the SMC engine's programs that loop costs about 0.7 s of compilation
on CPU for a handful of draws a run. Here the same rejection sampler proposes a fixed
number of candidates side by side and keeps the first one accepted: the same distribution,
at the cost of a few dozen extra normal and uniform draws, and a program with no loop.

The result is in log space, which is what the model stores (``log sigma``) and which does
not underflow for small shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

#: Candidates per draw. Each is accepted with probability above 0.95 for every shape (the
#: worst case is shape 1, after the boost below), so all of them fail with probability
#: below 0.05 ** 16 < 1e-20 per draw.
NUM_CANDIDATES = 16


def log_gamma(
    key: Array,
    shape_param: Array | float,
    sample_shape: tuple[int, ...] = (),
    dtype: jnp.dtype | None = None,
    num_candidates: int = NUM_CANDIDATES,
) -> Array:
    """``log G`` with ``G ~ Gamma(shape_param, 1)``, drawn without a loop.

    Parameters
    ----------
    key : PRNG key
    shape_param : float or scalar array (may be traced)
        The Gamma shape ``a > 0``.
    sample_shape : tuple of int
        Shape of the output.
    dtype : floating dtype, optional
        Default: JAX's default float.
    num_candidates : int
        Proposals per draw (see :data:`NUM_CANDIDATES`).

    Returns
    -------
    Array of ``sample_shape``.

    Notes
    -----
    Marsaglia and Tsang (2000): with ``d = a - 1/3`` and ``c = 1 / sqrt(9 d)``, propose
    ``v = (1 + c x)^3`` for ``x ~ N(0, 1)`` and accept ``d v`` when ``v > 0`` and
    ``log u < x^2 / 2 + d - d v + d log v``. For ``a < 1`` the sampler runs at ``a + 1``
    and the draw is multiplied by ``u^(1 / a)`` (added ``log(u) / a`` here). In the event
    that every candidate is rejected (probability below 1e-20), the last proposal is
    returned.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    a = jnp.asarray(shape_param, dtype)
    boost = a < 1.0
    d = jnp.where(boost, a + 1.0, a) - 1.0 / 3.0
    c = jax.lax.rsqrt(9.0 * d)
    # One draw of uniforms on (-1, 1) for everything (each separate draw adds a threefry
    # block to the program): normals by the inverse error function, as jax.random.normal
    # makes them, and uniforms on (0, 1].
    w = jax.random.uniform(
        key, (*sample_shape, 2 * num_candidates + 1), dtype, minval=jnp.nextafter(-1.0, 0.0)
    )
    x = jnp.sqrt(2.0).astype(dtype) * jax.scipy.special.erfinv(w[..., :num_candidates])
    log_u = jnp.log(0.5 * (w[..., num_candidates:-1] + 1.0))
    log_u_boost = jnp.log(0.5 * (w[..., -1] + 1.0))
    v = 1.0 + c * x
    v = v * v * v
    positive = v > 0.0
    log_v = jnp.log(jnp.where(positive, v, 1.0))
    accept = positive & (log_u < 0.5 * x * x + d - d * v + d * log_v)
    # The first accepted candidate (argmax of a boolean is its first True); the last one if
    # none was accepted.
    first = jnp.where(jnp.any(accept, axis=-1), jnp.argmax(accept, axis=-1), num_candidates - 1)
    log_v = jnp.take_along_axis(log_v, first[..., None], axis=-1)[..., 0]
    out = jnp.log(d) + log_v
    return jnp.where(boost, out + log_u_boost / a, out)
