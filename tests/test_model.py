"""BayesianMLP and Posterior: layout, activations, input checks and prior draws."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets as ln
from langevin_nets.activations import ACTIVATIONS, get_activation


def test_layout_dim_and_names():
    model = ln.BayesianMLP((3, 5, 2))
    assert model.num_weights == 3 * 5 + 5 + 5 * 2 + 2
    assert model.dim == model.num_weights + 1 and model.learns_noise
    fixed = ln.BayesianMLP((3, 5, 2), noise_std=0.1)
    assert fixed.dim == fixed.num_weights == 32 and not fixed.learns_noise

    names = model.parameter_names()
    assert len(names) == model.dim
    assert names[:3] == ["log_sigma", "W_0[0,0]", "W_0[0,1]"]
    assert names[16:17] == ["b_0[0]"] and names[-1] == "b_1[1]"

    theta = jnp.arange(model.dim, dtype=jnp.float32)
    params = model.unravel(theta)
    assert [(W.shape, b.shape) for W, b in params] == [((3, 5), (5,)), ((5, 2), (2,))]
    # Raveled in the documented order: W_0 row-major, b_0, W_1, b_1 after log sigma.
    np.testing.assert_array_equal(params[0][0], np.arange(1, 16).reshape(3, 5))
    np.testing.assert_array_equal(params[1][1], [31, 32])
    assert float(model.sigma(theta)) == pytest.approx(1.0)  # exp(theta[0] = 0)

    named = model.constrained(np.stack([theta, theta]))
    assert named["sigma"].shape == (2,)
    assert named["W_0"].shape == (2, 3, 5) and named["b_1"].shape == (2, 2)
    np.testing.assert_array_equal(named["W_1"][0], params[1][0])

    out = model.mean(theta, jnp.ones((4, 3)))
    assert out.shape == (4, 2)
    assert "BayesianMLP((3, 5, 2)" in repr(model).replace("layer_sizes=", "")


ACT_REFERENCE = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "positanh": lambda x: 1.0 + np.tanh(x),
}


@pytest.mark.parametrize("name", sorted(ACT_REFERENCE))
def test_activations_by_name(name):
    x = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(
        get_activation(name)(jnp.asarray(x)), ACT_REFERENCE[name](x), rtol=1e-6, atol=1e-6
    )
    # Usable in a model by name, and the output layer stays linear.
    model = ln.BayesianMLP((1, 2, 1), activation=name, noise_std=1.0)
    theta = jnp.asarray([1.0, -1.0, 0.5, 0.25, 2.0, 3.0, -0.5])  # W0, b0, W1, b1
    X = jnp.asarray(x[:, None])
    h = ACT_REFERENCE[name](x[:, None] * np.array([1.0, -1.0]) + np.array([0.5, 0.25]))
    np.testing.assert_allclose(
        model.mean(theta, X)[:, 0], h @ [2.0, 3.0] - 0.5, rtol=1e-5, atol=1e-5
    )


def test_activation_registry_and_unknown_name():
    assert set(ACTIVATIONS) == set(ACT_REFERENCE)
    with pytest.raises(ValueError, match="'swish'"):
        get_activation("swish")
    with pytest.raises(ValueError, match="'swish'"):
        ln.BayesianMLP((1, 3, 1), activation="swish")
    custom = lambda x: x**2  # noqa: E731
    assert get_activation(custom) is custom


def test_constructor_validation():
    with pytest.raises(ValueError, match="layer_sizes"):
        ln.BayesianMLP((3,))
    with pytest.raises(ValueError, match="layer_sizes"):
        ln.BayesianMLP((3, 0, 1))
    with pytest.raises(TypeError, match="layer_sizes"):
        ln.BayesianMLP(3)
    with pytest.raises(ValueError, match="prior"):
        ln.BayesianMLP((1, 1), prior="laplace")
    with pytest.raises(ValueError, match="prior_scale"):
        ln.BayesianMLP((1, 1), prior_scale=0.0)
    with pytest.raises(ValueError, match="noise_std"):
        ln.BayesianMLP((1, 1), noise_std=-1.0)
    with pytest.raises(ValueError, match="noise_shape"):
        ln.BayesianMLP((1, 1), noise_shape=np.nan)


def test_data_validation():
    model = ln.BayesianMLP((2, 3, 1))
    X, y = np.zeros((5, 2)), np.zeros(5)
    model.posterior(X, y)  # 1-D y is one column
    with pytest.raises(ValueError, match="X has 3 columns"):
        model.posterior(np.zeros((5, 3)), y)
    with pytest.raises(ValueError, match="y has 2 columns"):
        model.posterior(X, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="5 rows but y has 4"):
        model.posterior(X, np.zeros(4))
    with pytest.raises(ValueError, match="X contains NaN.*row 2, column 1"):
        model.posterior(np.where(np.arange(10).reshape(5, 2) == 5, np.nan, 0.0), y)
    with pytest.raises(ValueError, match="y contains NaN or infinite"):
        model.posterior(X, np.array([0.0, 0.0, np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="X must be 1-D or 2-D"):
        model.posterior(np.zeros((5, 2, 1)), y)
    with pytest.raises(ValueError, match="X is empty"):
        model.posterior(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(TypeError, match="X must be an array of numbers"):
        model.posterior([["a", "b"]], [1.0])


def test_numpy_float64_positions_do_not_warn():
    post = ln.BayesianMLP((2, 1), noise_std=0.5).posterior(np.ones((3, 2)), np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = post.logdensity(np.zeros(3))
    assert np.isfinite(float(value))


@pytest.mark.parametrize("prior", ["normal", "fan_in"])
def test_sample_prior_moments(prior):
    # (4, 16, 1) so that the fan-in scaling (1/2 and 1/4 of the scale) is visible.
    scale, shape, n = 1.5, 3.0, 20000
    model = ln.BayesianMLP((4, 16, 1), prior=prior, prior_scale=scale, noise_shape=shape)
    draws = np.asarray(model.sample_prior(jax.random.PRNGKey(0), n), np.float64)
    assert draws.shape == (n, model.dim)
    assert model.sample_prior(jax.random.PRNGKey(0)).shape == (model.dim,)
    named = model.constrained(draws)

    # i.i.d. draws: per layer, the pooled mean of k*n normal draws has se = std / sqrt(k n) and
    # the pooled variance has se = var * sqrt(2 / (k n)); 4 se bounds below.
    fan_in = {"W_0": 4, "W_1": 16}
    for name in ("W_0", "b_0", "W_1", "b_1"):
        values = named[name].reshape(-1)
        std = scale / np.sqrt(fan_in.get(name, 1)) if prior == "fan_in" else scale
        m = values.size
        assert abs(values.mean()) < 4 * std / np.sqrt(m), name
        assert abs(values.var() - std**2) < 4 * std**2 * np.sqrt(2 / m), (name, values.var())
    if prior == "fan_in":
        assert named["W_1"].var() < 0.1 * scale**2  # scale^2 / 16, not scale^2

    # sigma ~ Gamma(shape, rate 1): mean and variance both equal to shape.
    sigma = named["sigma"]
    assert abs(sigma.mean() - shape) < 4 * np.sqrt(shape / n)
    # Var of the sample variance of a Gamma(k): (mu4 - var^2) / n, mu4 = 3k^2 + 6k.
    assert abs(sigma.var() - shape) < 4 * np.sqrt((3 * shape**2 + 6 * shape - shape**2) / n)

    # The prior density has the same scales: its gradient at a draw is -theta / std^2.
    theta = jnp.asarray(draws[0, 1:], jnp.float32)
    fixed = ln.BayesianMLP((4, 16, 1), prior=prior, prior_scale=scale, noise_std=1.0)
    g = jax.grad(fixed.logprior)(theta)
    std_vec = np.concatenate(
        [
            np.full(64, scale / (2 if prior == "fan_in" else 1)),
            np.full(16, scale),
            np.full(16, scale / (4 if prior == "fan_in" else 1)),
            np.full(1, scale),
        ]
    )
    np.testing.assert_allclose(g, -np.asarray(theta) / std_vec**2, rtol=1e-5)


def test_posterior_is_a_callable_density():
    post = ln.BayesianMLP((2, 3, 1)).posterior(np.ones((4, 2)), np.ones(4))
    theta = post.sample_prior(jax.random.PRNGKey(1))
    assert post.dim == theta.shape[0] == 14
    assert post.num_data == 4
    np.testing.assert_allclose(post(theta), post.logdensity(theta))
    np.testing.assert_allclose(
        post.logdensity(theta), post.logprior(theta) + post.loglikelihood(theta), rtol=1e-6
    )
    assert post.loglikelihood_per_datum(theta).shape == (4,)
    batch = jax.vmap(post.logdensity)(post.sample_prior(jax.random.PRNGKey(2), 5))
    assert batch.shape == (5,) and np.all(np.isfinite(batch))


def test_hyperparameters_are_traced_leaves_of_the_posterior():
    # One structure, several priors: the posteriors share a tree structure (so one compiled
    # program), the models stay unequal, and each density read through that one program is
    # its own closed form (Bayesian linear regression: Gaussian prior, Gamma prior on sigma
    # with the Jacobian of log sigma, Gaussian likelihood).
    from scipy import stats

    X = np.linspace(-1.0, 1.0, 6)[:, None]
    y = 0.7 * X[:, 0] + 0.2
    theta = np.array([-0.4, 0.6, 0.1])  # log sigma, w, b
    traces = []

    @jax.jit
    def density(post, position):
        traces.append(isinstance(post.model.prior_scale, jax.core.Tracer))
        assert "prior_scale=" in repr(post.model)  # no truth test of a tracer
        return post.logdensity(position)

    priors = [(1.0, 1.0), (0.3, 2.5), (4.0, 0.7)]
    posts = [ln.BayesianMLP((1, 1), prior_scale=s, noise_shape=a).posterior(X, y)
             for s, a in priors]  # fmt: skip
    struct = jax.tree_util.tree_structure
    assert all(struct(p) == struct(posts[0]) for p in posts)
    assert posts[0].model != posts[1].model
    for (s, a), post in zip(priors, posts, strict=True):
        sigma = np.exp(theta[0])
        exact = (
            stats.norm.logpdf(theta[1:], 0.0, s).sum()
            + stats.gamma.logpdf(sigma, a) + theta[0]
            + stats.norm.logpdf(y, theta[1] * X[:, 0] + theta[2], sigma).sum()
        )  # fmt: skip
        np.testing.assert_allclose(float(density(post, theta)), exact, rtol=1e-5)
    # Traced once, with the hyperparameters as tracers: a Python branch on one fails
    # loudly instead of baking another prior's value into the program.
    assert traces == [True]

    # The noise model is structure: a fixed noise level or a floor is another program, and
    # their values are leaves too.
    fixed = [ln.BayesianMLP((1, 1), noise_std=v).posterior(X, y) for v in (0.5, 2.0)]
    assert struct(fixed[0]) == struct(fixed[1]) != struct(posts[0])
    for v, post in zip((0.5, 2.0), fixed, strict=True):
        exact = stats.norm.logpdf(theta[1:], 0.0, 1.0).sum() + stats.norm.logpdf(
            y, theta[1] * X[:, 0] + theta[2], v
        ).sum()
        np.testing.assert_allclose(float(density(post, theta[1:])), exact, rtol=1e-5)
    floors = [ln.BayesianMLP((1, 1), noise_floor=q).posterior(X, y) for q in (0.1, 0.5)]
    assert struct(floors[0]) == struct(floors[1]) != struct(posts[0])
    for q, post in zip((0.1, 0.5), floors, strict=True):
        noise = np.hypot(np.exp(theta[0]), q)
        exact = (
            stats.norm.logpdf(theta[1:], 0.0, 1.0).sum()
            + stats.gamma.logpdf(np.exp(theta[0]), 1.0) + theta[0]
            + stats.norm.logpdf(y, theta[1] * X[:, 0] + theta[2], noise).sum()
        )  # fmt: skip
        np.testing.assert_allclose(float(density(post, theta)), exact, rtol=1e-5)
    assert len(traces) == 3

    # Prior draws through one program follow each prior: a traced Gamma shape and scale.
    draw = jax.jit(lambda post, key: post.sample_prior(key, 4000))
    for (s, a), post in zip(priors[1:], posts[1:], strict=True):
        d = np.asarray(draw(post, jax.random.PRNGKey(0)), np.float64)
        sigma = np.exp(d[:, 0])
        assert abs(sigma.mean() - a) < 4 * np.sqrt(a / 4000)
        assert abs(d[:, 1:].std() - s) < 4 * s / np.sqrt(2 * 8000)
    assert draw._cache_size() == 1

    # A subclass may compute other densities from the same structure: never shared.
    class Other(ln.BayesianMLP):
        pass

    other = Other((1, 1), prior_scale=1.0, noise_shape=1.0)
    assert other != posts[0].model
    assert struct(other.posterior(X, y)) != struct(posts[0])

    # Outside a program, the posterior's model is the model itself (not a copy) after a
    # flatten/unflatten round trip.
    back = jax.tree.map(lambda a: a, posts[1])
    assert back.model is posts[1].model
