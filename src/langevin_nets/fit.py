"""The fit pipeline behind ``langevin-nets fit``, usable from Python.

>>> result = fit(X, y, X_test, y_test, method="smc-adaptive")    # doctest: +SKIP
>>> result.test.rmse, result.log_evidence                         # doctest: +SKIP

Inputs and target are standardised with the training statistics (unless
``standardize=False``); the model is fit in standardised units and every metric,
prediction and the log evidence are reported in the original units.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from langevin_nets.datasets import Standardizer
from langevin_nets.io.config import (
    DEFAULTS,
    MODEL_KEYS,
    PARALLEL_KEYS,
    InputError,
    InputTypeError,
    validate,
)

SMC_SCHEDULES = {"smc-adaptive": "adaptive", "smc-data": "data", "smc-geometric": "geometric"}
DEFAULT_GEOMETRIC_STAGES = 50
# smc-data adds the data in about this many equal batches by default.
DEFAULT_DATA_STAGES = 50
# Langevin's automatic friction: momentum decorrelates over about 1 / FRICTION_TIMES_STEP steps.
FRICTION_TIMES_STEP = 0.05
MAP_LEARNING_RATE = 1e-2
# Langevin's step-size tuning (during burn-in) aims at this mean Metropolis acceptance.
TARGET_ACCEPTANCE = 0.85
MIN_ADAPTATION_STEPS = 100
CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


# -- standardisation ------------------------------------------------------------------------


def _scaler(a: np.ndarray, enabled: bool) -> Standardizer:
    """Training-set standardisation, or the identity map when ``enabled`` is false."""
    if enabled:
        return Standardizer.fit(a)
    return Standardizer(np.zeros(a.shape[1]), np.ones(a.shape[1]))


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    """Predictive metrics on one data set, in the target's original units."""

    n: int
    rmse: float
    log_likelihood: float
    coverage_90: float
    calibration: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "rmse": self.rmse,
            "log_likelihood": self.log_likelihood,
            "coverage_90": self.coverage_90,
            "calibration": self.calibration,
        }


