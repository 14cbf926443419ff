"""The Metropolis-adjusted BAOAB (shadow-work test) is exact at a step where the unadjusted
one is visibly biased; multi-step trajectories (HMC when friction = 0) are exact too.

Target: the 1-D Gaussian mixture ``0.3 N(-1, 0.5^2) + 0.7 N(1, 0.5^2)``, whose moments are
known in closed form. ``-d^2 log pi / dx^2 <= 1 / 0.5^2 = 4`` everywhere, so
``omega_max = 2``; the step ``h = 0.8`` (``h omega_max = 1.6``) is stable but large.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import langevin_nets as ln

W1, MU, SD = 0.3, (-1.0, 1.0), 0.5
STEP = 0.8
NUM_CHAINS = 64


def mixture_logdensity(x):
    x = x[0]
    return jnp.logaddexp(
        jnp.log(W1) - 0.5 * ((x - MU[0]) / SD) ** 2,
        jnp.log(1.0 - W1) - 0.5 * ((x - MU[1]) / SD) ** 2,
    )


def exact_moments(temperature: float = 1.0) -> np.ndarray:
    """E[x], E[x^2], E[x^4] under pi^(1/T)."""
    if temperature == 1.0:
        out = []
        for k in (1, 2, 4):  # Gaussian raw moments of each component
            raw = [{1: m, 2: m**2 + SD**2, 4: m**4 + 6 * m**2 * SD**2 + 3 * SD**4}[k] for m in MU]
            out.append(W1 * raw[0] + (1 - W1) * raw[1])
        return np.array(out)

    def dens(x):
        return np.exp(float(mixture_logdensity(np.array([x]))) / temperature)

    z = integrate.quad(dens, -12, 12, points=[-1.0, 0.0, 1.0])[0]
    return np.array(
        [integrate.quad(lambda x, k=k: x**k * dens(x), -12, 12)[0] / z for k in (1, 2, 4)]
    )


def moments_z(mc, q, exact):
    """Estimates, standard errors and z-scores of E[x], E[x^2], E[x^4] from (C, N) draws."""
    q = np.asarray(q, np.float64)
    est, se = mc.chain_estimate(np.stack([q, q**2, q**4], axis=-1))
    return est, se, (est - exact) / se


def x0(num_chains=NUM_CHAINS):
    return np.linspace(-1.5, 1.5, num_chains)[:, None]


def test_closed_form_moments_match_quadrature():
    # Guards the reference values the other tests use.
    np.testing.assert_allclose(exact_moments(1.0), [0.4, 1.25, 2.6875])
    dens = lambda x: np.exp(float(mixture_logdensity(np.array([x]))))  # noqa: E731
    z = integrate.quad(dens, -12, 12)[0]
    m2 = integrate.quad(lambda x: x**2 * dens(x), -12, 12)[0] / z
    assert abs(m2 - 1.25) < 1e-5


@pytest.fixture(scope="module")
def langevin_runs():
    out = {}
    for metropolis in (False, True):
        out[metropolis] = ln.langevin(
            mixture_logdensity,
            jax.random.PRNGKey(3),
            x0(),
            2000,
            step_size=STEP,
            friction=1.0,
            num_burnin=200,
            metropolis=metropolis,
            num_chains=NUM_CHAINS,
        )
    return out


def test_adjusted_is_exact_at_large_step(mc, langevin_runs):
    trace = langevin_runs[True]
    est, se, z = moments_z(mc, trace.positions[..., 0], exact_moments())
    assert np.all(np.abs(z) < mc.Z_TOL), (est, se, z)
    acc = np.asarray(trace.acceptance_rate)
    assert np.all((acc >= 0.0) & (acc <= 1.0))
    # Visibly below one at this step, but far from stuck.
    assert 0.3 < acc.mean() < 0.95, acc.mean()
    assert np.all(trace.num_divergent == 0)


def test_unadjusted_is_biased_at_large_step(mc, langevin_runs):
    # The power check for the test above: same step, no correction, many errors off.
    est, se, z = moments_z(mc, langevin_runs[False].positions[..., 0], exact_moments())
    assert np.max(np.abs(z)) > 10.0, (est, se, z)
    assert np.all(np.asarray(langevin_runs[False].acceptance_rate) == 1.0)


# (friction, temperature, metropolis): friction 0 + full momentum refresh before each move is
# HMC with 5 leapfrog steps; friction 1 keeps O steps inside the trajectory, whose heat the
# shadow work must leave out; T = 2 targets pi^(1/2) (reference by quadrature).
HMC_CASES = [(0.0, 1.0, True), (0.0, 2.0, True), (1.0, 1.0, True), (0.0, 1.0, False)]


@pytest.mark.parametrize("friction,temperature,metropolis", HMC_CASES)
def test_multi_step_trajectories(mc, friction, temperature, metropolis):
    q, _, acc = mc.run_kernel(
        mixture_logdensity,
        jax.random.PRNGKey(5),
        x0(),
        1000,
        STEP,
        friction,
        temperature=temperature,
        metropolis=metropolis,
        num_integration_steps=5,
        refresh=True,
        num_burnin=50,
    )
    est, se, z = moments_z(mc, q[..., 0], exact_moments(temperature))
    if metropolis:
        assert np.all(np.abs(z) < mc.Z_TOL), (est, se, z)
        assert 0.3 < acc.mean() < 0.99, acc.mean()
    else:
        # Without the accept/reject the same trajectories are biased.
        assert np.max(np.abs(z)) > 10.0, (est, se, z)
