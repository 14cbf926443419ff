"""langevin() reuses its compiled sampler across calls with the same function and settings.

Compile counts come from jax's own backend-compile events. Results are compared bitwise:
the cached program is the very program the first call compiled.
"""

from __future__ import annotations

import sys

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import count_compiles, same
from langevin_nets import langevin

# The module, not the function the package re-exports under the same name.
LANGEVIN_MODULE = sys.modules["langevin_nets.langevin"]
BASE = dict(step_size=0.2, friction=1.0, num_chains=2)
X0 = np.zeros((2, 3))


def std_normal(x):
    return -0.5 * jnp.sum(x * x)


def test_repeat_call_does_not_compile_and_matches():
    key = jax.random.PRNGKey(3)
    first, n_first = count_compiles(langevin, std_normal, key, X0, 30, **BASE)
    again, n_again = count_compiles(langevin, std_normal, key, X0, 30, **BASE)
    other_key, n_other = count_compiles(
        langevin, std_normal, jax.random.PRNGKey(4), X0, 30, **BASE
    )
    assert n_first >= 1
    assert n_again == 0 and n_other == 0
    assert same(first, again)
    assert not np.array_equal(first.positions, other_key.positions)
    # A new function object is traced afresh and gives the same numbers.
    fresh = langevin(lambda x: std_normal(x), key, X0, 30, **BASE)
    assert same(first, fresh)


@pytest.mark.parametrize(
    "change",
    [
        dict(step_size=0.3),
        dict(metropolis=True),
        dict(num_burnin=5, burnin_mass=3.0),
        dict(thin=2),
        dict(record_fn=lambda x: x[0]),
    ],
    ids=lambda c: ",".join(c),
)
def test_changed_settings_do_not_reuse_the_cached_sampler(change):
    # Were a setting missing from the cache key, the call would silently rerun the base
    # sampler and return the base trace.
    key = jax.random.PRNGKey(5)
    base = langevin(std_normal, key, X0, 10, **BASE)
    changed = langevin(std_normal, key, X0, 10, **{**BASE, **change})
    assert not same(base, changed)
    if "record_fn" in change:
        np.testing.assert_array_equal(changed.recorded, changed.positions[..., 0])


def test_unhashable_log_density_is_not_cached_but_works():
    class Unhashable:
        __hash__ = None

        def __call__(self, x):
            return std_normal(x)

    f = Unhashable()
    key = jax.random.PRNGKey(6)
    a, n_a = count_compiles(langevin, f, key, X0, 10, **BASE)
    b, n_b = count_compiles(langevin, f, key, X0, 10, **BASE)
    assert n_a >= 1 and n_b >= 1
    assert same(a, b)


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(LANGEVIN_MODULE, "_MAX_SAMPLERS", 2)
    for n in range(1, 4):
        langevin(std_normal, jax.random.PRNGKey(0), X0, n, **BASE)
        assert len(LANGEVIN_MODULE._SAMPLERS) <= 2
    # The most recent settings are kept.
    _, n_compiles = count_compiles(
        langevin, std_normal, jax.random.PRNGKey(0), X0, 3, **BASE
    )
    assert n_compiles == 0


def test_cached_progress_bar_still_reports(monkeypatch):
    # The cached program reports to the bar it was traced with; each call must reopen it.
    bars = []

    class FakeTqdm:
        def __init__(self, total, **_):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            pass

    monkeypatch.setattr(sys.modules["langevin_nets.progress"], "tqdm", FakeTqdm)
    for _ in range(2):
        langevin(std_normal, jax.random.PRNGKey(0), X0, 40, progress_bar=True, **BASE)
        jax.effects_barrier()
    assert [(b.total, b.n) for b in bars] == [(40, 40), (40, 40)]


def test_posteriors_differing_in_prior_share_the_sampler():
    # The prior's hyperparameters are leaves of the Posterior, so the second prior reuses
    # the first one's program and still samples its own density: the same numbers as a
    # plain function of that posterior (traced with its constants baked in).
    from langevin_nets import BayesianMLP

    X = np.linspace(-1.0, 1.0, 8)[:, None]
    y = 0.5 * X[:, 0]
    key = jax.random.PRNGKey(6)
    x0 = np.zeros((2, 3))
    wide, narrow = (
        BayesianMLP((1, 1), prior_scale=s, noise_shape=a).posterior(X, y)
        for s, a in ((3.0, 1.0), (0.5, 3.0))
    )
    opts = {**BASE, "step_size": 0.05}
    first = langevin(wide, key, x0, 30, **opts)
    got, n = count_compiles(langevin, narrow, key, x0, 30, **opts)
    assert n == 0
    plain = langevin(lambda x: narrow.logdensity(x), key, x0, 30, **opts)
    np.testing.assert_allclose(got.positions, plain.positions, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got.positions, first.positions, rtol=1e-2)


def test_fit_step_size_adaptation_is_shared_and_reaches_its_target():
    # fit()'s Langevin path tunes one step size by dual averaging in a compiled scan that
    # takes the posterior as an argument: a second data set and prior of the same model
    # structure reuse it, and each run tunes to its own posterior's scale, with the mean
    # acceptance of the last tenth near the target (over 12 keys: 0.83-0.90, sd 0.02 and
    # 0.009 for the two posteriors, so 0.1 is over four sd).
    from langevin_nets import BayesianMLP
    from langevin_nets.fit import TARGET_ACCEPTANCE, _adapt_step_size

    rng = np.random.default_rng(8)
    cfg = dict(burnin=300, friction=None, mass=1.0)
    runs = []
    for scale, n in ((1.0, 40), (0.2, 40)):
        X = rng.normal(size=(n, 2))
        post = BayesianMLP((2, 4, 1), prior_scale=scale).posterior(X, np.sin(X[:, 0]))
        x0 = np.asarray(post.sample_prior(jax.random.PRNGKey(0), 3))
        runs.append(count_compiles(_adapt_step_size, cfg, post, jax.random.PRNGKey(1), x0, n,
                                   False))  # fmt: skip
    (h1, pos1, tenths1), _ = runs[0]
    (h2, pos2, tenths2), compiles = runs[1]
    assert compiles == 0
    assert pos1.shape == pos2.shape == (3, 1 + 4 * 2 + 4 + 4 + 1)
    assert h1 != h2
    for tenths in (tenths1, tenths2):
        assert len(tenths) == 10
        assert abs(tenths[-1] - TARGET_ACCEPTANCE) < 0.1, tenths


def test_new_step_size_friction_and_mass_reuse_the_sampler():
    # The integrator's numbers are arguments of the compiled sampler: a step-size sweep
    # (or a Langevin fit's tuned step) does not recompile, and each run is the run a new
    # function object (traced afresh) gives with those numbers.
    key = jax.random.PRNGKey(9)
    langevin(std_normal, key, X0, 20, **BASE)
    other = dict(step_size=0.35, friction=2.5, mass=np.array([1.0, 2.0, 0.5]),
                 num_chains=2, temperature=0.7)  # fmt: skip
    got = langevin(std_normal, key, X0, 20, **other)  # a vector mass: a new shape
    again, n = count_compiles(langevin, std_normal, key, X0, 20, **{**other, "step_size": 0.3})
    assert n == 0
    fresh = langevin(lambda x: std_normal(x), key, X0, 20, **{**other, "step_size": 0.3})
    np.testing.assert_allclose(again.positions, fresh.positions, rtol=1e-6, atol=1e-6)
    assert not np.allclose(got.positions, again.positions)