@dataclass(frozen=True)
class PredictiveSummary:
    """Posterior predictive at some inputs, in the target's original units.

    ``lower``/``upper`` bound the central ``level`` interval of a new observation (noise
    included); ``function_lower``/``function_upper`` that of the network's output.
    """

    mean: np.ndarray
    std: np.ndarray
    std_without_noise: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    function_lower: np.ndarray
    function_upper: np.ndarray
    level: float


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    method : str
    config : dict
        The options as given, defaults filled in; ``None`` means chosen automatically.
    resolved : dict
        The automatic choices actually made (stages, batch size, step size, friction...).
    model : BayesianMLP
        The model, in standardised units.
    draws : ndarray ``(chains, draws, dim)``
        Equal-weight posterior draws (SMC: the particles resampled to equal weights,
        one chain).
    particles, log_weights : ndarray or None
        SMC only: the final weighted particles (used for predictions).
    x_scaler, y_scaler : Standardizer
    log_evidence : float or None
        SMC only: log p(y | X) in the target's original units.
    log_evidence_standardized : float or None
        The same for the standardised target.
    train, test : Metrics or None
    gradient_evaluations : int
    wall_seconds : float
    stages : list of dict or None
        SMC only: one entry per stage (lambda, data points, ESS, resampled, acceptance...).
    sampler : dict
        Sampler diagnostics (acceptance, divergences, step size...).
    raw : object
        The SMC result or Langevin trace.
    feature_names, target_name
    checkpoint : dict or None
        With checkpoints: their path, interval and the stage (SMC) or sample (Langevin)
        the run resumed from (None for a fresh start).
    num_devices : int
        Devices the sampler ran on (SMC: the particles were split over them).
    process_count : int
        Processes of the run (more than one after :func:`langevin_nets.distributed.initialize`).
    """

    method: str
    config: dict[str, Any]
    resolved: dict[str, Any]
    model: Any
    draws: np.ndarray
    particles: np.ndarray | None
    log_weights: np.ndarray | None
    x_scaler: Standardizer
    y_scaler: Standardizer
    log_evidence: float | None
    log_evidence_standardized: float | None
    train: Metrics | None
    test: Metrics | None
    gradient_evaluations: int
    wall_seconds: float
    stages: list[dict[str, Any]] | None
    sampler: dict[str, Any]
    raw: Any
    feature_names: tuple[str, ...]
    target_name: str
    timings: dict[str, float] = field(default_factory=dict)
    ancestors: np.ndarray | None = None
    checkpoint: dict[str, Any] | None = None
    num_devices: int = 1
    process_count: int = 1

    @property
    def num_draws(self) -> int:
        return int(self.draws.shape[0] * self.draws.shape[1])

    def _samples(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.particles is not None:
            return self.particles, self.log_weights
        return self.draws.reshape(-1, self.draws.shape[-1]), None

    def prediction(self, X_new: Any) -> Any:
        """The core :class:`~langevin_nets.predict.Prediction` at ``X_new`` (standardised units)."""
        from langevin_nets.predict import predict

        X = _matrix(X_new, "X_new", self.x_scaler.mean.shape[0])
        positions, lw = self._samples()
        return predict(self.model, positions, self.x_scaler.transform(X), log_weights=lw)

    def predict(self, X_new: Any, level: float = 0.9) -> PredictiveSummary:
        """Predictive mean, std and central ``level`` interval at ``X_new``, original units."""
        return _summarise(self.prediction(X_new), self.y_scaler, level)

    def evaluate(self, X: Any, y: Any) -> Metrics:
        """RMSE, log predictive density, coverage and calibration on ``(X, y)``."""
        yy = np.asarray(y, dtype=float).reshape(-1)
        return _metrics(self.prediction(X), yy, self.y_scaler)


def _summarise(pred: Any, y_scaler: Standardizer, level: float) -> PredictiveSummary:
    s, m = float(y_scaler.scale[0]), float(y_scaler.mean[0])
    lo, hi = pred.interval(level, noise=True)
    flo, fhi = pred.interval(level, noise=False)
    return PredictiveSummary(
        mean=np.asarray(pred.mean) * s + m,
        std=np.asarray(pred.std) * s,
        std_without_noise=np.asarray(pred.std_without_noise) * s,
        lower=np.asarray(lo) * s + m,
        upper=np.asarray(hi) * s + m,
        function_lower=np.asarray(flo) * s + m,
        function_upper=np.asarray(fhi) * s + m,
        level=level,
    )


def _pit(pred: Any, y_std: np.ndarray) -> np.ndarray:
    """Predictive CDF at each target (the probability integral transform)."""
    from scipy.special import ndtr

    mu = np.asarray(pred.samples)[..., 0]  # (S, n)
    sigma = np.asarray(pred.noise)[..., 0]  # (S, n)
    w = np.asarray(pred.weights)[:, None]
    return np.sum(w * ndtr((y_std[None, :] - mu) / sigma), axis=0)


def _metrics(pred: Any, y: np.ndarray, y_scaler: Standardizer) -> Metrics:
    s, m = float(y_scaler.scale[0]), float(y_scaler.mean[0])
    y_std = (y - m) / s
    mean = np.asarray(pred.mean) * s + m
    rmse = float(np.sqrt(np.mean((y - mean) ** 2)))
    # Density of the original-unit target: divide by the scale (Jacobian).
    ll = float(pred.log_predictive_density(y_std[:, None])) - math.log(s)
    lo, hi = pred.interval(0.9, noise=True)
    lo, hi = np.asarray(lo), np.asarray(hi)
    cov90 = float(np.mean((y_std >= lo) & (y_std <= hi)))
    # y lies in the central interval of level L iff its PIT lies in [(1-L)/2, (1+L)/2].
    pit = _pit(pred, y_std)
    calib = {f"{lvl:g}": float(np.mean(np.abs(pit - 0.5) <= lvl / 2)) for lvl in CALIBRATION_LEVELS}
    return Metrics(int(y.shape[0]), rmse, ll, cov90, calib)


# -- input checks ---------------------------------------------------------------------------


def _matrix(a: Any, name: str, columns: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(a).__name__}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name} must be 1-D or 2-D (rows, features), got shape {arr.shape}")
    if columns is not None and arr.shape[1] != columns:
        raise InputError(f"{name} has {arr.shape[1]} column(s) but the model takes {columns}")
    if not np.all(np.isfinite(arr)):
        r, c = np.argwhere(~np.isfinite(arr))[0]
        what = "a NaN" if np.isnan(arr[r, c]) else "an infinite"
        raise InputError(
            f"{name} has {what} value at row {r + 1}, column {c + 1}; "
            "remove or replace NaN and infinite values"
        )
    return arr


def _vector(a: Any, name: str, rows: int, rows_of: str) -> np.ndarray:
    arr = _matrix(a, name)
    if arr.shape[1] != 1:
        raise InputError(f"{name} must be a single target column, got shape {arr.shape}")
    if arr.shape[0] != rows:
        raise InputError(f"{name} has {arr.shape[0]} rows but {rows_of} has {rows}")
    return arr[:, 0]


def check_data(
    X: Any, y: Any, X_test: Any = None, y_test: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate training and test arrays (finite, matching shapes, at least 2 rows)."""
    X = _matrix(X, "X")
    if X.shape[0] < 2:
        raise InputError(f"X has {X.shape[0]} row(s); at least 2 training rows are needed")
    y = _vector(y, "y", X.shape[0], "X")
    if X_test is None:
        if y_test is not None:
            raise InputError("y_test was given without X_test")
        return X, y, None, None
    X_test = _matrix(X_test, "X_test", X.shape[1])
    if y_test is not None:
        y_test = _vector(y_test, "y_test", X_test.shape[0], "X_test")
    return X, y, X_test, y_test


def _magnitude_limit() -> tuple[np.dtype, float]:
    """JAX's float type and the largest magnitude whose square it holds."""
    import jax.numpy as jnp

    dtype = np.dtype(jnp.result_type(float))
    return dtype, math.sqrt(float(np.finfo(dtype).max))


