"""Resampling schemes: unbiased offspring counts, variance ordering, zero weights."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin_nets.smc import resampling

SCHEMES = list(resampling.RESAMPLERS)
# Eight particles, one of weight zero, none an exact multiple of 1/N.
WEIGHTS = np.array([0.3, 0.05, 0.0, 0.2, 0.13, 0.1, 0.15, 0.07])
N = WEIGHTS.size
REPS = 20_000
# cumsum(1/3, 1/3, 1/3) rounds below 1 in float32: the last positive particle must take the
# remainder, never the zero-weight particles after it.
TRAILING = np.array([1 / 3, 1 / 3, 1 / 3, 0.0, 0.0])
TRAILING_REPS = 4000


@functools.cache
def _draws(scheme: str) -> dict[str, np.ndarray]:
    """All draws a test needs from one scheme, in one compiled call."""
    fn = resampling.RESAMPLERS[scheme]

    @jax.jit
    def run(key):
        k1, k2, k3 = jax.random.split(key, 3)
        many = jax.vmap(lambda k: fn(k, jnp.asarray(WEIGHTS, jnp.float32), N))(
            jax.random.split(k1, REPS)
        )
        trailing = jax.vmap(lambda k: fn(k, jnp.asarray(TRAILING, jnp.float32), 6))(
            jax.random.split(k2, TRAILING_REPS)
        )
        one_hot = fn(k3, jnp.zeros(10).at[7].set(1.0), 10)
        uniform = fn(k3, jnp.full(10, 0.1), 10)
        return many, trailing, one_hot, uniform

    out = [np.asarray(a) for a in run(jax.random.PRNGKey(0))]
    for a in out:
        assert a.dtype == np.int32
    many, trailing, one_hot, uniform = out

    def count(a: np.ndarray, m: int) -> np.ndarray:
        return (a[..., None] == np.arange(m)).sum(axis=1)

    return {
        "counts": count(many, N),
        "trailing": count(trailing, TRAILING.size),
        "one_hot": one_hot,
        "uniform": uniform,
    }


@pytest.mark.parametrize("scheme", SCHEMES)
def test_expected_offspring_is_n_times_weight(scheme):
    c = _draws(scheme)["counts"]
    assert c.shape == (REPS, N) and np.all(c.sum(axis=1) == N)
    mean = c.mean(axis=0)
    # Monte Carlo standard error of each mean count from its own spread; 5 standard errors
    # (a false alarm has probability ~1e-6 per particle). The small floor covers counts
    # with no spread (then the mean must be exact up to float rounding of N * w).
    se = c.std(axis=0, ddof=1) / np.sqrt(REPS)
    assert np.all(np.abs(mean - N * WEIGHTS) <= 5 * se + 1e-6), (mean, N * WEIGHTS, se)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_zero_weights_never_chosen(scheme):
    d = _draws(scheme)
    assert d["counts"][:, 2].max() == 0
    assert d["trailing"][:, 3:].max() == 0
    assert np.all(d["one_hot"] == 7)
    u = d["uniform"]
    assert u.min() >= 0 and u.max() <= 9
    if scheme in ("systematic", "residual"):
        # Equal weights: every particle exactly once.
        assert sorted(u.tolist()) == list(range(10))


def test_systematic_and_stratified_beat_multinomial():
    # Total offspring variance sum_j Var(count_j). Multinomial: N sum_j w_j (1 - w_j) = 6.59 here;
    # systematic/stratified/residual keep each count within a narrow range around N w_j.
    total_var = {s: _draws(s)["counts"].var(axis=0, ddof=1).sum() for s in SCHEMES}
    multinomial_exact = N * np.sum(WEIGHTS * (1 - WEIGHTS))
    # The variance estimate from 20000 draws is within a few percent of the exact value.
    assert abs(total_var["multinomial"] / multinomial_exact - 1) < 0.05
    for s in ("systematic", "stratified", "residual"):
        assert total_var[s] < 0.5 * total_var["multinomial"], total_var
    # Systematic counts are floor or ceil of N w_j.
    c = _draws("systematic")["counts"]
    assert np.all(c >= np.floor(N * WEIGHTS)) and np.all(c <= np.ceil(N * WEIGHTS))


def test_ess():
    ess = jax.jit(resampling.ess)
    assert float(ess(jnp.zeros(50))) == pytest.approx(50.0, rel=1e-5)
    lw = jnp.full(4, -jnp.inf).at[1].set(0.3)
    assert float(ess(lw)) == pytest.approx(1.0, rel=1e-5)
    w = np.array([0.5, 0.25, 0.25, 0.0])
    with np.errstate(divide="ignore"):
        lw = jnp.asarray(np.log(w) + 2.0, jnp.float32)
    assert float(ess(lw)) == pytest.approx(1.0 / np.sum(w**2), rel=1e-5)
    assert float(ess(jnp.full(4, -jnp.inf))) == 0.0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_engine_form_draws_what_the_scheme_draws(scheme):
    # The SMC engine draws the uniforms once and switches among resampling.FROM_UNIFORMS; each
    # must give the ancestors the public scheme gives for the same key.
    w = jnp.asarray(WEIGHTS, jnp.float32)
    for seed in range(20):
        key = jax.random.PRNGKey(seed)
        u = resampling.uniforms(key, w, N)
        np.testing.assert_array_equal(
            resampling.FROM_UNIFORMS[scheme](u, w), resampling.RESAMPLERS[scheme](key, w, N)
        )
    assert set(resampling.FROM_UNIFORMS) == set(resampling.RESAMPLERS)
