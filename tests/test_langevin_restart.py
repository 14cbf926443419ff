"""langevin(on_divergence=...): raise or restart with a smaller step; Posteriors as traced data.

Faults are injected on purpose: a log density that is NaN above x = 3, and a step size 25
times the stability limit of a standard normal. Moments are checked against closed forms
with tolerances of four standard errors, the standard errors estimated from the spread of
the per-chain averages over independent chains (each chain's average is one independent
estimate, so no autocorrelation estimate is needed).
"""

from __future__ import annotations

import math
import sys

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import count_compiles, same
from langevin_nets import BayesianMLP, LangevinTrace, langevin
from langevin_nets.errors import DivergenceError

LANGEVIN_MODULE = sys.modules["langevin_nets.langevin"]
CUT = 3.0


def std_normal(x):
    return -0.5 * jnp.sum(x * x)


def nan_above_cut(x):
    return jnp.where(x[0] > CUT, jnp.nan, std_normal(x))


def truncated_normal_moments(b: float) -> tuple[float, float]:
    """Mean and variance of N(0, 1) conditioned on x <= b."""
    phi = math.exp(-0.5 * b * b) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + math.erf(b / math.sqrt(2)))
    mean = -phi / Phi
    return mean, 1 - b * phi / Phi - mean * mean


def assert_moments(x: np.ndarray, mean: float, var: float) -> None:
    """Mean and variance of the draws ``x`` (chains, samples) within 4 standard errors."""
    n = x.shape[0]
    m1 = x.mean(axis=1)
    m2 = ((x - mean) ** 2).mean(axis=1)
    se1, se2 = m1.std(ddof=1) / math.sqrt(n), m2.std(ddof=1) / math.sqrt(n)
    assert abs(m1.mean() - mean) < 4 * se1, (m1.mean(), mean, se1)
    assert abs(m2.mean() - var) < 4 * se2, (m2.mean(), var, se2)


# -- a log density that is NaN on part of the space --------------------------------------------

NAN_KW = dict(step_size=1.5, friction=1.0, num_chains=16)  # stable, but large


def test_nan_region_raise_names_the_stage_and_restart_finishes():
    x0 = np.zeros((16, 1))
    with pytest.raises(DivergenceError, match=r"at production step \d+ \(while drawing sample "
                       r"\d+\); \d+ chain\(s\) diverged; try a smaller step_size \(now 1.5\).*"
                       r"on_divergence='restart'"):  # fmt: skip
        langevin(nan_above_cut, jax.random.PRNGKey(2), x0, 300, **NAN_KW)
    tr = langevin(nan_above_cut, jax.random.PRNGKey(2), x0, 300, on_divergence="restart",
                  **NAN_KW)  # fmt: skip
    x = np.asarray(tr.positions)
    assert np.all(np.isfinite(x)) and x.max() <= CUT
    restarts = np.asarray(tr.num_restarts)
    assert restarts.shape == (16,) and restarts.sum() > 0
    # Every restart halves the chain's step; nothing else changes it.
    np.testing.assert_array_equal(tr.final_step_size, 1.5 * 0.5**restarts)
    # Each divergent step was restarted (none was left, or the call would have raised).
    np.testing.assert_array_equal(tr.num_divergent, restarts)


def test_restart_with_metropolis_samples_the_truncated_normal():
    # Metropolis makes every kernel exact for N(0, 1) truncated to x <= 3 (proposals into
    # the NaN region are rejected). Burn-in restarts each chain's step (1.5, large enough
    # to propose across the cut from near it) a few times; production then runs each chain
    # with its one exact kernel, so the moments are the truncated normal's. Chains start
    # from the target (rejection draws), so no transient either.
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400)
    x0 = z[z <= CUT][:64, None]
    h = 1.5
    tr = langevin(nan_above_cut, jax.random.PRNGKey(1), x0, 1000, step_size=h, friction=1.0,
                  num_chains=64, num_burnin=200, metropolis=True,
                  on_divergence="restart")  # fmt: skip
    x = np.asarray(tr.positions)[..., 0]
    assert np.all(np.isfinite(x)) and x.max() <= CUT
    restarts = np.asarray(tr.num_restarts)
    assert (restarts > 0).mean() > 0.3
    np.testing.assert_array_equal(tr.final_step_size, h * 0.5**restarts)
    assert np.asarray(tr.acceptance_rate).mean() > 0.5  # the chains move
    assert_moments(x, *truncated_normal_moments(CUT))


