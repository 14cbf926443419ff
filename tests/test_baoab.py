"""BAOAB samples a Gaussian's positions exactly at any stable step size.

For a Gaussian target N(0, T P^-1) and diagonal mass M, the change of variables
``q~ = M^1/2 q``, ``p~ = M^-1/2 p`` followed by a rotation to the eigenbasis of
``M^-1/2 P M^-1/2`` splits BAOAB into independent 1-D oscillators of frequencies ``omega_k``.
For each, BAOAB's stationary law has position variance exactly ``T / omega_k^2`` for every
``h omega_k < 2`` and any friction (Leimkuhler & Matthews 2013), while the momentum variance
is ``T (1 - h^2 omega_k^2 / 4)``. Back in the original coordinates:

    Cov(q) = T P^-1   (exact),        Cov(p) = T (M - h^2 P / 4)   (not T M).

The position test is run up to ``h omega_max = 1.5``; the momentum check shows the same
statistics detect a step-size error when there is one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets.kernels.baoab as baoab

# A correlated 2-D Gaussian: precision eigenvalues 0.1 and 1.9 (correlation -0.9).
PRECISION = np.array([[1.0, 0.9], [0.9, 1.0]])
_P32 = jnp.asarray(PRECISION, jnp.float32)

NUM_CHAINS, NUM_STEPS, NUM_BURNIN = 64, 4000, 200
IDX = [(0, 0), (0, 1), (1, 1)]


def gaussian_logdensity(x):
    return -0.5 * x @ _P32 @ x


def omega_max(mass) -> float:
    m = np.broadcast_to(np.asarray(mass, float), (2,))
    scaled = PRECISION / np.sqrt(np.outer(m, m))
    return float(np.sqrt(np.linalg.eigvalsh(scaled).max()))


CASES = [
    # (h * omega_max, friction, mass, temperature)
    (0.5, 0.5, 1.0, 1.0),
    (0.5, 2.0, 1.0, 1.0),
    (0.5, 10.0, 1.0, 1.0),
    (1.5, 0.5, 1.0, 1.0),
    (1.5, 2.0, 1.0, 1.0),
    (1.5, 10.0, 1.0, 1.0),
    (1.5, 2.0, (1.0, 4.0), 2.0),
]


@pytest.fixture(scope="module")
def runs(mc):
    """Run every case once (one compilation: h, friction, mass, T are traced)."""
    out = {}
    for i, (hw, friction, mass, temp) in enumerate(CASES):
        h = hw / omega_max(mass)
        cov = temp * np.linalg.inv(PRECISION)
        # Start from exact position draws; the burn-in lets the momentum settle to its law.
        x0 = np.random.default_rng(i).multivariate_normal(np.zeros(2), cov, NUM_CHAINS)
        q, p, _ = mc.run_kernel(
            gaussian_logdensity,
            jax.random.PRNGKey(100 + i),
            x0,
            NUM_STEPS,
            h,
            friction,
            mass=np.broadcast_to(np.asarray(mass, float), (2,)),
            temperature=temp,
            num_burnin=NUM_BURNIN,
        )
        out[(hw, friction, mass, temp)] = (h, q, p)
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"hw{c[0]}-fr{c[1]}-m{c[2]}-T{c[3]}" for c in CASES])
def test_position_covariance_is_exact(runs, mc, case):
    hw, friction, mass, temp = case
    h, q, _ = runs[case]
    exact_cov = temp * np.linalg.inv(PRECISION)

    mean, mean_se = mc.chain_estimate(q)
    assert np.all(np.abs(mean) < mc.Z_TOL * mean_se), (mean, mean_se)

    est, se = mc.chain_estimate(mc.second_moments(q))
    for i, j in IDX:
        z = (est[i, j] - exact_cov[i, j]) / se[i, j]
        assert abs(z) < mc.Z_TOL, (
            f"Cov(q)[{i},{j}] = {est[i, j]:.4f} +- {se[i, j]:.4f}, exact {exact_cov[i, j]:.4f}"
        )
    # The check has resolution: the standard error is a few per cent of the variance.
    assert np.all(se[[0, 1], [0, 1]] < 0.04 * np.diag(exact_cov))


@pytest.mark.parametrize("case", CASES, ids=[f"hw{c[0]}-fr{c[1]}-m{c[2]}-T{c[3]}" for c in CASES])
def test_momentum_law_is_distorted(runs, mc, case):
    """The same statistic on the momentum sees BAOAB's O(h^2) kinetic error."""
    hw, friction, mass, temp = case
    h, _, p = runs[case]
    m = np.diag(np.broadcast_to(np.asarray(mass, float), (2,)))
    est, se = mc.chain_estimate(mc.second_moments(p))

    baoab_law = temp * (m - h**2 * PRECISION / 4.0)
    for i, j in IDX:
        z = (est[i, j] - baoab_law[i, j]) / se[i, j]
        assert abs(z) < mc.Z_TOL, (est, baoab_law, se)

    if hw == 1.5:
        # At h omega_max = 1.5 the fast mode's momentum variance is 44 % of T M's.
        z_exact = np.abs(est - temp * m) / se
        assert z_exact.max() > 50.0, z_exact


def test_kernel_step_bookkeeping():
    """One unadjusted step: cached density/gradient match the new position; info is sane."""
    state = baoab.init(jnp.array([1.0, -2.0]), gaussian_logdensity, key=jax.random.PRNGKey(0))
    new, info = baoab.step(jax.random.PRNGKey(1), state, gaussian_logdensity, 0.3, 1.0)
    logp, grad = jax.value_and_grad(gaussian_logdensity)(new.position)
    np.testing.assert_allclose(new.logdensity, logp, rtol=1e-6)
    np.testing.assert_allclose(new.logdensity_grad, grad, rtol=1e-6)
    assert float(info.acceptance_rate) == 1.0 and bool(info.is_accepted)
    assert not bool(info.is_divergent)
    assert np.isfinite(float(info.energy_error))


def test_zero_friction_single_step_is_leapfrog():
    """With friction 0 the O step is the identity: one step is a velocity-Verlet step."""
    x, p, h = jnp.array([0.7, -0.2]), jnp.array([0.3, 1.1]), 0.4
    state = baoab.init(x, gaussian_logdensity, momentum=p)
    new, _ = baoab.step(jax.random.PRNGKey(3), state, gaussian_logdensity, h, 0.0)
    xn, pn = np.asarray(x, float), np.asarray(p, float)
    pn = pn - 0.5 * h * PRECISION @ xn
    xn = xn + h * pn
    pn = pn - 0.5 * h * PRECISION @ xn
    np.testing.assert_allclose(new.position, xn, rtol=1e-5)
    np.testing.assert_allclose(new.momentum, pn, rtol=1e-5)
