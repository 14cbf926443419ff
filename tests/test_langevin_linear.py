"""``langevin`` on Bayesian linear regression with known noise, against the closed form; and
the sampler's argument checks, output shapes and reproducibility.

``BayesianMLP((d, 1), noise_std=s)`` with prior ``theta ~ N(0, diag(v))`` (``v`` from the
prior's scales) has the Gaussian posterior

    Cov = (Phi^T Phi / s^2 + diag(1 / v))^-1,     mean = Cov Phi^T y / s^2,

``Phi = [X, 1]`` and ``theta = (W_0 raveled, b_0)``, the library's flat layout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets as ln

N_DATA, D_IN, NOISE, PRIOR_SCALE = 20, 2, 0.5, 0.7


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_DATA, D_IN))
    y = X @ np.array([1.0, -0.5]) + 0.3 + NOISE * rng.normal(size=N_DATA)
    return X, y


def closed_form(X, y, prior_var):
    phi = np.hstack([X, np.ones((X.shape[0], 1))])
    precision = phi.T @ phi / NOISE**2 + np.diag(1.0 / prior_var)
    cov = np.linalg.inv(precision)
    return cov @ phi.T @ y / NOISE**2, cov, precision


# (prior, metropolis, h * omega_max). The unadjusted case uses a large step on purpose: the
# posterior is Gaussian, so BAOAB's positions are exact at any stable step (test_baoab.py).
CASES = [("normal", True, 1.0), ("fan_in", False, 1.5)]


@pytest.mark.parametrize("prior,metropolis,hw", CASES)
def test_posterior_matches_closed_form(data, mc, prior, metropolis, hw):
    X, y = data
    model = ln.BayesianMLP((D_IN, 1), prior=prior, prior_scale=PRIOR_SCALE, noise_std=NOISE)
    post = model.posterior(X, y)
    w_var = PRIOR_SCALE**2 / (D_IN if prior == "fan_in" else 1)
    mean, cov, precision = closed_form(X, y, np.array([w_var] * D_IN + [PRIOR_SCALE**2]))
    h = hw / np.sqrt(np.linalg.eigvalsh(precision).max())

    num_chains, num_samples = 32, 1000
    x0 = post.sample_prior(jax.random.PRNGKey(1), num_chains)
    # Chains start in the prior, far out in the posterior's tails; a Metropolis-adjusted step
    # that large is then almost always rejected, so the burn-in uses a quarter of the step.
    trace = ln.langevin(
        post.logdensity,
        jax.random.PRNGKey(2),
        x0,
        num_samples,
        step_size=h,
        friction=1.0,
        num_burnin=300,
        burnin_step_size=h / 4,
        metropolis=metropolis,
        num_chains=num_chains,
    )
    q = np.asarray(trace.positions, np.float64)
    assert q.shape == (num_chains, num_samples, 3)

    est, se = mc.chain_estimate(q)
    z = (est - mean) / se
    assert np.all(np.abs(z) < mc.Z_TOL), f"mean {est} +- {se}, exact {mean}"

    est, se = mc.chain_estimate(mc.second_moments(q, center=mean))
    z = (est - cov) / se
    assert np.all(np.abs(z) < mc.Z_TOL), f"cov {est} +- {se}, exact {cov}, z {z}"
    # Resolution: the standard errors are a few per cent of the posterior scales.
    assert np.all(se[np.diag_indices(3)] < 0.05 * np.diag(cov))

    acc = np.asarray(trace.acceptance_rate)
    if metropolis:
        assert 0.5 < acc.mean() < 1.0
    else:
        assert np.all(acc == 1.0)


# -- the langevin API ------------------------------------------------------------------------


def std_normal(x):
    return -0.5 * jnp.sum(x * x)


def test_temperature_and_mass_reach_the_kernel(mc):
    """pi^(1/T) for a standard normal is N(0, T I); exact under BAOAB at any stable step, with
    any diagonal mass (here the burn-in uses another mass and step, as after a MAP start)."""
    temperature, num_chains = 3.0, 32
    trace = ln.langevin(
        std_normal,
        jax.random.PRNGKey(11),
        np.zeros(2),
        1000,
        step_size=1.2,  # omega = 1 / sqrt(mass) <= 1: h omega <= 1.2
        friction=1.0,
        mass=np.array([1.0, 4.0]),
        temperature=temperature,
        num_burnin=100,
        burnin_step_size=0.5,
        burnin_mass=10.0,
        num_chains=num_chains,
    )
    est, se = mc.chain_estimate(mc.second_moments(trace.positions))
    z = (est - temperature * np.eye(2)) / se
    assert np.all(np.abs(z) < mc.Z_TOL), (est, se)
    assert np.all(se[np.diag_indices(2)] < 0.05 * temperature)


def test_momentum_is_rescaled_after_a_heavy_burnin(mc):
    """Burn-in with mass 100 leaves p ~ N(0, 100); production with mass 1 must start from
    p * sqrt(1 / 100). With friction 0 in production nothing would repair a wrong momentum,
    and E[q^2] would be about (1 + 100) / 2 instead of 1."""
    num_chains = 256
    x0 = np.random.default_rng(0).normal(size=(num_chains, 1))  # exact position draws
    trace = ln.langevin(
        std_normal,
        jax.random.PRNGKey(0),
        x0,
        100,
        step_size=0.3,
        friction=0.0,
        num_burnin=20,
        burnin_friction=10.0,
        burnin_mass=100.0,
        num_chains=num_chains,
    )
    est, se = mc.chain_estimate(np.asarray(trace.positions) ** 2)
    # Each chain keeps its (shadow) energy, so the chains' spread sets se; leapfrog's shadow
    # energy differs from the true one by O(h^2 / 4) = 0.0225.
    assert abs(est[0] - 1.0) < mc.Z_TOL * se[0] + 0.0225, (est, se)


def test_argument_validation(data):
    X, y = data
    post = ln.BayesianMLP((D_IN, 1), noise_std=NOISE).posterior(X, y)
    key, x0 = jax.random.PRNGKey(0), np.zeros(3)

    def run(**kw):
        args = dict(step_size=0.1, friction=1.0)
        args.update(kw)
        position = args.pop("initial_position", x0)
        num_samples = args.pop("num_samples", 10)
        return ln.langevin(post.logdensity, key, position, num_samples, **args)

    for bad in (0.0, -0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="step_size"):
            run(step_size=bad)
    with pytest.raises(ValueError, match="burnin_step_size"):
        run(burnin_step_size=0.0, num_burnin=5)
    with pytest.raises(ValueError, match="friction"):
        run(friction=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        run(temperature=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        run(num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        run(num_samples=2.5)
    with pytest.raises(ValueError, match="num_burnin"):
        run(num_burnin=-1)
    with pytest.raises(ValueError, match="thin"):
        run(thin=0)
    with pytest.raises(ValueError, match="mass"):
        run(mass=np.ones(4))
    with pytest.raises(ValueError, match="mass"):
        run(mass=-1.0)
    with pytest.raises(ValueError, match="initial_position"):
        run(initial_position=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="initial_position"):
        run(initial_position=np.zeros((3, 3)), num_chains=2)
    with pytest.raises(ValueError, match="initial_position"):
        run(initial_position=np.zeros(5))  # the posterior has dim 3
    with pytest.raises(ValueError, match="NaN"):
        run(initial_position=np.array([0.0, np.nan, 0.0]))


def test_non_finite_start_is_reported():
    def logd(x):  # -inf outside the unit ball
        return jnp.where(jnp.sum(x * x) < 1.0, -0.5 * jnp.sum(x * x), -jnp.inf)

    with pytest.raises(ValueError, match="not finite at the initial position of chain 1"):
        ln.langevin(
            logd,
            jax.random.PRNGKey(0),
            np.array([[0.1, 0.0], [2.0, 0.0]]),
            5,
            step_size=0.1,
            friction=1.0,
            num_chains=2,
        )


def test_huge_step_diverges():
    # h omega = 50 >> 2: the unadjusted integrator blows up to inf/nan within a few steps.
    with pytest.raises(ln.DivergenceError, match="step_size"):
        ln.langevin(
            std_normal, jax.random.PRNGKey(0), np.ones(2), 200, step_size=50.0, friction=1.0
        )
    # Adjusted, the same step is always rejected: the chain stays put and reports it.
    trace = ln.langevin(
        std_normal,
        jax.random.PRNGKey(0),
        np.ones(2),
        200,
        step_size=50.0,
        friction=1.0,
        metropolis=True,
    )
    np.testing.assert_array_equal(trace.positions, np.ones((200, 2)))
    assert np.all(np.asarray(trace.acceptance_rate) < 1e-6)


def test_shapes_and_bookkeeping():
    C, S, thin, burn, dim = 3, 7, 2, 5, 4
    trace = ln.langevin(
        std_normal,
        jax.random.PRNGKey(0),
        np.zeros((C, dim)),
        S,
        step_size=0.2,
        friction=1.0,
        thin=thin,
        num_burnin=burn,
        num_chains=C,
        metropolis=True,
        record_fn=lambda x: {"sq": jnp.sum(x * x), "x": x[:2]},
    )
    assert trace.positions.shape == (C, S, dim)
    assert trace.logdensity.shape == (C, S)
    assert trace.acceptance_rate.shape == (C, S)
    assert trace.num_divergent.shape == (C,)
    assert trace.burnin_acceptance_rate.shape == (C,)
    assert trace.final_state.position.shape == (C, dim)
    assert trace.recorded["sq"].shape == (C, S)
    assert trace.recorded["x"].shape == (C, S, 2)
    assert trace.num_gradient_evaluations == C * (burn + S * thin + 1)
    np.testing.assert_allclose(
        trace.logdensity, -0.5 * np.sum(np.asarray(trace.positions) ** 2, -1), rtol=1e-5
    )
    np.testing.assert_allclose(trace.recorded["sq"], -2 * np.asarray(trace.logdensity), rtol=1e-5)
    np.testing.assert_array_equal(trace.final_state.position, trace.positions[:, -1])

    single = ln.langevin(
        std_normal, jax.random.PRNGKey(0), np.zeros(dim), S, step_size=0.2, friction=1.0
    )
    assert single.positions.shape == (S, dim)
    assert single.num_divergent.shape == ()
    assert np.isnan(single.burnin_acceptance_rate)


def test_same_key_same_result_and_keys_matter():
    kw = dict(step_size=0.3, friction=2.0, num_chains=2)
    a = ln.langevin(std_normal, jax.random.PRNGKey(7), np.zeros(3), 20, **kw)
    b = ln.langevin(std_normal, jax.random.PRNGKey(7), np.zeros(3), 20, **kw)
    c = ln.langevin(std_normal, jax.random.PRNGKey(8), np.zeros(3), 20, **kw)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    # Chains get different noise even from the same start.
    assert not np.allclose(a.positions[0], a.positions[1])
