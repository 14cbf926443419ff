"""Activation functions for dense networks, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def positanh(x: Array) -> Array:
    """``1 + tanh(x)``: the original sandbox's default, tanh shifted to be non-negative."""
    return 1.0 + jnp.tanh(x)


def relu(x: Array) -> Array:
    """Rectified linear unit."""
    return jax.nn.relu(x)


def softplus(x: Array) -> Array:
    """``log(1 + exp(x))``, computed stably."""
    return jnp.logaddexp(x, 0.0)


def sigmoid(x: Array) -> Array:
    """Logistic function."""
    return jax.nn.sigmoid(x)


def elu(x: Array) -> Array:
    """Exponential linear unit with alpha = 1."""
    return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))


def leaky_relu(x: Array) -> Array:
    """Leaky ReLU with negative slope 0.01."""
    return jnp.where(x >= 0, x, 0.01 * x)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent."""
    return jnp.tanh(x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": tanh,
    "relu": relu,
    "softplus": softplus,
    "sigmoid": sigmoid,
    "elu": elu,
    "leaky_relu": leaky_relu,
    "positanh": positanh,
}


def get_activation(activation: str | Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Return the activation function for a name, or the callable itself.

    Raises
    ------
    ValueError
        If the name is not one of :data:`ACTIVATIONS`.
    """
    if callable(activation):
        return activation
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; expected one of {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[activation]
