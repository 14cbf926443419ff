"""``Posterior.with_data_chunk``: the likelihood evaluated a chunk of rows at a time.

The chunked posterior must give the unchunked values and gradients up to float32 rounding,
and a jitted gradient over many particles must need much less temporary memory.

Tolerances (float32, unit roundoff ``u = 2**-24 ~ 6e-8``): chunking changes only how the
network's matrix products are blocked and in which order the per-datum gradient terms are
summed. A per-datum log-likelihood is a short computation (a ``d``- and ``H``-term dot
product, a square, a log), so its values agree to a few ulps: ``rtol = 1e-5`` leaves a
margin of about 100 ulps. A gradient is a sum of ``n`` per-datum terms ``g_i``; any two
summation orders differ by at most ``2 * gamma_n * sum_i |g_i|`` with ``gamma_n ~ n u``
(Higham, Accuracy and Stability, Sec. 4.2), and the network's own reductions (width
``H``) add ``H u`` per term. The tests use ``4 (n + H) u sum_i |g_i|`` computed from the
actual Jacobian, per coordinate: an honest bound that still catches a dropped, doubled or
misplaced row, which changes a coordinate by a whole ``|g_i|``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets as ln

U = 2.0**-24  # float32 unit roundoff
N_DATA, D_IN, WIDTH = 37, 3, 8  # 37 rows: not a multiple of any chunk tried but 1 and 37


def _data(n: int = N_DATA, d: int = D_IN, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(X @ rng.normal(size=(d, 1))) + 0.1 * rng.normal(size=(n, 1))
    return X, y


def _model(noise_std: float | None) -> ln.BayesianMLP:
    return ln.BayesianMLP((D_IN, WIDTH, 1), prior="fan_in", noise_std=noise_std)


@pytest.fixture(scope="module")
def setup():
    X, y = _data()
    w = jnp.asarray(np.random.default_rng(1).uniform(0.0, 1.0, N_DATA), jnp.float32)
    return X, y, w


CHUNKS = [1, 5, 37]  # 5: 7 full chunks and 2 rows left; 37 (= n) means unchunked


@jax.jit
def _evaluate(post, thetas, w):
    """Everything compared, in one compiled program per posterior (a pytree argument)."""
    v = jnp.ones_like(thetas[0])
    return {
        # Per-datum values, vmapped over particles (compared elementwise: row order matters).
        "ll": jax.vmap(post.loglikelihood_per_datum)(thetas),
        "logdensity": jax.vmap(post.logdensity)(thetas),
        "grad": jax.vmap(jax.grad(lambda t: post.weighted_logdensity(t, w)))(thetas),
        # Forward mode goes through jax.checkpoint too.
        "jvp": jax.jvp(post.logdensity, (thetas[0],), (v,))[1],
    }


@jax.jit
def _gradient_scale(post, thetas, w):
    """``sum_i |w_i grad log p(y_i | theta)| + |grad log p(theta)|`` per coordinate: the
    scale of the summation bound of the module docstring."""
    per_datum = jax.vmap(jax.jacrev(post.loglikelihood_per_datum))(thetas)  # (N, n, dim)
    prior = jax.vmap(jax.grad(post.logprior))(thetas)
    return jnp.sum(jnp.abs(w[None, :, None] * per_datum), axis=1) + jnp.abs(prior)


@pytest.mark.parametrize("noise_std", [None, 0.3], ids=["learned-noise", "fixed-noise"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_values_and_gradients_match_unchunked(setup, chunk, noise_std):
    X, y, w = setup
    post = _model(noise_std).posterior(X, y)
    chunked = post.with_data_chunk(chunk)
    thetas = post.sample_prior(jax.random.PRNGKey(2), 4)
    ref = _evaluate(post, thetas, w)
    out = _evaluate(chunked, thetas, w)

    assert out["ll"].shape == (4, N_DATA)
    np.testing.assert_allclose(out["ll"], ref["ll"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logdensity"], ref["logdensity"], rtol=1e-5)
    bound = 4 * (N_DATA + WIDTH) * U * _gradient_scale(post, thetas, w) + 1e-30
    assert np.all(np.abs(np.asarray(out["grad"] - ref["grad"])) <= bound)
    np.testing.assert_allclose(out["jvp"], ref["jvp"], rtol=1e-4)


def test_chunk_is_static_and_normalised(setup):
    X, y, _ = setup
    model = _model(None)
    post = model.posterior(X, y)
    assert post.data_chunk is None
    a = post.with_data_chunk(5)
    b = model.posterior(X, y, data_chunk=5)
    assert a.data_chunk == b.data_chunk == 5
    assert post.data_chunk is None  # with_data_chunk returns a new posterior
    assert a.X is post.X and a.y is post.y  # sharing the data arrays

    struct = jax.tree_util.tree_structure
    assert struct(a) == struct(b)
    assert struct(a) != struct(post)
    assert struct(a) != struct(post.with_data_chunk(6))
    # A chunk covering every row is no chunk: the same (unchunked) program.
    for big in (N_DATA, N_DATA + 1, 10**9):
        assert post.with_data_chunk(big).data_chunk is None
        assert struct(post.with_data_chunk(big)) == struct(post)
    assert a.with_data_chunk(None).data_chunk is None

    # The data stay leaves (then the model's hyperparameters, scalars): a flatten/unflatten
    # round trip keeps the chunk.
    leaves, treedef = jax.tree_util.tree_flatten(a)
    assert leaves[0] is a.X and leaves[1] is a.y
    assert all(leaf.shape == () for leaf in leaves[2:])
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert back.data_chunk == 5 and back.num_data == N_DATA and back.dim == a.dim

    # One compiled program for two data sets of the same shape and the same chunk.
    traces = []

    @jax.jit
    def total(p, theta):
        traces.append(None)
        return p.loglikelihood(theta)

    theta = post.sample_prior(jax.random.PRNGKey(0))
    X2, y2 = _data(seed=5)
    v1 = total(a, theta)
    v2 = total(model.posterior(X2, y2, data_chunk=5), theta)
    assert len(traces) == 1
    np.testing.assert_allclose(v1, post.loglikelihood(theta), rtol=1e-5)
    np.testing.assert_allclose(v2, model.posterior(X2, y2).loglikelihood(theta), rtol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4", np.float32(3.0)])
def test_invalid_chunk_is_rejected(setup, bad):
    X, y, _ = setup
    post = _model(None).posterior(X, y)
    with pytest.raises((TypeError, ValueError), match="data_chunk"):
        post.with_data_chunk(bad)
    with pytest.raises((TypeError, ValueError), match="data_chunk"):
        _model(None).posterior(X, y, data_chunk=bad)


def test_numpy_integer_chunk_is_accepted(setup):
    X, y, _ = setup
    post = _model(None).posterior(X, y).with_data_chunk(np.int64(4))
    assert post.data_chunk == 4 and type(post.data_chunk) is int


def test_chunked_gradient_needs_less_temporary_memory():
    """The compiled program of a gradient over many particles: XLA's own accounting of its
    temporary buffers (deterministic for a given program and XLA version).

    Unchunked, the backward pass keeps the hidden activations of every particle on every
    row: ``N * n * H`` floats = 32 * 1024 * 32 * 4 bytes = 4 MiB per saved activation.
    Chunked by 32 rows it keeps one chunk's: 128 KiB. A ratio below 1/4 leaves room for
    whatever else both programs hold (the particles, their gradients, the (N, n) output).
    """
    n, d, H, N, chunk = 1024, 4, 32, 32, 32
    X, y = _data(n, d)
    model = ln.BayesianMLP((d, H, 1), prior="fan_in")
    post = model.posterior(X, y)
    thetas = post.sample_prior(jax.random.PRNGKey(0), N)
    w = jnp.full((n,), 0.5)

    def grads(p, th):
        return jax.vmap(jax.grad(lambda t: p.weighted_logdensity(t, w)))(th)

    def temp_bytes(p) -> int:
        analysis = jax.jit(grads).lower(p, thetas).compile().memory_analysis()
        if analysis is None:
            pytest.skip("this backend gives no memory analysis")
        return int(analysis.temp_size_in_bytes)

    full = temp_bytes(post)
    chunked = temp_bytes(post.with_data_chunk(chunk))
    activation = N * n * H * 4
    assert full >= activation  # the unchunked program does hold the activations
    assert chunked < full / 4, (chunked, full)
