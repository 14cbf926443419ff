"""The classic API: the original research sandbox's interface on top of the functional core.

Everything here is a thin, stateful wrapper around :class:`~langevin_nets.model.BayesianMLP`,
:mod:`langevin_nets.kernels.baoab`, :func:`~langevin_nets.langevin.langevin`,
:func:`~langevin_nets.optimize.find_map` and :func:`langevin_nets.smc.smc`. It keeps the
sandbox's names and conventions so that its README examples run unchanged:

* ``GaussianDenseNN.unknowns`` is the flat vector ``[sigma, W_0, b_0, W_1, b_1, ...]`` with
  ``sigma`` on its natural (positive) scale. Internally the sampler works in the core's
  coordinates, ``[log sigma, weights...]``, so sigma can never go negative.
* ``beta`` is an inverse temperature (the core's ``temperature = 1 / beta``).
* ``energy`` is ``-log posterior`` in the classic coordinates (no Jacobian).

Unlike the original, the output layer of the network is linear.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import langevin_nets.kernels.baoab as baoab_kernel
from langevin_nets.activations import (
    elu,
    get_activation,
    leaky_relu,
    positanh,
    relu,
    sigmoid,
    softplus,
    tanh,
)
from langevin_nets.errors import DivergenceError
from langevin_nets.kernels.baoab import BAOABState
from langevin_nets.langevin import langevin
from langevin_nets.model import BayesianMLP, Posterior
from langevin_nets.networks import mlp, validate_layer_sizes
from langevin_nets.optimize import find_map
from langevin_nets.validation import (
    as_float_matrix,
    fraction,
    nonnegative_float,
    positive_float,
    positive_int,
)

Array = jax.Array

__all__ = [
    "GaussianDenseNN",
    "baoab",
    "elu",
    "init_nn_params",
    "leaky_relu",
    "nn_predict",
    "positanh",
    "relu",
    "sigmoid",
    "smc_data_addition",
    "smc_geometric_likelihood",
    "softplus",
    "tanh",
]


# -- the original's free functions ------------------------------------------------------------
def baoab(
    dt: float, beta: float = 1.0, mass: Any = 1.0, gamma: float = 1.0
) -> Callable[[Array, Array, Array, Array], tuple[Array, Array]]:
    """The original sandbox's BAOAB integrator, driven by an energy gradient.

    Parameters
    ----------
    dt : float
        Time step.
    beta : float
        Inverse temperature.
    mass : float or array
        Diagonal mass.
    gamma : float
        Friction coefficient.

    Returns
    -------
    callable
        ``integrator(g, q, p, key) -> (q, p)`` where ``g`` is the gradient of the
        *energy* (``-grad log density``) at ``q``. One call does the two half kicks of
        consecutive steps merged into one, ``p -= g dt``, then ``A(dt/2) O A(dt/2)``
        with ``O: p <- exp(-gamma dt) p + sqrt((1 - exp(-2 gamma dt)) mass / beta) xi``.
        The caller supplies ``g``, so there is no force function to cache; the
        :class:`GaussianDenseNN` sampler uses :mod:`langevin_nets.kernels.baoab` instead.
    """
    dt = positive_float(dt, "dt")
    beta = positive_float(beta, "beta")
    gamma = nonnegative_float(gamma, "gamma")
    mass = _check_mass(mass, None, "mass")
    c = float(np.exp(-gamma * dt))
    noise_var = (1.0 - c * c) / beta

    @jax.jit
    def integrator(g: Array, q: Array, p: Array, key: Array) -> tuple[Array, Array]:
        p = p - dt * g
        q = q + 0.5 * dt * p / mass
        xi = jax.random.normal(key, jnp.shape(p), jnp.result_type(p))
        p = c * p + jnp.sqrt(noise_var * mass) * xi
        q = q + 0.5 * dt * p / mass
        return q, p

    return integrator


def init_nn_params(
    layer_shapes: Sequence[int], scale: float, seed: int
) -> list[tuple[Array, Array]]:
    """Draw dense-network parameters ``[(W (m, n), b (n,)), ...]`` from N(0, scale^2).

    Parameters
    ----------
    layer_shapes : sequence of int
        ``(d_in, h1, ..., d_out)``.
    scale : float
        Standard deviation of every weight and bias.
    seed : int
        Seed of the JAX PRNG key.
    """
    sizes = validate_layer_sizes(layer_shapes)
    scale = positive_float(scale, "scale")
    return _init_params_fn(sizes)(jax.random.PRNGKey(_seed(seed)), scale)


@functools.lru_cache(maxsize=32)
def _init_params_fn(sizes: tuple[int, ...]) -> Callable[[Array, float], Any]:
    # One compiled draw instead of an eager op (and its compilation) per array.
    init = mlp(sizes).init

    @jax.jit
    def draw(key: Array, scale: Array) -> Any:
        return [(scale * W, scale * b) for W, b in init(key)]

    return draw


def nn_predict(
    params: Sequence[tuple[Array, Array]],
    inputs: Any,
    nonlinearity: str | Callable[[Array], Array] = tanh,
) -> Array:
    """Output ``(n, d_out)`` of a dense network with parameters ``[(W, b), ...]``.

    Hidden layers apply ``nonlinearity``; the output layer is linear (the original
    sandbox also squashed the output, which could not fit an unbounded target).
    """
    try:
        sizes = (int(params[0][0].shape[0]), *(int(W.shape[1]) for W, _ in params))
    except (TypeError, IndexError, AttributeError):
        raise TypeError("params must be a list of (W, b) pairs with W of shape (m, n)") from None
    X = jnp.asarray(as_float_matrix(inputs, "inputs"))
    if X.shape[1] != sizes[0]:
        raise ValueError(f"inputs has {X.shape[1]} columns but the first layer takes {sizes[0]}")
    get_activation(nonlinearity)
    try:
        apply = _apply_fn(sizes, nonlinearity)
    except TypeError:  # an unhashable callable
        apply = mlp(sizes, nonlinearity).apply
    return apply(list(params), X.astype(params[0][0].dtype))


@functools.lru_cache(maxsize=32)
def _apply_fn(sizes: tuple[int, ...], nonlinearity: Any) -> Callable[[Any, Array], Array]:
    return jax.jit(mlp(sizes, nonlinearity).apply)


# -- small helpers ----------------------------------------------------------------------------
def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _check_mass(mass: Any, dim: int | None, name: str = "mass") -> Any:
    """A positive scalar (as float) or, when ``dim`` is given, an array of shape ``(dim,)``."""
    try:
        m = np.asarray(mass, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number or array, got {mass!r}") from None
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"{name} must be positive and finite, got {mass!r}")
    if m.ndim == 0:
        return float(m)
    if dim is not None and (m.ndim != 1 or m.shape[0] != dim):
        raise ValueError(f"{name} must be a scalar or have shape ({dim},), got shape {m.shape}")
    return jnp.asarray(m)


def _to_core(unknowns: Array) -> Array:
    """``[sigma, w] -> [log sigma, w]``; a sigma <= 0 maps to 0 (callers mask it out)."""
    sigma = unknowns[0]
    safe = jnp.where(sigma > 0, sigma, 1.0)
    return jnp.concatenate([jnp.log(safe)[None], unknowns[1:]])


def _to_classic(position: Array) -> Array:
    """``[log sigma, w] -> [sigma, w]``."""
    return jnp.concatenate([jnp.exp(position[:1]), position[1:]])


class _Compiled(NamedTuple):
    """A model and its compiled functions; data, ``lam`` and settings are arguments."""

    model: BayesianMLP
    logdensity: Callable[..., Array]
    init: Callable[..., BAOABState]
    step: Callable[..., Any]
    log_prior: Callable[..., Array]
    log_like: Callable[..., Array]
    energy: Callable[..., Array]
    gradient: Callable[..., Array]
    mean: Callable[..., Array]
    trace_counter: list[int]


def _compiled(
    layer_shapes: tuple[int, ...],
    nonlinear: str | Callable[[Array], Array],
    prior_weight_scale: float,
    prior_error_scale: float,
) -> _Compiled:
    args = (layer_shapes, nonlinear, prior_weight_scale, prior_error_scale)
    try:
        hash(nonlinear)
    except TypeError:  # an unhashable callable: build without sharing
        return _build_compiled(*args)
    # The model holds arrays of the default float type, so x64 mode is part of the key.
    return _cached_build(*args, bool(jax.config.jax_enable_x64))


def _build_compiled(
    layer_shapes: tuple[int, ...],
    nonlinear: str | Callable[[Array], Array],
    prior_weight_scale: float,
    prior_error_scale: float,
    x64: bool | None = None,
) -> _Compiled:
    """Build (once per configuration) the model and the jitted functions the class uses.

    Data, ``lam`` and the integrator settings are arguments rather than constants, so
    instances with the same configuration share the compiled code and changing a setting
    does not recompile. ``x64`` only keys the cache.
    """
    model = BayesianMLP(
        layer_shapes,
        activation=nonlinear,
        prior="normal",
        prior_scale=prior_weight_scale,
        noise_shape=prior_error_scale,
    )
    traces = [0]

    def logdensity(x: Array, X: Array, y: Array, lam: Array) -> Array:
        return model.logprior(x) + lam * jnp.sum(model.loglikelihood_per_datum(x, X, y))

    def init(x: Array, p: Array, X: Array, y: Array, lam: Array) -> BAOABState:
        return baoab_kernel.init(x, lambda z: logdensity(z, X, y, lam), momentum=p)

    def step(
        key: Array,
        state: BAOABState,
        X: Array,
        y: Array,
        lam: Array,
        dt: Array,
        gamma: Array,
        mass: Array,
        temperature: Array,
    ) -> tuple[BAOABState, Any]:
        traces[0] += 1  # runs only while tracing
        return baoab_kernel.step(
            key, state, lambda z: logdensity(z, X, y, lam), dt, gamma, mass, temperature
        )

    def log_prior(u: Array) -> Array:
        sigma = u[0]
        # Gamma(a, 1) density of sigma: the core's log-sigma prior less its Jacobian log sigma.
        lp = model.logprior(_to_core(u)) - jnp.log(jnp.where(sigma > 0, sigma, 1.0))
        return jnp.where(sigma > 0, lp, -jnp.inf)

    def log_like(u: Array, X: Array, y: Array, lam: Array) -> Array:
        ll = lam * jnp.sum(model.loglikelihood_per_datum(_to_core(u), X, y))
        return jnp.where(u[0] > 0, ll, -jnp.inf)

    def energy(u: Array, X: Array, y: Array, lam: Array) -> Array:
        return -(log_prior(u) + log_like(u, X, y, lam))

    return _Compiled(
        model=model,
        logdensity=logdensity,
        init=jax.jit(init),
        step=jax.jit(step),
        log_prior=jax.jit(log_prior),
        log_like=jax.jit(log_like),
        energy=jax.jit(energy),
        gradient=jax.jit(jax.grad(energy)),
        mean=jax.jit(model.mean),
        trace_counter=traces,
    )


_cached_build = functools.lru_cache(maxsize=32)(_build_compiled)


# -- the classic class ------------------------------------------------------------------------
class GaussianDenseNN:
    """A Bayesian dense network for regression with the original sandbox's stateful interface.

    The model is a core :class:`~langevin_nets.model.BayesianMLP` with a N(0,
    ``prior_weight_scale``^2) prior on every weight and bias, a Gaussian likelihood and a
    Gamma(``prior_error_scale``, 1) prior on the noise level ``sigma``.

    Parameters
    ----------
    inputs : array ``(n, d_in)``
    targets : array ``(n, d_out)``
    layer_shapes : sequence of int
        ``(d_in, h1, ..., d_out)``.
    prior_weight_scale : float
        Prior standard deviation of the weights and biases.
    prior_error_scale : float
        Shape of the Gamma(shape, rate=1) prior on ``sigma``.
    nonlinear : str or callable
        Hidden-layer activation (default ``positanh = 1 + tanh``).
    seed : int
        Seed for the initial weights and for keys drawn when none is passed.

    Attributes
    ----------
    unknowns : array ``(dim,)``
        ``[sigma, W_0, b_0, ...]`` with ``sigma`` on the natural scale; assignable.
    momenta : array ``(dim,)``
        Momenta of the sampler, conjugate to the *core* coordinates ``[log sigma, weights]``.
    mass, beta, gamma, dt : float
        Integrator settings (defaults 10, 1, 100, 1e-4); change them with
        :meth:`reinit_integrator`. ``beta`` is the inverse temperature.
    lam : float
        Power of the likelihood (1 is the posterior).
    nsteps : int
        Integrator steps taken so far.
    model : BayesianMLP
        The core model.
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any,
        layer_shapes: Sequence[int],
        prior_weight_scale: float = 1,
        prior_error_scale: float = 1,
        nonlinear: str | Callable[[Array], Array] = positanh,
        seed: int = 0,
    ) -> None:
        self.layer_shapes = validate_layer_sizes(layer_shapes)
        self.prior_weight_scale = positive_float(prior_weight_scale, "prior_weight_scale")
        self.prior_error_scale = positive_float(prior_error_scale, "prior_error_scale")
        get_activation(nonlinear)
        self.nonlinear = nonlinear
        self.seed = _seed(seed)
        self._inputs = as_float_matrix(inputs, "inputs")
        self._targets = as_float_matrix(targets, "targets")
        self._device_data: tuple[Array, Array] | None = None
        self._run_fns: tuple[Callable[[Array], Array], Callable[[Array], Array]] | None = None
        self.mass: Any = 10.0
        self.beta = 1.0
        self.gamma = 100.0
        self.dt = 1e-4
        self._lam = 1.0
        self.nsteps = 0
        self.last_trace = None
        self.reinit_system()

    # -- construction -----------------------------------------------------------------------
    def reinit_system(self) -> None:
        """Rebuild the model from the current attributes and start afresh.

        Re-reads ``layer_shapes``, ``nonlinear``, ``prior_weight_scale``,
        ``prior_error_scale``, ``inputs`` and ``targets``, rebuilds the model (compiled
        functions are shared by instances of the same configuration), and resets the
        unknowns (weights from :func:`init_nn_params` with ``seed``, ``sigma`` at its prior
        mean ``prior_error_scale``), redraws the momenta and sets ``nsteps`` to 0.
        """
        self.layer_shapes = validate_layer_sizes(self.layer_shapes)
        self.prior_weight_scale = positive_float(self.prior_weight_scale, "prior_weight_scale")
        self.prior_error_scale = positive_float(self.prior_error_scale, "prior_error_scale")
        get_activation(self.nonlinear)
        self._fns = _compiled(
            self.layer_shapes, self.nonlinear, self.prior_weight_scale, self.prior_error_scale
        )
        self.model = self._fns.model
        self._run_fns = None
        self.mass = _check_mass(self.mass, self.model.dim)
        self._check_data()
        params = init_nn_params(self.layer_shapes, self.prior_weight_scale, self.seed)
        weights = jnp.concatenate([jnp.concatenate([W.ravel(), b]) for W, b in params])
        position = jnp.concatenate([jnp.log(jnp.full((1,), self.prior_error_scale)), weights])
        momentum = self._draw_momentum(self._momentum_key(), position.shape[0])
        self._set_position(position, momentum)
        self.nsteps = 0

    def _check_data(self) -> None:
        # Posterior checks shapes against layer_shapes with clear messages.
        Posterior(self.model, self._inputs, self._targets)

    def _data(self) -> tuple[Array, Array]:
        # Device copies, made once per data change rather than once per step.
        dtype = jnp.result_type(float)
        if self._device_data is None or self._device_data[0].dtype != dtype:
            self._device_data = (
                jnp.asarray(self._inputs, dtype),
                jnp.asarray(self._targets, dtype),
            )
            self._run_fns = None
        return self._device_data

    def _sampler_fns(self) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
        """The log density and record function handed to ``langevin``.

        The same objects until the data, ``lam`` or the model change, so that ``langevin``
        can reuse the sampler it compiled for an earlier :meth:`run` with the same settings.
        """
        X, y = self._data()
        if self._run_fns is None:
            lam = self._lam
            logdensity = self._fns.logdensity
            mean = self.model.mean
            self._run_fns = (lambda x: logdensity(x, X, y, lam), lambda x: mean(x, X))
        return self._run_fns

    def _set_position(self, position: Array, momentum: Array) -> None:
        # The log density and force are evaluated lazily, by the first step that needs them.
        nan = jnp.full((), jnp.nan, position.dtype)
        self._state = BAOABState(position, momentum, nan, jnp.full_like(position, jnp.nan))
        self._stale = True

    def _ensure_state(self) -> None:
        """Evaluate the cached log density and force if the position, data or ``lam`` changed."""
        if self._stale:
            self._check_data()
            s = self._state
            self._state = self._fns.init(s.position, s.momentum, *self._data(), self._lam)
            self._stale = False

    def _momentum_key(self) -> Array:
        # Folded so that it differs from the PRNGKey(seed) users build in the README loops.
        return jax.random.fold_in(jax.random.PRNGKey(self.seed), 0x6D6F6D)

    def _draw_momentum(self, key: Array, dim: int) -> Array:
        p = jax.random.normal(key, (dim,), jnp.result_type(float))
        return p * jnp.sqrt(jnp.asarray(self.mass) / self.beta)

    def _next_key(self, key: Any) -> Array:
        if key is None:
            key = jax.random.PRNGKey(self.seed)
            self.seed += 1
        return key

    # -- data and settings ------------------------------------------------------------------
    @property
    def num_step_traces(self) -> int:
        """Times the compiled step was traced (shared by instances of one configuration)."""
        return self._fns.trace_counter[0]

    @property
    def dim(self) -> int:
        """Number of unknowns (``1 + number of weights``)."""
        return self.model.dim

    @property
    def inputs(self) -> np.ndarray:
        """Training inputs ``(n, d_in)``; assignable (the sampler picks up the change)."""
        return self._inputs

    @inputs.setter
    def inputs(self, value: Any) -> None:
        self._inputs = as_float_matrix(value, "inputs")
        self._device_data = None
        self._run_fns = None
        self._stale = True

    @property
    def targets(self) -> np.ndarray:
        """Training targets ``(n, d_out)``; assignable."""
        return self._targets

    @targets.setter
    def targets(self, value: Any) -> None:
        self._targets = as_float_matrix(value, "targets")
        self._device_data = None
        self._run_fns = None
        self._stale = True

    @property
    def lam(self) -> float:
        """Power of the likelihood in the sampled density ``prior * likelihood^lam``."""
        return self._lam

    @lam.setter
    def lam(self, value: Any) -> None:
        v = nonnegative_float(value, "lam")
        self._lam = v
        self._run_fns = None
        self._stale = True

    @property
    def posterior(self) -> Posterior:
        """The core :class:`~langevin_nets.model.Posterior` of the current data (``lam`` = 1)."""
        return self.model.posterior(self._inputs, self._targets)

    def reinit_integrator(
        self,
        dt: float | None = None,
        beta: float | None = None,
        mass: Any = None,
        gamma: float | None = None,
        key: Array | None = None,
    ) -> None:
        """Change the integrator settings given and redraw the momenta from N(0, mass / beta).

        The momenta are drawn with ``key`` if given, else from a key derived from ``seed``.
        """
        if dt is not None:
            self.dt = positive_float(dt, "dt")
        if beta is not None:
            self.beta = positive_float(beta, "beta")
        if mass is not None:
            self.mass = _check_mass(mass, self.dim)
        if gamma is not None:
            self.gamma = nonnegative_float(gamma, "gamma")
        k = self._momentum_key() if key is None else key
        self.momenta = self._draw_momentum(k, self.dim)

    # -- state ------------------------------------------------------------------------------
    def _check_vector(self, value: Any, name: str) -> Array:
        a = jnp.asarray(value, dtype=jnp.result_type(float))
        if a.shape != (self.dim,):
            raise ValueError(f"{name} must have shape ({self.dim},), got shape {a.shape}")
        return a

    @property
    def unknowns(self) -> Array:
        """``[sigma, W_0, b_0, W_1, b_1, ...]``, sigma on the natural scale."""
        return _to_classic(self._state.position)

    @unknowns.setter
    def unknowns(self, value: Any) -> None:
        u = self._check_vector(value, "unknowns")
        if not bool(jnp.all(jnp.isfinite(u))):
            raise ValueError("unknowns contains NaN or infinite values")
        if not float(u[0]) > 0:
            raise ValueError(f"unknowns[0] is sigma and must be positive, got {float(u[0])!r}")
        self._set_position(_to_core(u), self._state.momentum)

    @property
    def momenta(self) -> Array:
        """Momenta, conjugate to the core coordinates ``[log sigma, weights]``."""
        return self._state.momentum

    @momenta.setter
    def momenta(self, value: Any) -> None:
        p = self._check_vector(value, "momenta")
        self._state = self._state._replace(momentum=p)

    # -- densities in the classic coordinates -------------------------------------------------
    def _unknowns_or_current(self, unknowns: Any) -> Array:
        return self.unknowns if unknowns is None else self._check_vector(unknowns, "unknowns")

    def log_prior(self, unknowns: Any = None) -> Array:
        """Log prior density of ``[sigma, weights]``: Gamma(a, 1) on sigma, N(0, s^2) on weights."""
        return self._fns.log_prior(self._unknowns_or_current(unknowns))

    def batch_log_like(
        self, unknowns: Any, new_inputs: Any, new_targets: Any, lam: float = 1.0
    ) -> Array:
        """``lam`` times the summed Gaussian log density of ``new_targets`` given ``new_inputs``."""
        u = self._check_vector(unknowns, "unknowns")
        X = as_float_matrix(new_inputs, "new_inputs")
        y = as_float_matrix(new_targets, "new_targets")
        d_in, d_out = self.layer_shapes[0], self.layer_shapes[-1]
        if X.shape[1] != d_in:
            raise ValueError(f"new_inputs has {X.shape[1]} columns but layer_shapes[0] is {d_in}")
        if y.shape != (X.shape[0], d_out):
            raise ValueError(
                f"new_targets must have shape ({X.shape[0]}, {d_out}), got shape {y.shape}"
            )
        lam = nonnegative_float(lam, "lam")
        dtype = jnp.result_type(float)
        return self._fns.log_like(u, jnp.asarray(X, dtype), jnp.asarray(y, dtype), lam)

    def log_like(self, unknowns: Any = None) -> Array:
        """``lam`` times the log-likelihood of the training data."""
        u = self._unknowns_or_current(unknowns)
        return self._fns.log_like(u, *self._data(), self._lam)

    def energy(self, unknowns: Any = None) -> Array:
        """``-(log_prior + log_like)`` in the classic coordinates (``+inf`` when sigma <= 0)."""
        u = self._unknowns_or_current(unknowns)
        return self._fns.energy(u, *self._data(), self._lam)

    def gradient(self, unknowns: Any = None) -> Array:
        """Gradient of :meth:`energy` with respect to ``[sigma, weights]``."""
        u = self._unknowns_or_current(unknowns)
        return self._fns.gradient(u, *self._data(), self._lam)

    # -- fitting and sampling ---------------------------------------------------------------
    def predict(self, inputs: Any = None) -> Array:
        """Network output ``(n, d_out)`` at ``inputs`` (default: the training inputs)."""
        if inputs is None:
            X = self._data()[0]
        else:
            X = as_float_matrix(inputs, "inputs")
            if X.shape[1] != self.layer_shapes[0]:
                raise ValueError(
                    f"inputs has {X.shape[1]} columns but layer_shapes[0] is {self.layer_shapes[0]}"
                )
            X = jnp.asarray(X, jnp.result_type(float))
        return self._fns.mean(self._state.position, X)

    def get_map(self, step_size: float = 0.001, nsteps: int = 1000, loud: bool = True) -> Array:
        """Minimise :meth:`energy` with Adam from the current unknowns; set ``unknowns``.

        Adam runs in the core coordinates ``[log sigma, weights]`` (so sigma stays
        positive) on the classic energy, whose minimiser is the classic MAP.

        Returns
        -------
        array ``(nsteps,)``
            The energy before each Adam step.
        """
        step_size = positive_float(step_size, "step_size")
        nsteps = positive_int(nsteps, "nsteps")
        self._check_data()
        X, y = self._data()
        lam = self._lam
        logdensity = self._fns.logdensity

        def objective(x: Array) -> Array:
            # -energy at sigma = exp(x[0]): drop the log-sigma Jacobian of the core prior.
            return logdensity(x, X, y, lam) - x[0]

        result = find_map(
            objective, self._state.position, num_steps=nsteps, learning_rate=step_size
        )
        if not bool(jnp.all(jnp.isfinite(result.position))):
            raise DivergenceError(
                f"get_map diverged (non-finite weights); try a smaller step_size (now {step_size})"
            )
        self._set_position(result.position, self._state.momentum)
        if loud:
            e0 = float(result.loss_history[0])
            e1 = float(self.energy())
            print(
                f"get_map: {nsteps} Adam steps (step_size {step_size}): energy {e0:.6g} -> {e1:.6g}"
            )
        return result.loss_history

    def step(self, key: Array | None = None) -> None:
        """One BAOAB step of the unknowns (compiled once; later calls reuse it).

        Parameters
        ----------
        key : PRNG key, optional
            Default: ``PRNGKey(seed)``, after which ``seed`` is incremented.

        Raises
        ------
        DivergenceError
            If the log density or its gradient became non-finite (the state is kept).
        """
        self._ensure_state()
        key = self._next_key(key)
        state, info = self._fns.step(
            key,
            self._state,
            *self._data(),
            self._lam,
            self.dt,
            self.gamma,
            self.mass,
            1.0 / self.beta,
        )
        if bool(info.is_divergent):
            raise DivergenceError(
                f"step {self.nsteps} diverged (non-finite log density or gradient); "
                f"try a smaller dt (now {self.dt}) or a larger mass"
            )
        self._state = state
        self.nsteps += 1

    def run(
        self,
        nsteps: int,
        key: Array | None = None,
        record_every: int = 100,
        progress_bar: bool = False,
    ) -> Array:
        """Run ``nsteps`` steps in one compiled call and record predictions along the way.

        Uses the core :func:`~langevin_nets.langevin.langevin` with the current settings;
        runs with unchanged data, ``lam`` and settings pass it the same functions, so it can
        reuse the sampler it compiled. The core sampler starts by redrawing the momenta from
        N(0, mass / beta), as :meth:`reinit_integrator` does; from there it applies the
        same kernel as :meth:`step`, so given the same initial momenta and the keys
        ``langevin`` derives from ``key``, a run and a loop of :meth:`step` calls follow the
        same path up to float rounding (the tests check this).

        Parameters
        ----------
        nsteps : int
            Integrator steps (at least ``record_every``).
        key : PRNG key, optional
            Default: ``PRNGKey(seed)``, after which ``seed`` is incremented.
        record_every : int
            Steps between recorded predictions; the last record is at the final step.
        progress_bar : bool
            Show a progress bar.

        Returns
        -------
        array ``(nsteps // record_every, n, d_out)``
            Network outputs at the training inputs. The whole trace is in ``last_trace``.
        """
        nsteps = positive_int(nsteps, "nsteps")
        record_every = positive_int(record_every, "record_every")
        if nsteps < record_every:
            raise ValueError(f"nsteps ({nsteps}) must be at least record_every ({record_every})")
        self._check_data()
        key = self._next_key(key)
        logdensity, record = self._sampler_fns()
        trace = langevin(
            logdensity,
            key,
            self._state.position,
            nsteps // record_every,
            step_size=self.dt,
            friction=self.gamma,
            mass=self.mass,
            temperature=1.0 / self.beta,
            thin=record_every,
            # The remainder runs first so that the last record is the final state.
            num_burnin=nsteps % record_every,
            record_fn=record,
            progress_bar=progress_bar,
        )
        self._state = trace.final_state  # evaluated with the current data and lam
        self._stale = False
        self.nsteps += nsteps
        self.last_trace = trace
        return trace.recorded

    def __repr__(self) -> str:
        return (
            f"GaussianDenseNN(layer_shapes={self.layer_shapes}, n={self._inputs.shape[0]}, "
            f"dt={self.dt}, beta={self.beta}, mass={self.mass}, gamma={self.gamma}, "
            f"nsteps={self.nsteps})"
        )


