"""The SMC engine: schedules, resampling decisions, determinism, divergences, validation.

Most tests use a 1-D conjugate model given as a ``(logprior, loglik_per_datum, sample_prior)``
triple: theta ~ N(0, 1), y_i | theta ~ N(theta, 1), for which the evidence and posterior are
closed-form. Module-level functions keep the compiled programs shared between tests.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from langevin_nets.errors import DivergenceError
from langevin_nets.model import BayesianMLP
from langevin_nets.smc import engine, schedules, smc

Y = np.array([0.9, 1.4, 0.3, 1.1, 0.6, 1.7, 0.2, 0.8])
N_DATA = Y.size
Y_J = jnp.asarray(Y, jnp.float32)
CUT = 1.0  # the NaN model's likelihood is NaN above this


def logprior(theta):
    return -0.5 * theta[0] ** 2 - 0.5 * math.log(2 * math.pi)


def loglik(theta):
    return -0.5 * (Y_J - theta[0]) ** 2 - 0.5 * math.log(2 * math.pi)


def sample_prior(key, n):
    return jax.random.normal(key, (n, 1))


def loglik_nan_above_cut(theta):
    return jnp.where(theta[0] > CUT, jnp.nan, loglik(theta))


GAUSS = (logprior, loglik, sample_prior)
NAN_REGION = (logprior, loglik_nan_above_cut, sample_prior)

EXACT_LOG_Z = multivariate_normal(np.zeros(N_DATA), np.eye(N_DATA) + 1.0).logpdf(Y)
POST_VAR = 1.0 / (1.0 + N_DATA)
POST_MEAN = POST_VAR * Y.sum()
# Truncated to theta <= CUT: Z_trunc = Z * Phi(alpha), mean m - s phi(alpha) / Phi(alpha).
ALPHA = (CUT - POST_MEAN) / math.sqrt(POST_VAR)
TRUNC_LOG_Z = EXACT_LOG_Z + norm.logcdf(ALPHA)
TRUNC_MEAN = POST_MEAN - math.sqrt(POST_VAR) * norm.pdf(ALPHA) / norm.cdf(ALPHA)

FAST = dict(num_mcmc_steps=3, num_integration_steps=5)
NAN_N = 2000
NAN_KW = dict(num_particles=NAN_N, schedule="data", max_stages=N_DATA, **FAST)
# Shared settings, so that runs reuse one compiled program: the particle count and the
# stage cap are compile-time constants, the keys, thresholds and batch sizes are not.
N_PART = 500
DATA = dict(num_particles=N_PART, schedule="data", max_stages=N_DATA, **FAST)
ADAPTIVE = dict(num_particles=N_PART, max_stages=N_DATA, **FAST)


def _mean(result) -> float:
    w = np.exp(np.asarray(result.log_weights, float))
    return float(w @ np.asarray(result.particles, float)[:, 0])


# -- schedules ----------------------------------------------------------------------------


def test_fixed_paths():
    lam = schedules.geometric_lambdas(4)
    u = np.array([0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(lam, (100.0**u - 1) / 99)
    assert lam[-1] == 1.0
    np.testing.assert_allclose(schedules.linear_lambdas(4), u)
    np.testing.assert_array_equal(schedules.check_lambdas([0, 0.2, 1]), [0.2, 1.0])
    for bad in ([0.5, 0.4, 1.0], [0.2, 0.9], [], [[0.5, 1.0]], [0.5, np.nan, 1.0]):
        with pytest.raises(ValueError, match="lambdas"):
            schedules.check_lambdas(bad)


@pytest.mark.parametrize("conditional", [False, True])
def test_next_lambda_lands_on_target(conditional):
    rng = np.random.default_rng(0)
    N = 400
    ll = jnp.asarray(-50.0 + 10 * rng.standard_normal(N), jnp.float32)
    lw = jnp.asarray(0.3 * rng.standard_normal(N), jnp.float32)
    lw = lw - jax.scipy.special.logsumexp(lw)
    lam = jnp.asarray(0.2, jnp.float32)
    new = float(jax.jit(schedules.next_lambda, static_argnums=4)(lw, ll, lam, 0.5, conditional))
    assert 0.2 < new < 1.0
    w = np.exp(np.asarray(lw, float))
    g = np.exp((new - 0.2) * (np.asarray(ll, float) - float(jnp.max(ll))))
    if conditional:
        crit, goal = N * (w @ g) ** 2 / (w @ g**2), 0.5 * N
    else:
        a = w * g
        crit, goal = a.sum() ** 2 / (a**2).sum(), 0.5 / np.sum(w**2)
    # Just below the goal (0.999 of it), to float32 bisection accuracy.
    assert 0.998 * goal < crit < goal


def _log_criterion_np(lw: np.ndarray, incr: np.ndarray, conditional: bool) -> float:
    """The (conditional) ESS criterion in float64, straight from its definition."""
    w = np.exp(lw - lw.max())
    w /= w.sum()
    g = np.exp(incr - incr.max())
    if conditional:
        return float(np.log(lw.size * (w @ g) ** 2 / (w @ g**2)))
    a = w * g
    return float(np.log(a.sum() ** 2 / (a**2).sum()))


@pytest.mark.parametrize("conditional", [False, True])
def test_next_num_data_matches_brute_force(conditional):
    rng = np.random.default_rng(1)
    N, n = 300, 12
    ll = -1.0 + 0.4 * rng.standard_normal((N, n))
    lw = np.full(N, -math.log(N))
    fn = jax.jit(schedules.next_num_data, static_argnums=4)
    # The goal: 0.5 N (times the 0.999 margin) for uniform weights, for both criteria.
    goal = math.log(0.5 * N) + schedules.TARGET_MARGIN
    for k in range(n):
        got = int(fn(jnp.asarray(lw, jnp.float32), jnp.asarray(ll, jnp.float32),
                     jnp.asarray(k, jnp.int32), 0.5, conditional))
        expected = k + 1
        for j in range(k + 1, n + 1):
            if _log_criterion_np(lw, ll[:, k:j].sum(axis=1), conditional) < goal:
                break
            expected = j
        assert got == expected, (k, got, expected)


# -- the engine -----------------------------------------------------------------------------


def test_resamples_exactly_when_ess_below_threshold():
    thr = 0.8
    r = smc(GAUSS, jax.random.PRNGKey(0), ess_threshold=thr, **DATA)
    h = r.history
    assert r.num_stages == N_DATA and h.ess.shape == (N_DATA,)
    np.testing.assert_array_equal(h.resampled, h.ess < thr * 500)
    assert h.resampled.any() and not h.resampled.all()  # the check is not vacuous
    np.testing.assert_array_equal(h.num_data, np.arange(1, N_DATA + 1))
    assert np.all(h.lam == 1.0)


def test_evidence_unbiased_with_and_without_resampling():
    # Same compiled program (the threshold is a runtime value); 12 seeds each. Every run's
    # error is a draw with sd s (~0.06 nats here, measured for both thresholds); the mean of
    # 12 is compared within 4 standard errors s / sqrt(12) of the exact value, and the two
    # means within 4 standard errors of their difference. The bias of log(Z_hat), about
    # -s^2 / 2 = -0.002, is negligible against the standard error ~0.017.
    errors = {}
    for thr in (1.0, 0.0):
        errs = []
        for seed in range(12):
            r = smc(GAUSS, jax.random.PRNGKey(seed), ess_threshold=thr, **DATA)
            assert r.history.resampled.all() if thr == 1.0 else not r.history.resampled.any()
            errs.append(r.log_evidence - EXACT_LOG_Z)
        errors[thr] = np.array(errs)
    se = {t: e.std(ddof=1) / np.sqrt(e.size) for t, e in errors.items()}
    for t, e in errors.items():
        assert abs(e.mean()) < 4 * se[t], (t, e.mean(), se[t])
    assert abs(errors[1.0].mean() - errors[0.0].mean()) < 4 * math.hypot(se[1.0], se[0.0])


def test_same_key_same_result():
    kw = dict(ess_threshold=0.8, **DATA)
    a = smc(GAUSS, jax.random.PRNGKey(5), **kw)
    b = smc(GAUSS, jax.random.PRNGKey(5), **kw)
    c = smc(GAUSS, jax.random.PRNGKey(6), **kw)
    np.testing.assert_array_equal(np.asarray(a.particles), np.asarray(b.particles))
    np.testing.assert_array_equal(np.asarray(a.log_weights), np.asarray(b.log_weights))
    assert a.log_evidence == b.log_evidence
    for x, y in zip(a.history, b.history, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(np.asarray(a.particles), np.asarray(c.particles))


@pytest.mark.parametrize("schedule", ["data", "adaptive"])
def test_nan_region_is_dropped_not_propagated(schedule):
    # The likelihood is NaN for theta > 1: the target is the posterior truncated to
    # theta <= 1. Prior particles there (16%) get weight zero at the first reweighting and
    # Metropolis rejects every proposal into the region, so the evidence and mean are those
    # of the truncated posterior. 2000 particles, over 6 seeds: sd of log Z 0.025 (data) and
    # 0.041 (adaptive), of the mean 0.005; tolerances are about 4 sd.
    r = smc(NAN_REGION, jax.random.PRNGKey(3), **(NAN_KW | dict(schedule=schedule)))
    h = r.history
    assert h.num_divergent[0] > 200  # ~0.16 * 2000 prior draws lie above the cut
    assert h.num_divergent.sum() > h.num_divergent[0]  # and proposals there are refused
    x = np.asarray(r.particles)
    assert np.all(np.isfinite(x)) and np.all(x[:, 0] <= CUT)
    assert abs(r.log_evidence - TRUNC_LOG_Z) < 0.15
    assert abs(_mean(r) - TRUNC_MEAN) < 0.02


def test_unadjusted_moves_drop_diverging_particles():
    # Unadjusted moves step into the NaN region; such particles get weight zero (and keep a
    # finite position), and the next resampling replaces them.
    r = smc(NAN_REGION, jax.random.PRNGKey(4), metropolis=False, step_size=0.05, friction=5.0,
            move="ghmc", ess_threshold=0.9, **(NAN_KW | dict(num_integration_steps=10)))
    h = r.history
    assert np.all(h.acceptance_rate == 1.0) and np.all(h.step_size == np.float32(0.05))
    assert h.num_divergent[1:].sum() > 0
    x, lw = np.asarray(r.particles), np.asarray(r.log_weights)
    assert np.all(np.isfinite(x))
    assert np.all(np.isfinite(lw) | (lw == -np.inf))
    assert np.all(x[np.isfinite(lw), 0] <= CUT)
    assert abs(float(jax.scipy.special.logsumexp(r.log_weights))) < 1e-5


def test_every_particle_diverging_raises():
    # Every particle starts in the NaN region: all weights vanish at the first stage.
    x0 = np.full((NAN_N, 1), CUT + 1.0)
    with pytest.raises(DivergenceError, match="stage 1 .*smaller step_size"):
        smc(NAN_REGION, jax.random.PRNGKey(0), initial_particles=x0, **NAN_KW)


def test_hit_max_stages():
    lambdas = np.linspace(0.1, 1.0, 10)
    with pytest.warns(RuntimeWarning, match="max_stages=8 .*lambda=0.8"):
        r = smc(GAUSS, jax.random.PRNGKey(0), lambdas=lambdas, **ADAPTIVE)
    assert r.hit_max_stages and r.num_stages == N_DATA and r.history.lam.shape == (N_DATA,)
    np.testing.assert_allclose(r.history.lam, lambdas[:N_DATA], rtol=1e-6)
    full = smc(GAUSS, jax.random.PRNGKey(0), **DATA)
    assert not full.hit_max_stages and full.history.num_data[-1] == N_DATA


@pytest.mark.parametrize("conditional", [False, True])
def test_adaptive_tempering_follows_ess_target(conditional):
    r = smc(GAUSS, jax.random.PRNGKey(1), conditional_ess=conditional, **ADAPTIVE)
    h = r.history
    assert r.num_stages >= 2 and np.all(np.diff(h.lam) > 0) and h.lam[-1] == 1.0
    assert np.all(h.num_data == N_DATA)
    if not conditional:
        # Every stage but the last resamples, landing just under 0.5 N (0.999 of the goal).
        assert np.all((h.ess[:-1] > 0.49 * N_PART) & (h.ess[:-1] < 0.5 * N_PART))
        assert h.resampled[:-1].all()
    assert abs(r.log_evidence - EXACT_LOG_Z) < 0.15


def test_adaptive_data_annealing():
    r = smc(GAUSS, jax.random.PRNGKey(2), batch_size="adaptive", data_order="shuffle", **DATA)
    k = r.history.num_data
    assert np.all(np.diff(k) >= 1) and k[-1] == N_DATA and k.size < N_DATA
    # A stage that took several points kept the ESS at (0.999 of) half the ESS it started
    # from: N after a resampling, else the previous stage's ESS.
    h = r.history
    several = np.diff(np.r_[0, k]) > 1
    assert several.any()
    start = np.r_[N_PART, np.where(h.resampled[:-1], N_PART, h.ess[:-1])]
    assert np.all(h.ess[several] >= 0.4995 * start[several] * (1 - 1e-4))
    assert abs(r.log_evidence - EXACT_LOG_Z) < 0.15


def test_fixed_paths_and_counts():
    lambdas = [0.01, 0.1, 0.4, 1.0]
    r = smc(GAUSS, jax.random.PRNGKey(0), lambdas=lambdas,
            **(ADAPTIVE | dict(num_mcmc_steps=2, num_integration_steps=3)))
    np.testing.assert_allclose(r.history.lam, lambdas)
    assert r.num_gradient_evaluations == N_PART * 4 * (1 + 2 * 3)
    # The first stage weighs the initial particles by the first points of the data order:
    # the evidence increment is exactly log mean_j p(y_7, y_6, y_5 | theta_j).
    x0 = np.linspace(-2.0, 2.0, N_PART)[:, None]
    r = smc(GAUSS, jax.random.PRNGKey(0), batch_size=3, data_order=np.arange(N_DATA)[::-1],
            initial_particles=x0, **DATA)
    np.testing.assert_array_equal(r.history.num_data, [3, 6, 8])
    ll = norm.logpdf(Y[None, 5:], x0, 1.0).sum(axis=1)
    expected = np.logaddexp.reduce(ll) - math.log(N_PART)
    assert r.history.log_evidence_increment[0] == pytest.approx(expected, abs=1e-4)


def test_trajectory_length_sets_steps():
    r = smc(GAUSS, jax.random.PRNGKey(0), trajectory_length=1.0,
            **(ADAPTIVE | dict(num_integration_steps=50)))
    h = r.history
    expected = np.clip(np.ceil(np.float32(1.0) / h.step_size), 1, 50)
    np.testing.assert_array_equal(h.num_integration_steps, expected)


def test_original_fixed_settings_and_options():
    r = smc(GAUSS, jax.random.PRNGKey(0), num_particles=N_PART, schedule="geometric",
            num_stages=N_DATA, max_stages=N_DATA, metropolis=False, step_size=1e-4,
            friction=100.0, mass=10.0, move="ghmc", num_mcmc_steps=2, num_integration_steps=5)
    assert np.all(r.history.step_size == np.float32(1e-4))
    assert np.all(r.history.acceptance_rate == 1.0)
    assert r.num_stages == N_DATA and not r.hit_max_stages
    for kw in (dict(move="ghmc"), dict(precondition=True, resampling="residual")):
        r = smc(GAUSS, jax.random.PRNGKey(0), **(DATA | kw))
        # 500 particles, 6 seeds: sd of log Z 0.03 (ghmc), 0.012 (preconditioned); 0.15 is
        # 5 sd or more.
        assert abs(r.log_evidence - EXACT_LOG_Z) < 0.15
        assert np.all(r.history.acceptance_rate > 0.5)


def test_progress_bar(capsys):
    smc(GAUSS, jax.random.PRNGKey(0), progress_bar=True, **DATA)
    assert "smc" in capsys.readouterr().err


def test_progress_callback_is_compiled_in_only_with_a_bar(monkeypatch):
    """A host callback in the program, even one never fired, costs jax's fast dispatch
    path on every call: the stage loop holds one only when a bar is shown."""
    calls = []
    advance = engine._advance
    monkeypatch.setattr(engine, "_advance", lambda *a: calls.append(a) or advance(*a))
    for bar in (False, True):
        smc(GAUSS, jax.random.PRNGKey(0), progress_bar=bar, **DATA)
    texts = [advance.lower(*a).as_text() for a in calls]
    assert ["callback" in text for text in texts] == [False, True]


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_particles=1), ValueError, "num_particles"),
        (dict(num_particles=2.5), TypeError, "num_particles"),
        (dict(schedule="cosine"), ValueError, "schedule"),
        (dict(schedule="geometric"), ValueError, "num_stages"),
        (dict(schedule="data", num_stages=5), ValueError, "num_stages"),
        (dict(schedule="linear", lambdas=[0.5, 1.0]), ValueError, "lambdas"),
        (dict(lambdas=[0.5, 0.9]), ValueError, "lambdas"),
        (dict(batch_size=2), ValueError, "batch_size"),
        (dict(schedule="data", batch_size=0), ValueError, "batch_size"),
        (dict(schedule="data", batch_size="auto"), ValueError, "batch_size"),
        (dict(schedule="data", data_order=[0, 1]), ValueError, "data_order"),
        (dict(data_order="shuffle"), ValueError, "data_order"),
        (dict(target_ess=1.0), ValueError, "target_ess"),
        (dict(ess_threshold=1.5), ValueError, "ess_threshold"),
        (dict(resampling="best"), ValueError, "resampling"),
        (dict(move="nuts"), ValueError, "move"),
        (dict(num_integration_steps=0), ValueError, "num_integration_steps"),
        (dict(num_mcmc_steps=-1), ValueError, "num_mcmc_steps"),
        (dict(metropolis=False), ValueError, "step_size"),
        (dict(metropolis=False, adapt_step_size=True, step_size=0.1), ValueError, "adapt"),
        (dict(step_size=-1.0), ValueError, "step_size"),
        (dict(friction=-1.0), ValueError, "friction"),
        (dict(mass=[1.0, 2.0]), ValueError, "mass"),
        (dict(target_acceptance=0.0), ValueError, "target_acceptance"),
        (dict(max_stages=0), ValueError, "max_stages"),
        (dict(initial_particles=np.zeros((3, 1))), ValueError, "initial_particles"),
        (dict(conditional_ess=True, schedule="data"), ValueError, "conditional_ess"),
        (dict(trajectory_length=0.0), ValueError, "trajectory_length"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kw = dict(num_particles=10) | kwargs
    with pytest.raises(error, match=match):
        smc(GAUSS, jax.random.PRNGKey(0), **kw)


def test_bad_posterior_and_key():
    with pytest.raises(TypeError, match="posterior"):
        smc(object(), jax.random.PRNGKey(0), num_particles=10)
    with pytest.raises(TypeError, match="callables"):
        smc((logprior, loglik, 3), jax.random.PRNGKey(0), num_particles=10)
    with pytest.raises(TypeError, match="key"):
        smc(GAUSS, 0, num_particles=10)
    with pytest.raises(ValueError, match="sample_prior"):
        smc((logprior, loglik, lambda k, n: jnp.zeros((n,))), jax.random.PRNGKey(0),
            num_particles=10)


def test_posterior_shapes_remembered_per_data_shape():
    # A Posterior's (dim, num_data) are remembered by its structure and leaf shapes: a
    # second data set of another size, a chunked posterior or another key type is a new
    # entry, and each gets its own answer (the uncached abstract evaluation's).
    model = BayesianMLP((2, 3, 1))
    rng = np.random.default_rng(0)
    posts = [model.posterior(rng.normal(size=(n, 2)), rng.normal(size=(n, 1))) for n in (7, 9)]
    posts.append(posts[1].with_data_chunk(4))
    keys = (jax.random.PRNGKey(0), jax.random.key(0))
    engine._cached_shapes.cache_clear()
    for _ in range(2):
        for key in keys:
            for post, n in zip(posts, (7, 9, 9), strict=True):
                assert engine._target_shapes(None, post, key, 4) == (model.dim, n)
                assert engine._shapes(None, post, key, 4) == (model.dim, n)
    info = engine._cached_shapes.cache_info()
    assert (info.misses, info.hits) == (6, 6)
    # Plain functions are evaluated every time: their checks still run.
    static = engine._as_target((logprior, lambda t: jnp.sum(loglik(t)), sample_prior))
    with pytest.raises(ValueError, match="one value per datum"):
        engine._target_shapes(static, None, keys[0], 4)
