"""Regression data: the sandbox's toy problem, random polynomials, and the UCI benchmarks.

The UCI loader reads the standard splits from a ``uci`` folder laid out as described
in ``shared/data/uci/README.md`` (one sub-folder per data set with ``data.txt``,
``index_features.txt``, ``index_target.txt``, ``index_train_K.txt``,
``index_test_K.txt``, ``n_splits.txt`` and ``n_hidden.txt``). Data are read in place,
never copied.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from langevin_nets.optimize import is_prng_key
from langevin_nets.validation import (
    as_float_matrix,
    nonnegative_float,
    nonnegative_int,
    positive_int,
)

Array = jax.Array

UCI_ENV_VAR = "LANGEVIN_NETS_UCI_DIR"
UCI_DATASETS = (
    "boston",
    "concrete",
    "energy",
    "kin8nm",
    "naval",
    "power",
    "protein",
    "wine",
    "yacht",
)

__all__ = [
    "UCI_DATASETS",
    "UCI_ENV_VAR",
    "Polynomial",
    "Standardizer",
    "UCISplit",
    "find_uci_dir",
    "load_uci",
    "make_regression",
    "random_polynomial",
    "toy_problem",
    "true_response",
]


def _key(key: Any, seed: Any) -> Array:
    """A PRNG key from ``key`` if given, else from the integer ``seed``."""
    if key is not None:
        if not is_prng_key(key):
            raise TypeError(f"key must be a JAX PRNG key, got {key!r}")
        return key
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    return jax.random.PRNGKey(int(seed))


def _rng(key: Any, seed: Any) -> np.random.Generator:
    """A NumPy generator seeded by the bits of ``key`` if given, else by ``seed``."""
    k = _key(key, seed)
    if jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key):
        k = jax.random.key_data(k)
    return np.random.default_rng(np.asarray(k, dtype=np.uint32).ravel().tolist())


# -- the sandbox's toy problem -------------------------------------------------------------------
def true_response(x: Any) -> Any:
    """``4 sin(x - 2) + sin(8x - 2) - 4x^2``, elementwise (NumPy in, NumPy out; JAX in, JAX out)."""
    xp = jnp if isinstance(x, jax.Array) else np
    x = xp.asarray(x)
    return 4 * xp.sin(x - 2) + xp.sin(8 * x - 2) - 4 * x**2


def toy_problem(
    n: int = 50, noise: float = 0.5, seed: int = 0, key: Array | None = None
) -> tuple[np.ndarray, np.ndarray, Callable[[Any], Any]]:
    """The sandbox README's 1-D regression problem.

    ``X`` is ``n`` evenly spaced points on [0, 1] and
    ``y = true_response(X) + noise * random.normal(key, (n, 1))``, with
    ``key = PRNGKey(seed)`` unless ``key`` is given, exactly as the README builds it.

    Returns
    -------
    X : array ``(n, 1)``
    y : array ``(n, 1)``
    true_fn : callable
        :func:`true_response`.
    """
    n = positive_int(n, "n")
    noise = nonnegative_float(noise, "noise")
    k = _key(key, seed)
    X = jnp.linspace(0.0, 1.0, n).reshape((n, 1))
    y = true_response(X) + jax.random.normal(k, (n, 1)) * noise
    return np.asarray(X), np.asarray(y), true_response


# -- random polynomials --------------------------------------------------------------------------
class Polynomial(NamedTuple):
    """``f(x) = sum_k c_k prod_j x_j^(e_kj)``, a polynomial in ``num_features`` variables.

    Calling it on ``X`` ``(n, num_features)`` returns ``(n, 1)``.

    Attributes
    ----------
    exponents : int array ``(num_terms, num_features)``
    coefficients : array ``(num_terms,)``
    """

    exponents: np.ndarray
    coefficients: np.ndarray

    def __call__(self, X: Any) -> np.ndarray:
        X = as_float_matrix(X, "X")
        d = self.exponents.shape[1]
        if X.shape[1] != d:
            raise ValueError(f"X has {X.shape[1]} columns but the polynomial takes {d}")
        monomials = np.prod(X[:, None, :] ** self.exponents[None, :, :], axis=-1)
        return (monomials @ self.coefficients)[:, None]

    @property
    def degree(self) -> int:
        """Highest total degree of a term."""
        return int(self.exponents.sum(axis=1).max())


def _monomial_exponents(num_features: int, degree: int) -> np.ndarray:
    """All exponent vectors of total degree <= ``degree``, ordered by degree."""
    out = []
    for total in range(degree + 1):
        # Compositions of ``total`` into ``num_features`` non-negative parts.
        for cuts in itertools.combinations_with_replacement(range(num_features), total):
            e = np.zeros(num_features, dtype=int)
            for j in cuts:
                e[j] += 1
            out.append(e)
    return np.array(out, dtype=int)


def random_polynomial(
    seed: int = 0,
    num_features: int = 1,
    degree: int = 3,
    num_terms: int | None = None,
    coef_scale: float = 1.0,
    key: Array | None = None,
) -> tuple[Polynomial, np.ndarray]:
    """A random polynomial with N(0, coef_scale^2) coefficients.

    The terms are ``num_terms`` distinct monomials of total degree <= ``degree`` drawn
    uniformly without replacement (all of them by default), always including one term of
    total degree ``degree`` so the polynomial has that degree.

    Parameters
    ----------
    seed : int
        Seed of the PRNG key (ignored when ``key`` is given).
    num_features : int
    degree : int
        Highest total degree.
    num_terms : int, optional
        Number of terms (default: every monomial of degree <= ``degree``).
    coef_scale : float
    key : PRNG key, optional

    Returns
    -------
    (Polynomial, array ``(num_terms,)``)
        The callable polynomial and its coefficients.
    """
    num_features = positive_int(num_features, "num_features")
    degree = nonnegative_int(degree, "degree")
    coef_scale = nonnegative_float(coef_scale, "coef_scale")
    all_exp = _monomial_exponents(num_features, degree)
    n_all = all_exp.shape[0]
    num_terms = n_all if num_terms is None else positive_int(num_terms, "num_terms")
    if num_terms > n_all:
        raise ValueError(
            f"num_terms ({num_terms}) exceeds the {n_all} monomials of degree <= {degree} "
            f"in {num_features} variable(s)"
        )
    rng = _rng(key, seed)
    top = np.flatnonzero(all_exp.sum(axis=1) == degree)
    first = int(rng.choice(top))
    others = np.delete(np.arange(n_all), first)
    rest = rng.permutation(others)[: num_terms - 1]
    chosen = np.sort(np.concatenate([[first], rest]).astype(int))
    coefs = coef_scale * rng.standard_normal(num_terms)
    poly = Polynomial(all_exp[chosen], coefs)
    return poly, poly.coefficients


def make_regression(
    seed: int = 0,
    n: int = 100,
    num_features: int = 1,
    degree: int = 3,
    num_terms: int | None = None,
    noise: float = 0.1,
    input_range: tuple[float, float] = (-1.0, 1.0),
    coef_scale: float = 1.0,
    key: Array | None = None,
) -> tuple[np.ndarray, np.ndarray, Polynomial]:
    """Synthetic regression data from a random polynomial.

    Inputs are uniform on ``input_range`` in every feature and
    ``y = f(X) + noise * N(0, 1)`` with ``f`` from :func:`random_polynomial`.

    Returns
    -------
    X : array ``(n, num_features)``
    y : array ``(n, 1)``
    f : Polynomial
        The noise-free response.
    """
    n = positive_int(n, "n")
    noise = nonnegative_float(noise, "noise")
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise TypeError(f"input_range must be a pair of numbers, got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"input_range must be finite with low < high, got {input_range!r}")
    rng = _rng(key, seed)
    f, _ = random_polynomial(
        seed=int(rng.integers(2**31)),
        num_features=num_features,
        degree=degree,
        num_terms=num_terms,
        coef_scale=coef_scale,
    )
    X = rng.uniform(lo, hi, size=(n, num_features))
    y = f(X) + noise * rng.standard_normal((n, 1))
    return X, y, f


# -- standardisation -----------------------------------------------------------------------------
class Standardizer:
    """Per-column affine scaling ``z = (x - mean) / scale`` fitted on training data.

    ``scale`` is the column's standard deviation (``ddof=0``, as in the UCI protocol); a
    constant column keeps scale 1 so that nothing is divided by zero.

    Parameters
    ----------
    mean, scale : arrays ``(d,)``
    """

    def __init__(self, mean: Any, scale: Any) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=float))
        self.scale = np.atleast_1d(np.asarray(scale, dtype=float))
        if self.mean.shape != self.scale.shape or self.mean.ndim != 1:
            raise ValueError(
                f"mean and scale must be 1-D of the same length, got shapes "
                f"{self.mean.shape} and {self.scale.shape}"
            )
        if not np.all(np.isfinite(self.scale)) or np.any(self.scale <= 0):
            raise ValueError("scale must be positive and finite")

    @classmethod
    def fit(cls, data: Any) -> Standardizer:
        """Column means and standard deviations of ``data`` ``(n, d)`` (1-D: one column)."""
        a = as_float_matrix(data, "data")
        mean = a.mean(axis=0)
        std = a.std(axis=0)
        # A column is constant when its spread is at rounding level relative to its size.
        tol = 1e-12 * np.maximum(1.0, np.abs(mean))
        scale = np.where(std > tol, std, 1.0)
        return cls(mean, scale)

    @property
    def dim(self) -> int:
        """Number of columns."""
        return int(self.mean.shape[0])

    def _check(self, x: Any, name: str) -> np.ndarray:
        a = as_float_matrix(x, name)
        if a.shape[1] != self.dim:
            raise ValueError(f"{name} has {a.shape[1]} columns but the standardizer has {self.dim}")
        return a

    def transform(self, x: Any) -> np.ndarray:
        """``(x - mean) / scale``."""
        return (self._check(x, "x") - self.mean) / self.scale

    def inverse_transform(self, z: Any) -> np.ndarray:
        """``z * scale + mean``."""
        return self._check(z, "z") * self.scale + self.mean

    def inverse_scale(self, s: Any) -> np.ndarray:
        """Map standard deviations (or any differences) back: ``s * scale``."""
        return self._check(s, "s") * self.scale

    @property
    def log_det_jacobian(self) -> float:
        """``log |det dx/dz| = sum(log scale)``, per row."""
        return float(np.sum(np.log(self.scale)))

    def original_log_density(self, log_density: Any) -> Any:
        """Convert a log density of standardised rows to the original units.

        ``log p_x(x) = log p_z(z) - sum(log scale)``; e.g. a test log-likelihood
        measured on the standardised target.
        """
        return np.asarray(log_density, dtype=float) - self.log_det_jacobian

    def __repr__(self) -> str:
        return f"Standardizer(mean={self.mean}, scale={self.scale})"


# -- UCI benchmarks ------------------------------------------------------------------------------
class UCISplit(NamedTuple):
    """One train/test split of a UCI data set, unstandardised.

    Unpacks as ``X_train, y_train, X_test, y_test, n_hidden``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_hidden: int