def test_metropolis_chains_restart_in_burnin_only_and_run_out_quietly():
    # A large NaN region (x > 0.5): proposals cross it often.
    def nan_above_half(x):
        return jnp.where(x[0] > 0.5, jnp.nan, std_normal(x))

    kw = dict(step_size=1.5, friction=1.0, num_chains=8, metropolis=True,
              on_divergence="restart")  # fmt: skip
    x0 = np.zeros((8, 1))
    # In production a divergent step is rejected (exact), not restarted.
    tr = langevin(nan_above_half, jax.random.PRNGKey(1), x0, 200, **kw)
    assert np.all(np.asarray(tr.num_divergent) > 0)
    np.testing.assert_array_equal(tr.num_restarts, np.zeros(8, np.int32))
    np.testing.assert_array_equal(tr.final_step_size, np.full(8, 1.5, np.float32))
    # Past max_restarts in burn-in a Metropolis chain is still exact: it rejects the
    # divergent steps with its last step size instead of stopping the run.
    tr = langevin(nan_above_half, jax.random.PRNGKey(1), x0, 10, num_burnin=200,
                  max_restarts=1, **kw)  # fmt: skip
    np.testing.assert_array_equal(tr.num_restarts, np.ones(8, np.int32))
    np.testing.assert_array_equal(tr.final_step_size, np.full(8, 0.75, np.float32))
    assert np.all(np.asarray(tr.num_divergent) > 1)
    assert np.asarray(tr.positions).max() <= 0.5


# -- a step far beyond the stability limit ---------------------------------------------------


def test_restart_lowers_an_unstable_step_until_stable():
    # BAOAB on N(0, 1) is stable for h < 2: from h = 50 it takes at least 5 halvings
    # (50 / 2^5 = 1.5625). BAOAB samples a Gaussian's positions exactly at any stable h,
    # so production (at the restarted step, carried over from burn-in) has mean 0, var 1.
    n = 16
    tr = langevin(std_normal, jax.random.PRNGKey(0), np.ones((n, 1)), 500, step_size=50.0,
                  friction=1.0, num_chains=n, num_burnin=200, on_divergence="restart")  # fmt: skip
    restarts = np.asarray(tr.num_restarts)
    h = np.asarray(tr.final_step_size)
    assert np.all(restarts >= 5) and np.all(h < 2.0)
    np.testing.assert_array_equal(h, 50.0 * 0.5**restarts)
    x = np.asarray(tr.positions)[..., 0]
    assert np.all(np.isfinite(x))
    assert_moments(x, 0.0, 1.0)
    # The same run with on_divergence="raise" stops in burn-in.
    with pytest.raises(DivergenceError, match=r"at burn-in step \d+ of 200; "):
        langevin(std_normal, jax.random.PRNGKey(0), np.ones((n, 1)), 500, step_size=50.0,
                 friction=1.0, num_chains=n, num_burnin=200)  # fmt: skip


def test_restarts_exhausted_raise():
    with pytest.raises(DivergenceError, match=r"chain \d diverged .* at production step \d+ "
                       r".*after its max_restarts=2 restarts, which had cut its step size to "
                       r"12.5; 4 chain\(s\) gave up; try a smaller step_size \(now 50.0\)"):
        langevin(std_normal, jax.random.PRNGKey(0), np.ones((4, 1)), 500, step_size=50.0,
                 friction=1.0, num_chains=4, on_divergence="restart", max_restarts=2)  # fmt: skip