# -- SMC, classic signatures ------------------------------------------------------------------
def _smc_classic(
    inputs: Any,
    target: Any,
    nreplicas: int,
    layer_shapes: Sequence[int],
    draw_param_scale: float,
    draw_error_scale: float,
    ess_frac: float,
    nsteps: int,
    seed: int,
    loud: bool,
    schedule: str,
    nstages: int | None,
) -> tuple[GaussianDenseNN, list[Array], Any]:
    nreplicas = positive_int(nreplicas, "nreplicas")
    ess_frac = fraction(ess_frac, "ess_frac")
    nsteps = positive_int(nsteps, "nsteps")
    seed = _seed(seed)
    nn = GaussianDenseNN(
        inputs,
        target,
        layer_shapes,
        prior_weight_scale=draw_param_scale,
        prior_error_scale=draw_error_scale,
        seed=seed,
    )
    # Imported here so that the rest of the classic API does not depend on the SMC module.
    from langevin_nets.smc import smc, systematic

    k_smc, k_resample = jax.random.split(jax.random.PRNGKey(seed))
    kwargs: dict[str, Any] = {
        "num_particles": nreplicas,
        "schedule": schedule,
        "ess_threshold": ess_frac,
        "num_mcmc_steps": nsteps,
        "progress_bar": loud,
    }
    if schedule == "data":
        kwargs["batch_size"] = 1
    else:
        kwargs["num_stages"] = nstages
    result = smc(nn.posterior, k_smc, **kwargs)
    # One final resampling makes the replicas equally weighted, as the classic API assumes.
    weights = jnp.exp(jnp.asarray(result.log_weights))  # normalised; -inf -> 0
    idx = systematic(k_resample, weights / jnp.sum(weights), nreplicas)
    particles = jnp.asarray(result.particles)[idx]
    replicas = [_to_classic(p) for p in particles]
    nn.unknowns = replicas[0]
    nn.seed = seed + 1
    if loud:
        n_res = int(np.sum(np.asarray(result.history.resampled)))
        print(
            f"smc ({schedule}): {nreplicas} replicas, {len(np.asarray(result.history.resampled))} "
            f"stages, {n_res} resamplings, log evidence {float(result.log_evidence):.6g}"
        )
    return nn, replicas, result