def _candidate_uci_dirs() -> list[Path]:
    rel = Path("shared") / "data" / "uci"
    cands: list[Path] = []
    # The working directory and its ancestors: <repo>/../shared or <repo>/shared.
    cwd = Path.cwd().resolve()
    cands += [p / rel for p in (cwd, *cwd.parents)]
    # Beside the checkout holding this file: src/langevin_nets/datasets.py -> <repo>.
    repo = Path(__file__).resolve().parents[2]
    cands += [repo / rel, repo.parent / rel]
    return list(dict.fromkeys(cands))  # unique, in order


def find_uci_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the UCI data sets.

    Order: ``data_dir``; the environment variable ``LANGEVIN_NETS_UCI_DIR``; a
    ``shared/data/uci`` folder in the working directory or one of its parents, or
    beside the repository checkout.

    Raises
    ------
    ValueError
        If no such folder exists (the message says how to point at one).
    """
    hint = (
        f"pass data_dir=... or set the environment variable {UCI_ENV_VAR} to the folder "
        "holding the UCI data sets (one sub-folder per data set, see shared/data/uci/README.md)"
    )
    if data_dir is not None:
        d = Path(data_dir)
        if not d.is_dir():
            raise ValueError(f"UCI data folder {str(d)!r} (data_dir) does not exist; {hint}")
        return d
    env = os.environ.get(UCI_ENV_VAR)
    if env:
        d = Path(env)
        if not d.is_dir():
            raise ValueError(f"UCI data folder {env!r} (from {UCI_ENV_VAR}) does not exist; {hint}")
        return d
    for c in _candidate_uci_dirs():
        if c.is_dir():
            return c
    raise ValueError(f"could not find the UCI data folder shared/data/uci; {hint}")


def _read_ints(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.int64, ndmin=1)


def load_uci(name: str, split: int = 0, data_dir: str | os.PathLike[str] | None = None) -> UCISplit:
    """Load split ``split`` of a UCI regression data set, unstandardised.

    Parameters
    ----------
    name : str
        One of ``boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht``
        (or any folder with the same layout).
    split : int
        Split number, ``0 <= split < n_splits`` (20 splits; protein 5).
    data_dir : path, optional
        Folder holding the data sets (see :func:`find_uci_dir` for the default).

    Returns
    -------
    UCISplit
        ``X_train (n_train, d), y_train (n_train, 1), X_test, y_test, n_hidden``.

    Raises
    ------
    ValueError
        Unknown data set, split out of range, or data folder not found.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a data set name, got {name!r}")
    split = nonnegative_int(split, "split")
    root = find_uci_dir(data_dir)
    folder = root / name
    if not (folder / "data.txt").is_file():
        available = sorted(p.name for p in root.iterdir() if (p / "data.txt").is_file())
        raise ValueError(
            f"unknown UCI data set {name!r} in {str(root)!r}; available: {', '.join(available)}"
        )
    n_splits = int(_read_ints(folder / "n_splits.txt")[0])
    if split >= n_splits:
        raise ValueError(f"split must be in [0, {n_splits}) for {name}, got {split}")
    data = np.loadtxt(folder / "data.txt", dtype=float, ndmin=2)
    features = _read_ints(folder / "index_features.txt")
    target = int(_read_ints(folder / "index_target.txt")[0])
    train = _read_ints(folder / f"index_train_{split}.txt")
    test = _read_ints(folder / f"index_test_{split}.txt")
    n_hidden = int(_read_ints(folder / "n_hidden.txt")[0])
    X = data[:, features]
    y = data[:, [target]]
    return UCISplit(X[train], y[train], X[test], y[test], n_hidden)
