"""Tests of langevin_nets.datasets: toy problem, random polynomials, UCI loader, Standardizer."""

from __future__ import annotations

from math import comb
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from langevin_nets.datasets import (
    UCI_ENV_VAR,
    Polynomial,
    Standardizer,
    find_uci_dir,
    load_uci,
    make_regression,
    random_polynomial,
    toy_problem,
    true_response,
)


# -- toy problem -------------------------------------------------------------------------------
def test_true_response_closed_form():
    assert float(true_response(0.0)) == pytest.approx(5 * np.sin(-2.0), rel=1e-12)
    assert float(true_response(1.0)) == pytest.approx(4 * np.sin(-1.0) + np.sin(6.0) - 4, rel=1e-12)
    assert float(true_response(2.0)) == pytest.approx(np.sin(14.0) - 16, rel=1e-12)
    # NumPy in, NumPy out; JAX in, JAX out (also under jit).
    assert isinstance(true_response(np.zeros(3)), np.ndarray)
    assert isinstance(jax.jit(true_response)(jnp.zeros(3)), jax.Array)


def test_toy_problem_matches_the_readme_construction():
    X, y, f = toy_problem(n=50, noise=0.5, seed=3)
    assert X.shape == (50, 1) and y.shape == (50, 1)
    assert f is true_response
    np.testing.assert_allclose(X[:, 0], np.linspace(0, 1, 50), atol=1e-7)
    # The README: TARGET = true_response(INPUTS) + random.normal(key, (N, 1)) * 0.5.
    key = jax.random.PRNGKey(3)
    readme = (
        true_response(jnp.linspace(0, 1, 50).reshape((50, 1)))
        + jax.random.normal(key, (50, 1)) * 0.5
    )
    np.testing.assert_allclose(y, readme, rtol=1e-6)
    X2, y2, _ = toy_problem(n=50, noise=0.5, key=key)
    np.testing.assert_array_equal(y2, y)
    # No noise: the curve itself.
    _, y0, _ = toy_problem(n=7, noise=0.0)
    np.testing.assert_allclose(
        y0, true_response(np.linspace(0, 1, 7))[:, None], rtol=1e-5, atol=1e-6
    )


def test_toy_problem_noise_level():
    X, y, f = toy_problem(n=20_000, noise=0.5, seed=0)
    r = (y - f(X.astype(float))).ravel()
    # 20000 iid N(0, 0.25) residuals: sample std standard error 0.5 / sqrt(2 n) = 0.0025;
    # mean standard error 0.5 / sqrt(n) = 0.0035. Allow 4 of each.
    assert np.std(r) == pytest.approx(0.5, abs=4 * 0.5 / np.sqrt(2 * r.size))
    assert abs(np.mean(r)) < 4 * 0.5 / np.sqrt(r.size)


def test_toy_problem_bad_arguments():
    with pytest.raises(ValueError, match="n"):
        toy_problem(n=0)
    with pytest.raises(ValueError, match="noise"):
        toy_problem(noise=-1)
    with pytest.raises(TypeError, match="seed"):
        toy_problem(seed=0.5)


