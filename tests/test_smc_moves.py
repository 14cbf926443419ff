"""The SMC moves: the noise-free HMC path against the general BAOAB path, and invariance.

``moves.move`` sends plain HMC (friction 0, one test per trajectory) down a leapfrog-only
path. It must be the same Markov kernel as the general path: same end point up to
rounding, same acceptance probability, same decision, and it must leave the target
invariant (checked on a correlated Gaussian, where the moments are known). It tests only a
trajectory's end points, so it must also leave a target with a hole in its support
invariant when trajectories jump the hole.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from langevin_nets.kernels.baoab import BAOABState
from langevin_nets.smc import moves

COV = np.array([[1.0, 0.6], [0.6, 2.0]])
PREC = jnp.asarray(np.linalg.inv(COV))


def logdensity(x):
    return -0.5 * x @ PREC @ x


def state_at(x):
    lp, g = jax.value_and_grad(logdensity)(x)
    return BAOABState(x, jnp.zeros_like(x), lp, g)


def general(key, s, h, L, mass):
    return moves._baoab_move(key, s, logdensity, h, 0.0, mass, L, False, True)


def fast(key, s, h, L, mass):
    return moves._leapfrog_move(key, s, logdensity, h, mass, L)


@pytest.mark.parametrize("mass", [1.0, jnp.array([0.5, 2.0])])
@pytest.mark.parametrize("h", [0.1, 1.2])  # 1.2: large enough that some moves reject
def test_fast_path_is_the_general_path(h, mass):
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    x0 = jax.random.normal(jax.random.PRNGKey(1), (200, 2))
    starts = jax.vmap(state_at)(x0)
    run = jax.jit(jax.vmap(lambda f, k, s: f(k, s, h, 7, mass), (None, 0, 0)), static_argnums=0)
    a, ia = run(general, keys, starts)
    b, ib = run(fast, keys, starts)
    np.testing.assert_allclose(ia.acceptance_rate, ib.acceptance_rate, rtol=1e-4, atol=1e-5)
    moved_a = ~np.all(np.asarray(a.position) == np.asarray(x0), axis=1)
    moved_b = ~np.all(np.asarray(b.position) == np.asarray(x0), axis=1)
    assert np.array_equal(moved_a, moved_b)  # the same accept decisions
    if h == 1.2:
        assert 0 < moved_a.sum() < 200  # both outcomes occur, so the check can fail
    np.testing.assert_allclose(a.position, b.position, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.logdensity, b.logdensity, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.logdensity_grad, b.logdensity_grad, rtol=1e-5, atol=1e-5)


def test_move_dispatches_plain_hmc_to_the_fast_path():
    key, s = jax.random.PRNGKey(3), state_at(jnp.array([0.3, -1.0]))
    # Both compiled: op-by-op execution rounds differently from a compiled program.
    via_move = jax.jit(lambda k, s: moves.move(k, s, logdensity, 0.4, 0.0, 1.0, 5, False, True))
    direct = jax.jit(lambda k, s: fast(k, s, 0.4, 5, 1.0))
    np.testing.assert_array_equal(via_move(key, s)[0].position, direct(key, s)[0].position)


def test_fast_path_leaves_the_gaussian_invariant():
    # 4000 exact draws, 10 moves each; the moments stay within 5 Monte Carlo s.e.
    n = 4000
    x0 = jax.random.multivariate_normal(jax.random.PRNGKey(5), jnp.zeros(2), COV, (n,))

    @jax.jit
    def chain(key, x):
        def one(s, k):
            return fast(k, s, 0.5, 4, 1.0)[0], None

        return jax.lax.scan(one, state_at(x), jax.random.split(key, 10))[0].position

    x = np.asarray(jax.vmap(chain)(jax.random.split(jax.random.PRNGKey(6), n), x0))
    se_mean = np.sqrt(np.diag(COV) / n)
    assert np.all(np.abs(x.mean(0)) < 5 * se_mean)
    emp = np.cov(x.T)
    # s.e. of a sample covariance entry: sqrt((S_ij^2 + S_ii S_jj) / n)
    se_cov = np.sqrt((COV**2 + np.outer(np.diag(COV), np.diag(COV))) / n)
    assert np.all(np.abs(emp - COV) < 5 * se_cov)


SLAB = (1.0, 1.3)


def in_slab(x):
    # x[0] is the first coordinate of one point, or of each column of a (2, n) array.
    return (x[0] > SLAB[0]) & (x[0] < SLAB[1])


def holed(x):
    # A standard normal with the slab 1 < x0 < 1.3 cut out; the gradient stays finite there.
    return jnp.where(in_slab(x), -jnp.inf, -0.5 * x @ x)


def test_fast_path_jumps_a_hole_in_the_support_and_keeps_the_target():
    # Exact draws of the holed normal (rejection from N(0, I)), 10 moves each. Trajectories
    # cross the hole and are judged by their end points; the probability of the far side,
    # x0 > 1.3, must stay what it is (within 5 Monte Carlo s.e.).
    n = 4000
    rng = np.random.default_rng(7)
    z = rng.standard_normal((3 * n, 2))
    x0 = jnp.asarray(z[~in_slab(z.T)][:n], jnp.float32)
    hole = norm.cdf(SLAB[1]) - norm.cdf(SLAB[0])
    p_far = norm.sf(SLAB[1]) / (1 - hole)

    @jax.jit
    def chain(key, x):
        def one(carry, k):
            s, jumps = carry
            s2 = moves._leapfrog_move(k, s, holed, 0.3, 1.0, 10)[0]
            jumped = (s.position[0] < SLAB[0]) & (s2.position[0] > SLAB[1])
            return (s2, jumps + jumped), None

        lp, g = jax.value_and_grad(holed)(x)
        s0 = BAOABState(x, jnp.zeros(2), lp, g)
        (s, jumps), _ = jax.lax.scan(one, (s0, 0), jax.random.split(key, 10))
        return s.position, jumps

    x, jumps = jax.vmap(chain)(jax.random.split(jax.random.PRNGKey(8), n), x0)
    x = np.asarray(x)
    assert int(jumps.sum()) > 100  # trajectories do jump the hole
    assert not np.any(in_slab(x.T))
    frac = np.mean(x[:, 0] > SLAB[1])
    assert abs(frac - p_far) < 5 * np.sqrt(p_far * (1 - p_far) / n)
    # E[x0] = -(phi(1) - phi(1.3)) / (1 - P(hole)); x1 is untouched by the hole.
    mean0 = -(norm.pdf(SLAB[0]) - norm.pdf(SLAB[1])) / (1 - hole)
    se = x.std(0) / np.sqrt(n)
    assert abs(x[:, 0].mean() - mean0) < 5 * se[0]
    assert abs(x[:, 1].mean()) < 5 * se[1]


def test_non_finite_gradient_on_the_way_is_divergent_and_rejected():
    # In the slab the density and its gradient are NaN: a trajectory through it ends at a
    # non-finite point, which must count as divergent and leave the particle where it was.
    def poisoned(x):
        return -0.5 * x @ x + jnp.where(in_slab(x), jnp.nan, 0.0) * x[0]

    x0 = jnp.array([0.9, 0.0])
    lp, g = jax.value_and_grad(poisoned)(x0)
    s = BAOABState(x0, jnp.zeros(2), lp, g)
    run = jax.jit(jax.vmap(lambda k: moves._leapfrog_move(k, s, poisoned, 0.3, 1.0, 10)))
    out, info = run(jax.random.split(jax.random.PRNGKey(0), 200))
    div = np.asarray(info.is_divergent)
    assert 0 < div.sum() < 200  # both kinds of trajectory occur
    np.testing.assert_array_equal(np.asarray(info.acceptance_rate)[div], 0.0)
    np.testing.assert_array_equal(np.asarray(out.position)[div], np.tile(x0, (div.sum(), 1)))
    assert np.all(np.isfinite(np.asarray(out.logdensity)))


@pytest.mark.parametrize(
    ("friction", "per_step_test", "metropolis", "expect_fast"),
    [(0.0, False, True, True), (0.5, False, True, False), (0.0, True, True, False),
     (0.0, False, False, False), (1.0, True, True, False)],
)  # fmt: skip
def test_a_static_path_is_the_path_the_runtime_flags_choose(
    friction, per_step_test, metropolis, expect_fast
):
    # The SMC engine fixes the path when it builds its program (moves.is_fast on the host
    # settings); it must be the branch that lax.cond takes on the same settings as traced
    # values, so that the engine's moves are the documented kernels.
    fast_flag = moves.is_fast(friction, per_step_test, metropolis)
    assert fast_flag is expect_fast
    traced = jax.jit(moves.is_fast)(jnp.asarray(friction), per_step_test, metropolis)
    assert bool(traced) is expect_fast
    key, s = jax.random.PRNGKey(7), state_at(jnp.array([0.3, -1.0]))

    def run(fast):
        return jax.jit(lambda k, s: moves.move(
            k, s, logdensity, 0.4, jnp.asarray(friction), 1.0, 5, per_step_test, metropolis,
            fast=fast,
        ))(key, s)  # fmt: skip

    by_cond, by_static = run(None), run(fast_flag)
    np.testing.assert_array_equal(by_cond[0].position, by_static[0].position)
    np.testing.assert_array_equal(by_cond[1].acceptance_rate, by_static[1].acceptance_rate)
    # The other static path is another kernel (noise, or a per-step test): the check can fail.
    if per_step_test or not metropolis:
        other = run(not fast_flag)
        assert not np.array_equal(other[1].acceptance_rate, by_cond[1].acceptance_rate) or \
            not np.array_equal(other[0].position, by_cond[0].position)
