"""Networks as ``(init, apply)`` pairs of pure functions.

A network is anything with ``init(key) -> params`` (a pytree) and
``apply(params, X) -> outputs`` of shape ``(n, d_out)``. The dense MLP here is
the built-in one; other libraries' networks (Flax, Equinox) plug in through
the same pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from langevin_nets.activations import get_activation

Array = jax.Array
Params = Any


class Network(NamedTuple):
    """A network as two pure functions.

    Attributes
    ----------
    init : callable
        ``init(key) -> params``: a parameter pytree of the right shapes (values from a
        standard normal; the prior decides their scale).
    apply : callable
        ``apply(params, X) -> outputs`` with ``X`` of shape ``(n, d_in)`` and outputs of
        shape ``(n, d_out)``.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def validate_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """Check ``layer_sizes`` is a sequence of at least two positive integers."""
    try:
        sizes = tuple(layer_sizes)
    except TypeError:
        raise TypeError(
            f"layer_sizes must be a sequence of positive integers, got {layer_sizes!r}"
        ) from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size, got {sizes!r}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int | jnp.integer) or int(s) < 1:
            raise ValueError(f"layer_sizes must hold positive integers, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def mlp(layer_sizes: Sequence[int], activation: str | Callable[[Array], Array] = "tanh") -> Network:
    """A dense multilayer perceptron with a linear output layer.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(d_in, h1, ..., d_out)``; ``(d, 1)`` is a linear model.
    activation : str or callable
        Hidden-layer non-linearity (see :data:`langevin_nets.activations.ACTIVATIONS`).

    Returns
    -------
    Network
        Parameters are a list of ``(W, b)`` pairs, ``W`` of shape ``(fan_in, fan_out)``.
    """
    sizes = validate_layer_sizes(layer_sizes)
    act = get_activation(activation)
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))

    def init(key: Array) -> Params:
        keys = jax.random.split(key, 2 * len(shapes))
        return [
            (
                jax.random.normal(keys[2 * i], (m, n)),
                jax.random.normal(keys[2 * i + 1], (n,)),
            )
            for i, (m, n) in enumerate(shapes)
        ]

    def apply(params: Params, X: Array) -> Array:
        # Computed with the data along the last axis, (units, n), and turned back at the
        # end: under vmap over particles XLA:CPU takes a gradient 1.6-2.1x faster than in
        # the row form h @ W on the UCI benchmark's shapes (benchmarks/layout.py).
        h = jnp.swapaxes(X, -1, -2)
        for W, b in params[:-1]:
            h = act(W.T @ h + b[:, None])
        W, b = params[-1]
        return jnp.swapaxes(W.T @ h + b[:, None], -1, -2)

    return Network(init, apply)