# -- the trace fields and the option checks --------------------------------------------------


def test_trace_fields_with_the_default_raise():
    tr = langevin(std_normal, jax.random.PRNGKey(0), np.zeros((3, 2)), 5, step_size=0.3,
                  friction=1.0, num_chains=3)  # fmt: skip
    np.testing.assert_array_equal(tr.num_restarts, np.zeros(3, np.int32))
    np.testing.assert_array_equal(tr.final_step_size, np.full(3, 0.3, np.float32))
    one = langevin(std_normal, jax.random.PRNGKey(0), np.zeros(2), 5, step_size=0.3,
                   friction=1.0)  # fmt: skip
    assert np.shape(one.num_restarts) == () and int(one.num_restarts) == 0
    assert float(one.final_step_size) == pytest.approx(0.3)
    # Code building a trace from the first eight fields keeps working.
    old = LangevinTrace(*one[:8])
    assert old.num_restarts is None and old.final_step_size is None


@pytest.mark.parametrize(
    "extra, error, match",
    [
        (dict(on_divergence="retry"), ValueError,
         "unknown on_divergence 'retry'; expected one of raise, restart"),
        (dict(on_divergence=None), TypeError, "on_divergence must be one of raise, restart"),
        (dict(on_divergence="restart", max_restarts=-1), ValueError, "max_restarts"),
        (dict(max_restarts=2.5), TypeError, "max_restarts"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_before_compiling(extra, error, match):
    with pytest.raises(error, match=match):
        count_compiles(langevin, lambda x: std_normal(x), jax.random.PRNGKey(0), np.zeros(2),
                       5, step_size=0.3, friction=1.0, **extra)  # fmt: skip
    # A new function object each time: any compilation would be counted here.
    _, n = count_compiles(_refused, extra)
    assert n == 0


def _refused(extra):
    try:
        langevin(lambda x: std_normal(x), jax.random.PRNGKey(0), np.zeros(2), 5,
                 step_size=0.3, friction=1.0, **extra)  # fmt: skip
    except (TypeError, ValueError):
        return None
    raise AssertionError("accepted")


# -- Posteriors are traced data -----------------------------------------------------------------


def test_posteriors_with_other_data_share_one_compiled_sampler(monkeypatch):
    monkeypatch.setattr(LANGEVIN_MODULE, "_SAMPLERS", type(LANGEVIN_MODULE._SAMPLERS)())
    model = BayesianMLP((1, 3, 1), noise_std=0.5)
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (20, 1))
    a = model.posterior(X, np.sin(X))
    b = model.posterior(X + 0.5, np.cos(X))  # same shapes, other numbers
    kw = dict(step_size=0.01, friction=1.0, num_chains=2, on_divergence="restart")
    x0 = np.zeros((2, model.dim))
    key = jax.random.PRNGKey(4)
    ra, n_a = count_compiles(langevin, a, key, x0, 10, **kw)
    rb, n_b = count_compiles(langevin, b, key, x0, 10, **kw)
    assert n_a >= 1 and n_b == 0
    assert len(LANGEVIN_MODULE._SAMPLERS) == 1
    assert not np.array_equal(ra.positions, rb.positions)
    # The cached program read b's data: a program compiled afresh for b gives the same bits.
    LANGEVIN_MODULE._SAMPLERS.clear()
    fresh, n_fresh = count_compiles(langevin, b, key, x0, 10, **kw)
    assert n_fresh >= 1 and same(fresh, rb)
    # A bound method of a Posterior (how fit() passes it) is traced the same way.
    ma, n_ma = count_compiles(langevin, a.logdensity, key, x0, 10, **kw)
    mb, n_mb = count_compiles(langevin, b.logdensity, key, x0, 10, **kw)
    assert n_ma >= 1 and n_mb == 0
    assert not np.array_equal(ma.positions, mb.positions)
    assert len(LANGEVIN_MODULE._SAMPLERS) == 2