# -- polynomials -------------------------------------------------------------------------------
def test_polynomial_evaluation_by_hand():
    p = Polynomial(np.array([[0], [2]]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(p(np.array([[2.0], [0.0], [-1.0]])), [[13.0], [1.0], [4.0]])
    q = Polynomial(np.array([[1, 2], [0, 0]]), np.array([2.0, -1.0]))
    assert q(np.array([[3.0, 2.0]]))[0, 0] == pytest.approx(2 * 3 * 4 - 1)
    assert q.degree == 3
    with pytest.raises(ValueError, match="columns"):
        q(np.ones((2, 3)))


def test_random_polynomial_terms_and_coefficients():
    f, coefs = random_polynomial(seed=1, num_features=3, degree=4)
    # Every monomial of total degree <= 4 in 3 variables: C(3 + 4, 4) = 35, each once.
    assert f.exponents.shape == (comb(7, 4), 3)
    assert len({tuple(e) for e in f.exponents}) == comb(7, 4)
    assert f.exponents.sum(axis=1).max() == 4 and f.exponents.min() >= 0
    np.testing.assert_array_equal(coefs, f.coefficients)

    g, c = random_polynomial(seed=2, num_features=2, degree=5, num_terms=4, coef_scale=0.1)
    assert g.exponents.shape == (4, 2) and c.shape == (4,)
    assert g.degree == 5  # a top-degree term is always included
    assert np.all(np.abs(c) < 0.1 * 5)  # |N(0, 0.01)| < 0.5: a 5-sigma event otherwise
    X = np.random.default_rng(0).normal(size=(6, 2))
    by_hand = sum(
        ck * X[:, 0] ** e[0] * X[:, 1] ** e[1] for ck, e in zip(c, g.exponents, strict=True)
    )
    np.testing.assert_allclose(g(X)[:, 0], by_hand, rtol=1e-12)
    # Reproducible from the seed, different across seeds.
    g2, c2 = random_polynomial(seed=2, num_features=2, degree=5, num_terms=4, coef_scale=0.1)
    np.testing.assert_array_equal(g2.exponents, g.exponents)
    np.testing.assert_array_equal(c2, c)
    assert not np.array_equal(random_polynomial(seed=3, num_features=2, degree=5)[1],
                              random_polynomial(seed=4, num_features=2, degree=5)[1])  # fmt: skip
    with pytest.raises(ValueError, match="num_terms"):
        random_polynomial(num_features=1, degree=2, num_terms=4)


def test_random_polynomial_coefficient_law():
    # Coefficients are N(0, coef_scale^2): a KS test on 2000 of them (all 2001 monomials
    # of degree <= 2000 in one variable) at a fixed seed.
    _, c = random_polynomial(seed=0, num_features=1, degree=2000, coef_scale=2.0)
    assert stats.kstest(c / 2.0, "norm").pvalue > 1e-3


def test_make_regression():
    X, y, f = make_regression(seed=5, n=4000, num_features=2, degree=3, noise=0.2,
                              input_range=(-2.0, 1.0))  # fmt: skip
    assert X.shape == (4000, 2) and y.shape == (4000, 1)
    assert X.min() >= -2.0 and X.max() <= 1.0
    r = (y - f(X)).ravel()
    # Residuals are the noise: std error of the sample std 0.2 / sqrt(2 n) = 0.0022.
    assert np.std(r) == pytest.approx(0.2, abs=4 * 0.2 / np.sqrt(2 * r.size))
    X2, y2, _ = make_regression(seed=5, n=4000, num_features=2, degree=3, noise=0.2,
                                input_range=(-2.0, 1.0))  # fmt: skip
    np.testing.assert_array_equal(y2, y)
    with pytest.raises(ValueError, match="input_range"):
        make_regression(input_range=(1.0, 0.0))


# -- Standardizer ------------------------------------------------------------------------------
def test_standardizer_round_trip_and_constant_column():
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(3.0, 2.0, 200), np.full(200, 7.25), rng.uniform(size=200)])
    st = Standardizer.fit(data)
    z = st.transform(data)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, [0, 2]].std(axis=0), 1.0, rtol=1e-12)
    # The constant column keeps scale 1 (no division by zero) and maps to 0.
    assert st.scale[1] == 1.0
    np.testing.assert_allclose(z[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(st.inverse_transform(z), data, rtol=1e-12)
    np.testing.assert_allclose(st.inverse_scale(np.ones((1, 3))), st.scale[None, :])
    with pytest.raises(ValueError, match="columns"):
        st.transform(np.ones((2, 2)))


def test_standardizer_log_jacobian():
    rng = np.random.default_rng(1)
    y = rng.normal(10.0, 3.0, size=(50, 1))
    st = Standardizer.fit(y)
    assert st.log_det_jacobian == pytest.approx(np.log(np.std(y)), rel=1e-12)
    # A N(0, 1) density on the standardised scale is the N(mean, scale^2) density in
    # the original units.
    y_new = np.array([[4.0], [10.0], [17.0]])
    z = st.transform(y_new)
    np.testing.assert_allclose(
        st.original_log_density(stats.norm.logpdf(z)),
        stats.norm.logpdf(y_new, st.mean, st.scale),
        rtol=1e-12,
    )


# -- UCI -------------------------------------------------------------------------------------
def _write_fake_uci(root: Path) -> None:
    d = root / "tiny"
    d.mkdir(parents=True)
    data = np.arange(30, dtype=float).reshape(6, 5)
    np.savetxt(d / "data.txt", data)
    (d / "data.txt").write_text((d / "data.txt").read_text() + "\n")  # trailing blank line
    (d / "index_features.txt").write_text("0\n2\n4\n")
    (d / "index_target.txt").write_text("1\n")
    (d / "index_train_0.txt").write_text("0\n2\n3\n5\n")
    (d / "index_test_0.txt").write_text("1\n4\n")
    (d / "index_train_1.txt").write_text("1\n2\n3\n4\n")
    (d / "index_test_1.txt").write_text("0\n5\n")
    (d / "n_splits.txt").write_text("2\n")
    (d / "n_hidden.txt").write_text("7\n")


def test_load_uci_layout(tmp_path, monkeypatch):
    _write_fake_uci(tmp_path)
    data = np.arange(30, dtype=float).reshape(6, 5)
    split = load_uci("tiny", split=1, data_dir=tmp_path)
    np.testing.assert_array_equal(split.X_train, data[[1, 2, 3, 4]][:, [0, 2, 4]])
    np.testing.assert_array_equal(split.y_train, data[[1, 2, 3, 4]][:, [1]])
    np.testing.assert_array_equal(split.X_test, data[[0, 5]][:, [0, 2, 4]])
    np.testing.assert_array_equal(split.y_test, data[[0, 5]][:, [1]])
    assert split.n_hidden == 7
    X_train, y_train, X_test, y_test, n_hidden = split  # unpacks as a tuple
    # The environment variable is the default location.
    monkeypatch.setenv(UCI_ENV_VAR, str(tmp_path))
    assert find_uci_dir() == tmp_path
    np.testing.assert_array_equal(load_uci("tiny").y_test, data[[1, 4]][:, [1]])
    with pytest.raises(ValueError, match="split"):
        load_uci("tiny", split=2)
    with pytest.raises(ValueError, match="available: tiny"):
        load_uci("boston")
    monkeypatch.setenv(UCI_ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=UCI_ENV_VAR):
        load_uci("tiny")
    with pytest.raises(ValueError, match=UCI_ENV_VAR):
        load_uci("tiny", data_dir=tmp_path / "missing")


def _uci_dir_or_skip(monkeypatch) -> Path:
    monkeypatch.delenv(UCI_ENV_VAR, raising=False)
    try:
        return find_uci_dir()
    except ValueError as err:
        pytest.skip(f"the UCI data folder (shared/data/uci beside the checkout) is missing: {err}")


def test_load_uci_boston_split_0(monkeypatch):
    root = _uci_dir_or_skip(monkeypatch)
    if not (root / "boston" / "data.txt").is_file():
        pytest.skip(f"no boston data set in {root}")
    X_train, y_train, X_test, y_test, n_hidden = load_uci("boston", split=0)
    assert X_train.shape == (455, 13) and y_train.shape == (455, 1)
    assert X_test.shape == (51, 13) and y_test.shape == (51, 1)
    assert n_hidden == 50
    train = np.loadtxt(root / "boston" / "index_train_0.txt", dtype=int)
    test = np.loadtxt(root / "boston" / "index_test_0.txt", dtype=int)
    # Disjoint, and together every row of the 506.
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(506))
    # Known facts of the Boston housing data: row 0 is (CRIM 0.00632, ZN 18, ..., LSTAT 4.98;
    # MEDV 24.0) and the mean house value over the 506 rows is 22.532806.
    y_all = np.concatenate([y_train, y_test])
    assert y_all.mean() == pytest.approx(22.532806, abs=1e-6)
    rows = {int(i): k for k, i in enumerate(train)}
    if 0 in rows:
        x0, y0 = X_train[rows[0]], y_train[rows[0], 0]
    else:
        k = int(np.flatnonzero(test == 0)[0])
        x0, y0 = X_test[k], y_test[k, 0]
    np.testing.assert_allclose(x0[[0, 1, 2, 12]], [0.00632, 18.0, 2.31, 4.98])
    assert y0 == 24.0
    # Standardising with the training split, as the protocol does.
    st = Standardizer.fit(X_train)
    np.testing.assert_allclose(st.transform(X_train).std(axis=0), 1.0, rtol=1e-10)


def test_load_uci_naval_constant_features(monkeypatch):
    root = _uci_dir_or_skip(monkeypatch)
    if not (root / "naval" / "data.txt").is_file():
        pytest.skip(f"no naval data set in {root}")
    X_train, *_ = load_uci("naval", split=0)
    st = Standardizer.fit(X_train)
    # Two of naval's 16 features are constant (README): they keep scale 1.
    assert X_train.shape[1] == 16
    assert int(np.sum(st.scale == 1.0)) == 2
    assert np.all(np.isfinite(st.transform(X_train)))