def check_magnitudes(
    X: np.ndarray, y: np.ndarray, X_test: np.ndarray | None, y_test: np.ndarray | None,
    standardize: bool,
) -> None:  # fmt: skip
    """Refuse finite data the computation cannot hold: a spread whose standardisation
    overflows, or values (in model units) whose squares overflow the float type of JAX.

    Such data would otherwise fail inside the sampler or give non-finite metrics.
    """
    dtype, limit = _magnitude_limit()

    def col(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:, None]

    parts = (("X", X, X), ("y", col(y), col(y)), ("X_test", X_test, X),
             ("y_test", col(y_test), col(y)))  # fmt: skip
    for name, a, train in parts:
        if a is None:
            continue
        with np.errstate(all="ignore"):
            try:
                z = _scaler(train, standardize).transform(a)
            except ValueError:  # the training spread overflowed
                z = np.full(a.shape, np.inf)
        if not np.all(np.abs(z) < limit):
            units = " after standardisation" if standardize else ""
            raise InputError(
                f"{name} has values too large for the computation in {dtype} (largest "
                f"magnitude {float(np.max(np.abs(a))):.3g}{units}); rescale the data, e.g. "
                "change its units" + ("" if standardize else ", or standardise it")
            )


def _check_noise_floor(floor: float | str, y: np.ndarray, standardize: bool) -> None:
    """Refuse a noise floor whose square overflows JAX's float type in model units."""
    if floor == "auto" or floor == 0.0:
        return
    dtype, limit = _magnitude_limit()
    with np.errstate(all="ignore"):
        q = floor / float(_scaler(y[:, None], standardize).scale[0])
    if not q < limit:
        raise InputError(
            f"noise_floor {floor:g} is too large for the computation in {dtype}"
            + (" after standardisation" if standardize else "")
            + "; give a floor on the scale of the target's noise"
        )


#: A target with at most this many distinct values counts as discrete.
DISCRETE_TARGET_VALUES = 20


class DiscreteTargetWarning(UserWarning):
    """A heteroscedastic model is fitted to a target that takes few distinct values."""


def discrete_target_message(
    y: np.ndarray, heteroscedastic: bool, noise_floor: float | str = 0.0
) -> str | None:
    """The warning for a heteroscedastic fit of a discrete target without a noise floor,
    or ``None``.

    A Gaussian whose noise level depends on the input can shrink it towards zero where the
    training targets share one value; its likelihood, and its log evidence, then grow
    without telling anything about new data, whose targets there may differ. A
    ``noise_floor`` (``"auto"``: :func:`rounding_noise`) stops that.
    """
    if not heteroscedastic or noise_floor:  # a floor ("auto" or > 0) stops the collapse
        return None
    n_values = np.unique(y).size
    if n_values > DISCRETE_TARGET_VALUES:
        return None
    return (
        f"the target takes only {n_values} distinct values: a heteroscedastic Gaussian can "
        "shrink its noise towards zero where the training targets agree, and then overstate "
        "its confidence on new data (its log evidence may favour it all the same); give a "
        "noise floor (noise_floor='auto', --noise-floor auto) or use the homoscedastic model"
    )


def rounding_noise(y: Any) -> float:
    """The standard deviation that rounding to the target's grid adds: ``h / sqrt(12)``.

    ``h`` is the smallest gap between the distinct values of ``y`` when there are at most
    :data:`DISCRETE_TARGET_VALUES` of them (a target recorded on a grid, such as a grade),
    and the answer is 0 for a target with more values. Rounding a continuous quantity to
    a grid of spacing ``h`` adds about ``h**2 / 12`` to its variance (Sheppard's
    correction), so no noise level below this is supported by such data.
    """
    values = np.unique(np.asarray(y, dtype=float))
    if values.size < 2 or values.size > DISCRETE_TARGET_VALUES:
        return 0.0
    return float(np.min(np.diff(values)) / math.sqrt(12.0))


class SMCUnavailableError(RuntimeError):
    """An SMC method was asked for but :mod:`langevin_nets.smc` cannot be imported."""


def import_smc() -> Any:
    """The SMC engine, or a clear error if it is not available."""
    try:
        from langevin_nets.smc import smc
    except ImportError as e:
        raise SMCUnavailableError(
            f"the SMC methods need langevin_nets.smc, which could not be imported ({e}); "
            "use --method langevin"
        ) from None
    return smc


# -- the pipeline ---------------------------------------------------------------------------


