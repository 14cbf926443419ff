"""The dense MLP: the column layout it computes in is the textbook row form, exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin_nets.activations import get_activation
from langevin_nets.networks import mlp


def row_form(params, X, activation):
    """``h @ W + b`` layer by layer: the definition the network must match."""
    act = get_activation(activation)
    h = X
    for W, b in params[:-1]:
        h = act(h @ W + b)
    W, b = params[-1]
    return h @ W + b


@pytest.mark.parametrize(
    "sizes, activation",
    [((3, 1), "tanh"), ((5, 7, 2), "relu"), ((4, 6, 5, 3), "tanh")],
)
def test_apply_equals_the_row_form(sizes, activation):
    net = mlp(sizes, activation)
    params = net.init(jax.random.key(0))
    X = jax.random.normal(jax.random.key(1), (11, sizes[0]))
    out = net.apply(params, X)
    assert out.shape == (11, sizes[-1])
    np.testing.assert_allclose(out, row_form(params, X, activation), rtol=1e-5, atol=1e-5)


def test_apply_keeps_leading_axes_and_single_rows():
    net = mlp((3, 4, 2), "tanh")
    params = net.init(jax.random.key(2))
    X = jax.random.normal(jax.random.key(3), (2, 5, 3))  # two batches of five rows
    out = net.apply(params, X)
    assert out.shape == (2, 5, 2)
    for i in range(2):
        np.testing.assert_allclose(out[i], net.apply(params, X[i]), rtol=1e-6, atol=1e-6)
    one = net.apply(params, X[0, :1])
    assert one.shape == (1, 2)
    np.testing.assert_allclose(one, row_form(params, X[0, :1], "tanh"), rtol=1e-5, atol=1e-6)


def test_gradients_equal_the_row_form_under_vmap():
    """What the samplers take: the gradient in the parameters, vmapped over particles."""
    net = mlp((6, 8, 1), "relu")
    X = jax.random.normal(jax.random.key(4), (20, 6))
    y = jax.random.normal(jax.random.key(5), (20, 1))
    stacked = jax.vmap(net.init)(jax.random.split(jax.random.key(6), 4))

    def loss(apply):
        return lambda p: jnp.sum((apply(p) - y) ** 2)

    ours = jax.vmap(jax.grad(loss(lambda p: net.apply(p, X))))(stacked)
    ref = jax.vmap(jax.grad(loss(lambda p: row_form(p, X, "relu"))))(stacked)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