def smc_data_addition(
    inputs: Any,
    target: Any,
    nreplicas: int,
    layer_shapes: Sequence[int],
    draw_param_scale: float,
    draw_error_scale: float,
    ess_frac: float = 0.7,
    nsteps: int = 100,
    seed: int = 0,
    loud: bool = True,
) -> tuple[GaussianDenseNN, list[Array], list[int], list[int]]:
    """SMC that adds the data one point at a time, with Langevin moves between stages.

    Parameters
    ----------
    inputs, target : arrays ``(n, d_in)``, ``(n, d_out)``
    nreplicas : int
        Number of particles (networks).
    layer_shapes : sequence of int
    draw_param_scale : float
        Prior standard deviation of the weights (the particles start as prior draws).
    draw_error_scale : float
        Shape of the Gamma prior on sigma.
    ess_frac : float
        Resample when the effective sample size falls below ``ess_frac * nreplicas``.
    nsteps : int
        MCMC moves per stage.
    seed : int
    loud : bool
        Show progress and a summary line.

    Returns
    -------
    nn : GaussianDenseNN
        Holding all the data, its unknowns set to the first replica.
    replica_unknowns : list of arrays ``(dim,)``
        Equally weighted posterior draws in the classic layout ``[sigma, weights]``
        (the final weighted particles resampled once).
    sample_sizes : list of int
        Number of data points in the target at each stage.
    resample_times : list of int
        Stage indices at which the particles were resampled.
    """
    nn, replicas, result = _smc_classic(
        inputs, target, nreplicas, layer_shapes, draw_param_scale, draw_error_scale,
        ess_frac, nsteps, seed, loud, "data", None,
    )  # fmt: skip
    hist = result.history
    sample_sizes = [int(v) for v in np.asarray(hist.num_data)]
    resample_times = [int(i) for i in np.flatnonzero(np.asarray(hist.resampled))]
    return nn, replicas, sample_sizes, resample_times


def smc_geometric_likelihood(
    inputs: Any,
    target: Any,
    nreplicas: int,
    layer_shapes: Sequence[int],
    nstages: int,
    draw_param_scale: float,
    draw_error_scale: float,
    ess_frac: float = 0.7,
    nsteps: int = 100,
    seed: int = 0,
    loud: bool = True,
) -> tuple[GaussianDenseNN, list[Array], list[int]]:
    """SMC that raises the likelihood to powers ``0 < lam_1 < ... < lam_nstages = 1``.

    Parameters are as in :func:`smc_data_addition`, plus ``nstages``, the number of
    tempering stages.

    Returns
    -------
    nn : GaussianDenseNN
    replica_unknowns : list of arrays ``(dim,)``
        Equally weighted posterior draws in the classic layout.
    resample_times : list of int
        Stage indices at which the particles were resampled.
    """
    nstages = positive_int(nstages, "nstages")
    nn, replicas, result = _smc_classic(
        inputs, target, nreplicas, layer_shapes, draw_param_scale, draw_error_scale,
        ess_frac, nsteps, seed, loud, "geometric", nstages,
    )  # fmt: skip
    resample_times = [int(i) for i in np.flatnonzero(np.asarray(result.history.resampled))]
    return nn, replicas, resample_times