def fit(
    X: Any,
    y: Any,
    X_test: Any = None,
    y_test: Any = None,
    *,
    method: str = "smc-adaptive",
    hidden: Sequence[int] | str = (50,),
    activation: str = "tanh",
    prior: str = "fan_in",
    prior_scale: float = 1.0,
    noise_shape: float = 1.0,
    noise_std: float | None = None,
    heteroscedastic: bool = False,
    noise_floor: float | str = 0.0,
    standardize: bool = True,
    particles: int = 128,
    stages: int | None = None,
    batch_size: int | None = None,
    steps: int | None = 5,
    integration_steps: int = 20,
    target_ess: float = 0.5,
    ess_threshold: float = 0.5,
    resampling: str = "systematic",
    waste_free: int | None = None,
    samples: int = 500,
    burnin: int = 1000,
    thin: int = 4,
    chains: int = 4,
    map_steps: int = 2000,
    on_divergence: str = "raise",
    max_restarts: int = 10,
    step_size: float | None = None,
    friction: float | None = None,
    mass: float = 1.0,
    metropolis: bool = True,
    devices: Any = None,
    particle_chunk: int | None = None,
    data_chunk: int | None = None,
    seed: int = 0,
    progress: bool = False,
    feature_names: Sequence[str] | None = None,
    target_name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> FitResult:
    """Fit a Bayesian MLP to ``(X, y)`` and evaluate it on the training and test data.

    Parameters
    ----------
    X : array ``(n, d)`` (or ``(n,)`` for one feature)
    y : array ``(n,)``
    X_test, y_test : arrays, optional
        Test inputs, and targets if known (then test metrics are computed).
    method : {"smc-adaptive", "smc-data", "smc-geometric", "langevin"}
        ``smc-adaptive``: likelihood tempering with the next temperature chosen for a
        relative ESS of ``target_ess``; ``smc-geometric``: ``stages`` geometric
        temperatures (default 50); ``smc-data``: data annealing, ``batch_size`` points
        per stage (default: about 50 stages); ``langevin``: ``chains`` BAOAB chains,
        each started from its own MAP estimate (``map_steps`` Adam steps).
    hidden : sequence of int or str
        Hidden layer widths; ``()`` or ``""`` for Bayesian linear regression.
    activation, prior, prior_scale, noise_shape
        The model (see :class:`~langevin_nets.model.BayesianMLP`); ``noise_shape`` is
        ignored when ``noise_std`` is given.
    noise_std : float, optional
        Fixed noise standard deviation in the target's original units.
    heteroscedastic : bool
        Let the noise level depend on the input (see
        :class:`~langevin_nets.model.BayesianMLP`); needs a learned noise level.
    noise_floor : float or "auto"
        A noise standard deviation, in the target's original units, added in quadrature
        to the model's (see :class:`~langevin_nets.model.BayesianMLP`). ``"auto"``: the
        rounding noise of a target on a grid (:func:`rounding_noise`), 0 for any other
        target; the value used is in ``FitResult.resolved["noise_floor"]``.
    standardize : bool
        Standardise inputs and target with the training statistics.
    particles, steps, ess_threshold, resampling
        SMC: particles, MCMC moves per stage (each an HMC-like trajectory of the
        engine's default length; ``None``: the engine's default number), resampling
        threshold on the relative ESS, resampling scheme. The defaults (128 particles,
        5 moves) fit a 455-row UCI set in about 80 CPU-seconds.
    waste_free : int, optional
        SMC: waste-free SMC with chains of ``waste_free`` states (see
        :func:`langevin_nets.smc.smc`); ``steps`` and ``ess_threshold`` are then not used,
        and ``particles`` must be a multiple of it.
    integration_steps : int
        SMC: BAOAB (leapfrog) steps per move, the trajectory length in steps (the step
        size is adapted per stage). Longer trajectories mix the weakly identified weights
        better at a proportional cost.
    samples, burnin, thin, chains, map_steps
        Langevin: samples kept per chain, burn-in steps, steps between kept samples,
        chains, Adam steps of each chain's MAP search.
    on_divergence, max_restarts
        Langevin: what a non-finite step does (``"raise"`` or ``"restart"`` with half the
        step size, at most ``max_restarts`` times per chain); see
        :func:`langevin_nets.langevin.langevin`.
    step_size, friction, mass, metropolis
        BAOAB settings. ``step_size=None``: SMC adapts it per stage; Langevin tunes it
        during burn-in (at least 100 steps) by dual averaging towards a Metropolis
        acceptance of 0.85, then keeps it fixed. ``friction=None``: the engine's choice
        (SMC) or ``0.05 / step_size`` (Langevin).
    devices : int, "all", sequence of devices or Mesh, optional
        SMC: the devices to split the particles over (see :func:`langevin_nets.smc.smc`);
        ``None``: the engine's default (all devices when ``particles`` divides evenly
        among them). In a multi-process run (:mod:`langevin_nets.distributed`) the
        devices of all processes count. Langevin runs on one device.
    particle_chunk : int, optional
        SMC: move at most this many particles at a time on each device (less memory).
    data_chunk : int, optional
        Evaluate the likelihood on at most this many data rows at a time (less memory
        for gradients on large data; see :meth:`~langevin_nets.model.Posterior.with_data_chunk`).
    seed : int
    progress : bool
        Progress bars on stderr.
    feature_names, target_name : optional
        Names used in the outputs.
    checkpoint, checkpoint_every, resume : optional
        Save the sampler's state at the path ``checkpoint`` (``.npz`` + ``.json``) every
        ``checkpoint_every`` SMC stages or Langevin samples per chain, and with ``resume``
        continue from it: the result is bit for bit that of an uninterrupted run. See
        :func:`langevin_nets.smc.smc` and :func:`langevin_nets.langevin.langevin`.
        (Langevin's MAP search and step-size tuning run again on resume; they are
        deterministic given the seed.)

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError, TypeError
        For bad options or data, before anything is compiled.
    SMCUnavailableError (a RuntimeError)
        If an SMC method is asked for and the SMC engine is not available.
    DivergenceError
        If an unadjusted Langevin chain diverged.

    Warns
    -----
    DiscreteTargetWarning
        If ``heteroscedastic``, without a ``noise_floor``, and the target takes 20 distinct
        values or fewer: the noise can collapse where the training targets agree (see
        :func:`discrete_target_message`).
    """
    given = dict(
        method=method, hidden=hidden, activation=activation, prior=prior,
        prior_scale=prior_scale, noise_shape=noise_shape,
        noise_std=noise_std, heteroscedastic=heteroscedastic, noise_floor=noise_floor,
        standardize=standardize,
        particles=particles, stages=stages,
        batch_size=batch_size, steps=steps, integration_steps=integration_steps,
        target_ess=target_ess, ess_threshold=ess_threshold, resampling=resampling,
        waste_free=waste_free, samples=samples, burnin=burnin, thin=thin, chains=chains,
        map_steps=map_steps, on_divergence=on_divergence, max_restarts=max_restarts,
        step_size=step_size, friction=friction, mass=mass,
        metropolis=metropolis, seed=seed, particle_chunk=particle_chunk, data_chunk=data_chunk,
    )  # fmt: skip
    cfg, device_objects = checked_config(given, devices)
    X, y, X_test, y_test = check_data(X, y, X_test, y_test)
    check_magnitudes(X, y, X_test, y_test, cfg["standardize"])
    _check_noise_floor(cfg["noise_floor"], y, cfg["standardize"])
    discrete = discrete_target_message(y, cfg["heteroscedastic"], cfg["noise_floor"])
    if discrete is not None:
        warnings.warn(discrete, DiscreteTargetWarning, stacklevel=2)
    d = X.shape[1]
    if feature_names is None:
        feature_names = tuple(f"x{j}" for j in range(d))
    else:
        feature_names = tuple(str(f) for f in feature_names)
        if len(feature_names) != d:
            raise InputError(f"feature_names has {len(feature_names)} names for {d} columns")
    target_name = "y" if target_name is None else str(target_name)
    smc_fn = import_smc() if cfg["method"] in SMC_SCHEDULES else None
    ckpt = _checkpoint_options(checkpoint, checkpoint_every, resume)
    if not device_objects:
        cfg["devices"] = resolve_devices(cfg["devices"], cfg["method"], cfg["particles"])
    return _run(cfg, X, y, X_test, y_test, feature_names, target_name, smc_fn, bool(progress),
                ckpt)  # fmt: skip


#: The options of :func:`fit` that :func:`checked_config` checks (the rest are data, names,
#: progress and checkpoints).
CONFIG_KEYS = (*MODEL_KEYS, *PARALLEL_KEYS, "seed")


def checked_config(given: dict[str, Any], devices: Any) -> tuple[dict[str, Any], bool]:
    """:func:`fit`'s options (``given``: :data:`CONFIG_KEYS` but ``devices``) checked and
    completed with defaults, and whether ``devices`` holds device objects.

    A device list or Mesh goes to the engine as it is (the engine checks it).
    """
    from jax.sharding import Mesh

    given = dict(given)
    if given.get("noise_std") is not None:
        given["noise_shape"] = None  # not used with a fixed noise level
    device_objects = isinstance(devices, list | tuple | Mesh)
    if not device_objects:
        given["devices"] = devices
    cfg = validate(given, keys=CONFIG_KEYS, style="api")
    if device_objects:
        if cfg["method"] not in SMC_SCHEDULES:
            raise InputError("devices: only the SMC methods run on several devices")
        cfg["devices"] = devices
    return cfg, device_objects


def resolve_devices(
    devices: int | str | None, method: str, particles: int, style: str = "api"
) -> int | None:
    """The number of devices of ``devices`` (``"all"``: every device), checked against
    the devices there are and the particles; ``None`` stays ``None`` (the engine's choice).

    In a multi-process run call it after :func:`langevin_nets.distributed.initialize`:
    it asks JAX for the devices. ``style`` names options as in ``validate``.
    """
    if devices is None:
        return None
    import jax

    def label(k: str) -> str:
        return "--" + k.replace("_", "-") if style == "cli" else k

    available = jax.device_count()
    n = available if devices == "all" else devices
    given = f"{label('devices')} {devices}" + (f" ({n} devices)" if devices == "all" else "")
    if method not in SMC_SCHEDULES:
        if n > 1:
            raise InputError(
                f"{given}: only the SMC methods run on several devices; {label('method')} "
                f"{method} runs on one"
            )
        return 1
    if n > available:
        raise InputError(
            f"{label('devices')} {n}: only {available} device(s) available "
            f"({jax.devices()[0].platform}, {jax.process_count()} process(es))"
        )
    if particles % n:
        raise InputError(
            f"{label('particles')} {particles} cannot be split evenly over {given}; "
            f"choose a number of particles divisible by {n}"
        )
    return int(n)


def _checkpoint_options(path: Any, every: Any, resume: Any) -> dict[str, Any]:
    """Checked checkpoint keyword arguments of the samplers (empty without a path)."""
    from langevin_nets import checkpoint as ckpt_io
    from langevin_nets.validation import positive_int

    if path is None:
        if every is not None or resume:
            raise InputError("checkpoint_every and resume need a checkpoint path")
        return {}
    ckpt_io.paths(path)
    if every is not None:
        every = positive_int(every, "checkpoint_every")
    if not isinstance(resume, bool):
        raise InputTypeError(f"resume must be True or False, got {resume!r}")
    return {"checkpoint": path, "checkpoint_every": every, "resume": resume}


def _checkpoint_info(ckpt: dict[str, Any], position: str) -> dict[str, Any] | None:
    """What to report of a run's checkpoints (read before the sampler resumes)."""
    if not ckpt:
        return None
    from langevin_nets import checkpoint as ckpt_io

    meta = ckpt_io.info(ckpt["checkpoint"]) if ckpt["resume"] else None
    return {
        "path": str(ckpt_io.paths(ckpt["checkpoint"])[0]),
        "every": ckpt["checkpoint_every"],
        f"resumed_from_{position}": None if meta is None else meta.get(position),
    }


def _run(
    cfg: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    feature_names: tuple[str, ...],
    target_name: str,
    smc_fn: Any,
    progress: bool,
    ckpt: dict[str, Any] | None = None,
) -> FitResult:
    import jax

    from langevin_nets.model import BayesianMLP

    t0 = time.perf_counter()
    x_scaler = _scaler(X, cfg["standardize"])
    y_scaler = _scaler(y[:, None], cfg["standardize"])
    s_y = float(y_scaler.scale[0])
    noise_std = None if cfg["noise_std"] is None else cfg["noise_std"] / s_y
    floor = rounding_noise(y) if cfg["noise_floor"] == "auto" else cfg["noise_floor"]
    model = BayesianMLP(
        (X.shape[1], *cfg["hidden"], 1),
        activation=cfg["activation"],
        prior=cfg["prior"],
        prior_scale=cfg["prior_scale"],
        noise_shape=cfg["noise_shape"],
        noise_std=noise_std,
        heteroscedastic=cfg["heteroscedastic"],
        noise_floor=floor / s_y,
    )
    posterior = model.posterior(x_scaler.transform(X), y_scaler.transform(y[:, None]),
                                data_chunk=cfg["data_chunk"])  # fmt: skip
    key = jax.random.PRNGKey(cfg["seed"])
    n = X.shape[0]

    ckpt = ckpt or {}
    if smc_fn is not None:
        out = _run_smc(cfg, posterior, key, smc_fn, progress, n, ckpt)
    else:
        out = _run_langevin(cfg, posterior, key, progress, ckpt)
    out["resolved"]["noise_floor"] = floor
    t_sample = time.perf_counter() - t0

    log_z_std = out.pop("log_evidence_standardized")
    # p(y) = p(z) / s_y^n for z = (y - m) / s_y, one output column.
    log_z = None if log_z_std is None else log_z_std - n * math.log(s_y)

    partial = FitResult(
        method=cfg["method"], config=cfg, resolved=out["resolved"], model=model,
        draws=out["draws"], particles=out.get("particles"), log_weights=out.get("log_weights"),
        x_scaler=x_scaler, y_scaler=y_scaler, log_evidence=log_z,
        log_evidence_standardized=log_z_std, train=None, test=None,
        gradient_evaluations=int(out["gradient_evaluations"]), wall_seconds=0.0,
        stages=out.get("stages"), sampler=out["sampler"], raw=out["raw"],
        feature_names=feature_names, target_name=target_name, ancestors=out.get("ancestors"),
        checkpoint=out.get("checkpoint"), num_devices=int(out.get("num_devices", 1)),
        process_count=int(jax.process_count()),
    )  # fmt: skip
    partial.train = partial.evaluate(X, y)
    if X_test is not None and y_test is not None:
        partial.test = partial.evaluate(X_test, y_test)
    partial.wall_seconds = time.perf_counter() - t0
    partial.timings = {"sampling_seconds": t_sample, "total_seconds": partial.wall_seconds}
    return partial


def _status(progress: bool, msg: str) -> None:
    if progress:
        print(f"langevin-nets: {msg}", file=sys.stderr, flush=True)


def _history_to_stages(history: Any) -> list[dict[str, Any]]:
    if history is None:
        return []
    fields = history._fields if hasattr(history, "_fields") else tuple(history)
    arrays = {f: np.asarray(getattr(history, f)) for f in fields}
    lengths = {a.shape[0] for a in arrays.values() if a.ndim >= 1}
    num = max(lengths) if lengths else 0
    stages = []
    for i in range(num):
        row: dict[str, Any] = {"stage": i + 1}
        for f, a in arrays.items():
            if a.ndim >= 1 and a.shape[0] == num:
                row[f] = a[i].tolist()
        stages.append(row)
    return stages


def _equal_weight_draws(
    particles: np.ndarray, log_weights: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Systematic resampling to equal weights (identity when the weights are already equal)."""
    lw = np.asarray(log_weights, dtype=float)
    n = lw.shape[0]
    if np.ptp(lw) < 1e-12:
        return particles, np.arange(n)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    u = (np.random.default_rng(seed).uniform() + np.arange(n)) / n
    # Rounding can leave the cumulative sum a hair below 1: never step past the last
    # particle of positive weight.
    last = n - 1 - int(np.argmax(w[::-1] > 0))
    idx = np.minimum(np.searchsorted(np.cumsum(w), u, side="right"), last)
    return particles[idx], idx


def _run_smc(
    cfg: dict[str, Any], posterior: Any, key: Any, smc_fn: Any, progress: bool, n: int,
    ckpt: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    method = cfg["method"]
    schedule = SMC_SCHEDULES[method]
    resolved: dict[str, Any] = {"schedule": schedule}
    kwargs: dict[str, Any] = dict(
        num_particles=cfg["particles"], schedule=schedule, target_ess=cfg["target_ess"],
        ess_threshold=cfg["ess_threshold"], resampling=cfg["resampling"],
        metropolis=cfg["metropolis"], step_size=cfg["step_size"], friction=cfg["friction"],
        mass=cfg["mass"], progress_bar=progress,
    )  # fmt: skip
    # Unset options keep the engine's defaults (the data chunk is the posterior's).
    for name in ("devices", "particle_chunk"):
        if cfg.get(name) is not None:
            kwargs[name] = cfg[name]
    if cfg.get("waste_free") is not None:
        # Its chains make waste_free - 1 moves and it resamples every stage.
        kwargs["waste_free"] = cfg["waste_free"]
        del kwargs["ess_threshold"]
    elif cfg["steps"] is not None:
        kwargs["num_mcmc_steps"] = cfg["steps"]
    kwargs["num_integration_steps"] = cfg["integration_steps"]
    if schedule == "geometric":
        stages = cfg["stages"] or DEFAULT_GEOMETRIC_STAGES
        kwargs["num_stages"] = stages
        resolved["stages"] = stages
    if schedule == "data":
        batch = cfg["batch_size"] or max(1, math.ceil(n / DEFAULT_DATA_STAGES))
        kwargs["batch_size"] = min(batch, n)
        resolved["batch_size"] = kwargs["batch_size"]
    ckpt = ckpt or {}
    kwargs.update(ckpt)
    checkpoint_info = _checkpoint_info(ckpt, "stage")
    if checkpoint_info and checkpoint_info["resumed_from_stage"] is not None:
        _status(progress, f"resuming from the checkpoint at stage "
                f"{checkpoint_info['resumed_from_stage']}")  # fmt: skip
    _status(progress, f"{method}: {cfg['particles']} particles")
    res = smc_fn(posterior, key, **kwargs)
    particles = np.asarray(res.particles)
    log_weights = np.asarray(res.log_weights, dtype=float)
    draws, ancestors = _equal_weight_draws(particles, log_weights, cfg["seed"])
    stages = _history_to_stages(getattr(res, "history", None))
    resolved["num_stages"] = len(stages)
    w = np.exp(log_weights - log_weights.max())
    w /= w.sum()
    sampler = {
        "num_particles": int(particles.shape[0]),
        "final_ess": float(1.0 / np.sum(w**2)),
        "num_stages": len(stages),
        "hit_max_stages": bool(getattr(res, "hit_max_stages", False)),
        "num_devices": int(getattr(res, "num_devices", 1)),
    }
    for name in ("acceptance_rate", "num_divergent", "step_size"):
        vals = [s[name] for s in stages if name in s]
        if vals:
            arr = np.asarray(vals, dtype=float)
            if name == "num_divergent":
                sampler["num_divergent_total"] = float(np.nansum(arr))
            elif name == "acceptance_rate":
                sampler["mean_acceptance_rate"] = float(np.nanmean(arr))
            else:
                sampler["final_step_size"] = float(np.ravel(arr)[-1])
    return {
        "draws": draws[None],
        "particles": particles,
        "log_weights": log_weights,
        "ancestors": ancestors,
        "log_evidence_standardized": float(res.log_evidence),
        "gradient_evaluations": int(getattr(res, "num_gradient_evaluations", 0)),
        "stages": stages,
        "sampler": sampler,
        "resolved": resolved,
        "raw": res,
        "checkpoint": checkpoint_info,
        "num_devices": sampler["num_devices"],
    }


def _friction(cfg: dict[str, Any], h: float) -> float:
    return cfg["friction"] if cfg["friction"] is not None else FRICTION_TIMES_STEP / h


def _adapt_step_size(
    cfg: dict[str, Any], posterior: Any, key: Any, x0: np.ndarray, n: int, progress: bool
) -> tuple[float, np.ndarray, list[float]]:
    """Burn-in that tunes one BAOAB step size for all chains by dual averaging.

    Metropolis-adjusted BAOAB steps (Hoffman & Gelman's dual averaging of log h towards a
    mean acceptance of ``TARGET_ACCEPTANCE``), one compiled scan with the step size traced.
    Returns the tuned step size, the chains' final positions and the mean acceptance of
    each tenth of the run.
    """
    import jax.numpy as jnp

    num_steps = max(cfg["burnin"], MIN_ADAPTATION_STEPS)
    auto_friction = cfg["friction"] is None
    run, bar = _adaptation_program(num_steps, int(x0.shape[0]), auto_friction, bool(progress))
    dtype = jnp.result_type(float)
    # Weights fitted to n standardised points move on a 1/sqrt(n) scale.
    h0 = jnp.asarray(0.1 / math.sqrt(n), dtype)
    friction = jnp.asarray(0.0 if auto_friction else cfg["friction"], dtype)
    with bar:
        pos, h, acc = run(posterior, key, jnp.asarray(x0), jnp.asarray(cfg["mass"], dtype),
                          friction, h0)  # fmt: skip
    acc = np.asarray(acc)
    tenths = [float(np.mean(a)) for a in np.array_split(acc, min(10, len(acc)))]
    return float(h), np.asarray(pos), tenths


@functools.lru_cache(maxsize=16)
def _adaptation_program(
    num_steps: int, num_chains: int, auto_friction: bool, progress: bool
) -> tuple[Any, Any]:
    """The compiled step-size adaptation and the progress bar it reports to.

    The posterior (data and hyperparameters), mass, friction and first step size are
    arguments, so fits of one model structure share the program (the splits of a
    benchmark, a prior sweep); the bar is kept with it (a cached program reports to the
    bar it was traced with).
    """
    import jax
    import jax.numpy as jnp

    import langevin_nets.kernels.baoab as baoab
    from langevin_nets.progress import ProgressBar

    C = num_chains
    gamma_da, t0, kappa = 0.05, 10.0, 0.75
    bar = ProgressBar(num_steps, desc="step size", enabled=progress)

    @jax.jit
    def run(posterior: Any, key: Any, x0: Any, mass: Any, friction: Any, h0: Any) -> Any:
        logdensity = posterior.logdensity
        mu = jnp.log(10.0 * h0)

        def one_chain(k: Any, state: Any, h: Any) -> Any:
            fr = FRICTION_TIMES_STEP / h if auto_friction else friction
            return baoab.step(k, state, logdensity, h, fr, mass, 1.0, True)

        k_init, k_run = jax.random.split(key)
        state = jax.vmap(lambda x, k: baoab.init(x, logdensity, key=k, mass=mass))(
            x0, jax.random.split(k_init, C)
        )

        def body(carry: Any, ik: Any) -> Any:
            state, log_h, h_bar_sum, log_h_avg = carry
            i, k = ik
            t = i + 1.0
            state, info = jax.vmap(one_chain, in_axes=(0, 0, None))(
                jax.random.split(k, C), state, jnp.exp(log_h)
            )
            acc = jnp.mean(jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0))
            h_bar_sum = h_bar_sum + (TARGET_ACCEPTANCE - acc)
            eta = h_bar_sum / (t + t0)
            log_h = mu - jnp.sqrt(t) / gamma_da * eta
            w = t ** (-kappa)
            log_h_avg = w * log_h + (1.0 - w) * log_h_avg
            bar.update(i)
            return (state, log_h, h_bar_sum, log_h_avg), acc

        zero = jnp.zeros((), h0.dtype)
        carry = (state, jnp.log(h0) + zero, zero, jnp.log(h0) + zero)
        steps = jnp.arange(num_steps, dtype=jnp.float32)
        carry, acc = jax.lax.scan(body, carry, (steps, jax.random.split(k_run, num_steps)))
        return carry[0].position, jnp.exp(carry[3]), acc

    return run, bar


def _run_langevin(
    cfg: dict[str, Any], posterior: Any, key: Any, progress: bool,
    ckpt: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    import jax

    from langevin_nets.langevin import langevin
    from langevin_nets.optimize import find_map

    ckpt = ckpt or {}
    checkpoint_info = _checkpoint_info(ckpt, "sample")
    C = cfg["chains"]
    k_init, k_tune, k_run = jax.random.split(key, 3)
    starts = posterior.sample_prior(k_init, C)
    _status(progress, f"langevin: MAP search, {C} chain(s) x {cfg['map_steps']} Adam steps")
    # All chains' searches side by side: one compiled program whatever the chain count.
    x0 = np.asarray(
        find_map(posterior, starts, num_steps=cfg["map_steps"],
                 learning_rate=MAP_LEARNING_RATE).position
    )  # fmt: skip
    evals = C * cfg["map_steps"]
    adaptation: list[float] = []
    h = cfg["step_size"]
    burnin = cfg["burnin"]
    if h is None:
        # The burn-in tunes the step size; production then runs with it fixed.
        n = posterior.num_data
        h, x0, adaptation = _adapt_step_size(cfg, posterior, k_tune, x0, n, progress)
        evals += C * (max(burnin, MIN_ADAPTATION_STEPS) + 1)
        burnin = 0
    gamma = _friction(cfg, h)
    tr = langevin(
        posterior.logdensity, k_run, x0, cfg["samples"], step_size=h,
        friction=gamma, mass=cfg["mass"], thin=cfg["thin"], num_burnin=burnin,
        metropolis=cfg["metropolis"], num_chains=C, progress_bar=progress,
        on_divergence=cfg["on_divergence"], max_restarts=cfg["max_restarts"], **ckpt,
    )  # fmt: skip
    evals += tr.num_gradient_evaluations
    pos = np.asarray(tr.positions)
    if C == 1:
        pos = pos[None]
    acc = np.asarray(tr.acceptance_rate).reshape(C, -1)
    sampler = {
        "num_chains": C,
        "num_samples_per_chain": int(pos.shape[1]),
        "step_size": h,
        "friction": gamma,
        "mean_acceptance_rate": float(np.mean(acc)) if cfg["metropolis"] else None,
        "burnin_acceptance_rate": np.atleast_1d(np.asarray(tr.burnin_acceptance_rate)).tolist(),
        "num_divergent": np.atleast_1d(np.asarray(tr.num_divergent)).tolist(),
        "on_divergence": cfg["on_divergence"],
        "num_restarts": np.atleast_1d(np.asarray(tr.num_restarts)).tolist(),
        "final_step_size": np.atleast_1d(np.asarray(tr.final_step_size)).tolist(),
        "burnin_acceptance_by_tenth": adaptation,
    }
    return {
        "draws": pos,
        "log_evidence_standardized": None,
        "gradient_evaluations": evals,
        "stages": None,
        "sampler": sampler,
        "resolved": {"step_size": h, "friction": gamma},
        "raw": tr,
        "checkpoint": checkpoint_info,
    }


__all__ = [
    "DEFAULTS",
    "FitResult",
    "Metrics",
    "PredictiveSummary",
    "SMCUnavailableError",
    "Standardizer",
    "fit",
]
