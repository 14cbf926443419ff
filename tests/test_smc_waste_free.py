"""Waste-free SMC (``smc(..., waste_free=P)``) against the closed forms of a Gaussian model.

Model: ``theta ~ N(0, 1)``, eight points ``y_i ~ N(theta, 1)`` (``tests/test_smc_engine.py``),
whose evidence, posterior mean and variance are exact. Waste-free SMC resamples ``N / P``
particles per stage, moves each ``P - 1`` times and keeps every state: the evidence estimate
stays unbiased, and the particles (correlated within a chain) still target the posterior.

Tolerances. With ``N = 480, P = 8`` (60 chains, 5 leapfrog steps a move), measured over 30
seeds per schedule: the sd of the log-evidence error is 0.050 (data annealing) and 0.061
(adaptive tempering); of the particle mean 0.019, of the particle variance 0.011 (posterior
variance 0.111); the means of the 30 errors were all within one standard error of zero. The
tests average 12 seeds and compare within 4 standard errors computed from those same 12
runs, as ``test_evidence_unbiased_with_and_without_resampling`` does for standard SMC.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from langevin_nets.smc import smc
from test_smc_engine import (
    CUT,
    EXACT_LOG_Z,
    GAUSS,
    N_DATA,
    NAN_REGION,
    POST_MEAN,
    POST_VAR,
    TRUNC_LOG_Z,
)

N = 480
P = 8
WF = dict(num_particles=N, waste_free=P, num_integration_steps=5, max_stages=N_DATA)
SEEDS = 12


@pytest.mark.parametrize("schedule", ["data", "adaptive"])
def test_evidence_and_moments_are_unbiased(schedule):
    errs, means, variances = [], [], []
    for seed in range(SEEDS):
        r = smc(GAUSS, jax.random.PRNGKey(seed), schedule=schedule, **WF)
        assert not r.hit_max_stages
        errs.append(r.log_evidence - EXACT_LOG_Z)
        x = np.asarray(r.particles, float)[:, 0]
        w = np.exp(np.asarray(r.log_weights, float))
        np.testing.assert_allclose(w, 1.0 / N, rtol=1e-5)  # every kept state weighs the same
        means.append(w @ x)
        variances.append(w @ (x - w @ x) ** 2)
    for values, exact in ((errs, 0.0), (means, POST_MEAN), (variances, POST_VAR)):
        v = np.asarray(values)
        se = v.std(ddof=1) / math.sqrt(v.size)
        assert abs(v.mean() - exact) < 4 * se, (v.mean(), exact, se)
    # Not vacuous: the runs differ, and the spread is that of a sampler, not of rounding.
    assert 0.01 < np.std(errs) < 0.2


def test_stage_cost_resampling_and_history():
    lambdas = [0.05, 0.3, 1.0]
    L = 3
    r = smc(GAUSS, jax.random.PRNGKey(0), num_particles=N, waste_free=P, lambdas=lambdas,
            num_integration_steps=L, max_stages=N_DATA)  # fmt: skip
    h = r.history
    np.testing.assert_allclose(h.lam, lambdas)
    assert h.resampled.all()  # every stage resamples its N / P chain starts
    # Per stage: N / P chains, one gradient at the start and L per move, P - 1 moves.
    assert r.num_gradient_evaluations == (N // P) * len(lambdas) * (1 + (P - 1) * L)
    # Standard SMC with N particles and P - 1 moves costs P times as much.
    std = smc(GAUSS, jax.random.PRNGKey(0), num_particles=N, num_mcmc_steps=P - 1,
              lambdas=lambdas, num_integration_steps=L, max_stages=N_DATA)  # fmt: skip
    assert std.num_gradient_evaluations == P * r.num_gradient_evaluations
    # The kept states are the chains' P states: at least as many distinct values as chains
    # times the accepted moves, far more than the N / P starting points.
    x = np.asarray(r.particles)[:, 0]
    assert np.unique(x).size > 4 * (N // P)
    assert np.all(np.isfinite(x))


def test_same_key_same_result_and_other_key_another():
    a = smc(GAUSS, jax.random.PRNGKey(5), **WF)
    b = smc(GAUSS, jax.random.PRNGKey(5), **WF)
    c = smc(GAUSS, jax.random.PRNGKey(6), **WF)
    np.testing.assert_array_equal(np.asarray(a.particles), np.asarray(b.particles))
    assert a.log_evidence == b.log_evidence
    assert not np.array_equal(np.asarray(a.particles), np.asarray(c.particles))


def test_particle_chunks_change_only_the_rounding():
    # float32: chunked and unchunked moves round differently; the first stage's moves
    # agree closely, and the evidence within a small fraction of its Monte Carlo sd (0.05).
    kw = dict(WF, schedule="data")
    a = smc(GAUSS, jax.random.PRNGKey(3), **kw)
    b = smc(GAUSS, jax.random.PRNGKey(3), particle_chunk=7, **kw)
    assert abs(a.log_evidence - b.log_evidence) < 0.01


def test_nan_region_is_dropped_not_propagated():
    # As the standard-SMC test: a NaN likelihood above theta = 1 truncates the posterior;
    # no kept state may lie there, and no NaN reaches the output.
    r = smc(NAN_REGION, jax.random.PRNGKey(3), num_particles=2000, waste_free=10,
            num_integration_steps=5, schedule="data", max_stages=N_DATA)  # fmt: skip
    x = np.asarray(r.particles)
    assert np.all(np.isfinite(x)) and np.all(x[:, 0] <= CUT)
    assert np.all(np.isfinite(np.asarray(r.log_weights)))
    # 200 chains: sd of log Z about 0.05 here; 0.2 is 4 sd.
    assert abs(r.log_evidence - TRUNC_LOG_Z) < 0.2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(waste_free=1), ValueError, "at least 2"),
        (dict(waste_free=0), ValueError, "waste_free"),
        (dict(waste_free=2.5), TypeError, "waste_free"),
        (dict(num_particles=10, waste_free=3), ValueError, "divisible"),
        (dict(waste_free=5, num_mcmc_steps=3), ValueError, "num_mcmc_steps does not apply"),
        (dict(waste_free=5, ess_threshold=0.5), ValueError, "ess_threshold does not apply"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kw = dict(num_particles=20) | kwargs
    with pytest.raises(error, match=match):
        smc(GAUSS, jax.random.PRNGKey(0), **kw)
