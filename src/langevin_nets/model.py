"""The Bayesian MLP for regression and its posterior.

Positions are flat 1-D arrays everywhere in the library. With a learned noise
level, ``position[0]`` is ``log(sigma)`` and the rest are the network weights
raveled in layer order (``W_0, b_0, W_1, b_1, ...``); with a fixed noise level
the position holds the weights alone.

A heteroscedastic model's network has twice as many outputs: the first ``d_out``
are the mean, the last ``d_out`` a log-scale offset ``g(x)`` of the noise, whose
standard deviation at ``x`` is ``sigma * exp(g(x))``.

A ``noise_floor`` ``q`` adds a fixed variance to either: the noise standard deviation
is ``sqrt(q**2 + s**2)`` for the ``s`` above (for a target recorded on a grid of
spacing ``h``, ``q = h / sqrt(12)`` is the variance rounding adds, Sheppard's correction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln

from langevin_nets.activations import get_activation
from langevin_nets.gamma import log_gamma
from langevin_nets.networks import Network, mlp, validate_layer_sizes
from langevin_nets.validation import (
    as_float_matrix,
    choice,
    nonnegative_float,
    positive_float,
    positive_int,
)

Array = jax.Array

PRIORS = ("normal", "fan_in")
_LOG_2PI = float(np.log(2.0 * np.pi))


class BayesianMLP:
    """A dense network with a Gaussian prior and a Gaussian likelihood.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(d_in, h1, ..., d_out)``; ``(d, 1)`` is Bayesian linear regression.
    activation : str or callable
        Hidden-layer non-linearity: ``tanh``, ``relu``, ``softplus``, ``sigmoid``,
        ``elu``, ``leaky_relu`` or ``positanh``.
    prior : {"normal", "fan_in"}
        ``normal``: every weight and bias ~ N(0, prior_scale^2). ``fan_in``: weights
        ~ N(0, prior_scale^2 / fan_in), biases ~ N(0, prior_scale^2) (Neal's scaling).
    prior_scale : float
        Prior standard deviation (before fan-in scaling).
    noise_shape : float
        Shape of the Gamma(shape, rate=1) prior on the noise level sigma, when learned.
    noise_std : float, optional
        A fixed noise level; when given, sigma is not sampled.
    network : Network, optional
        Replace the dense MLP by another ``(init, apply)`` pair with the same
        parameter structure conventions (prior scales are then all ``prior_scale``).
        With ``heteroscedastic=True`` it must have ``2 * d_out`` outputs.
    heteroscedastic : bool
        Let the noise level depend on the input: the network gets ``d_out`` more
        outputs ``g(x)``, with the same prior as the mean's, and the noise standard
        deviation at ``x`` is ``sigma * exp(g(x))``. ``sigma`` keeps its Gamma prior and
        is the noise level where ``g(x) = 0``. Needs a learned noise level.
    noise_floor : float
        A noise standard deviation ``q >= 0`` added in quadrature: the noise level is
        ``sqrt(q**2 + s**2)`` where ``s`` is sigma (or ``sigma * exp(g(x))``). It keeps
        a heteroscedastic noise level from collapsing below the resolution of a target
        recorded on a grid; ``sigma``'s prior is unchanged. 0 (the default): no floor.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Callable[[Array], Array] = "tanh",
        prior: str = "normal",
        prior_scale: float = 1.0,
        noise_shape: float = 1.0,
        noise_std: float | None = None,
        network: Network | None = None,
        heteroscedastic: bool = False,
        noise_floor: float = 0.0,
    ) -> None:
        self.layer_sizes = validate_layer_sizes(layer_sizes)
        if not isinstance(heteroscedastic, bool | np.bool_):
            raise TypeError(f"heteroscedastic must be True or False, got {heteroscedastic!r}")
        self.heteroscedastic = bool(heteroscedastic)
        if self.heteroscedastic and noise_std is not None:
            raise ValueError(
                "heteroscedastic=True learns the noise level; it cannot take a fixed noise_std"
            )
        get_activation(activation)
        self.activation = activation
        self.prior = choice(prior, "prior", PRIORS)
        self.prior_scale = positive_float(prior_scale, "prior_scale")
        self.noise_shape = positive_float(noise_shape, "noise_shape")
        self.noise_std = None if noise_std is None else positive_float(noise_std, "noise_std")
        self.noise_floor = nonnegative_float(noise_floor, "noise_floor")
        # Whether there is a floor is structure (a different program); its value is not.
        self._has_floor = self.noise_floor > 0.0
        self._default_network = network is None
        d_out = self.layer_sizes[-1]
        # The network's outputs: the mean, and with heteroscedastic noise its log-scale offset.
        self._num_outputs = 2 * d_out if self.heteroscedastic else d_out
        sizes = (*self.layer_sizes[:-1], self._num_outputs)
        self.network = network if network is not None else mlp(sizes, activation)

        # Shapes only: eval_shape avoids running (and compiling) init op by op.
        shapes = jax.eval_shape(self.network.init, jax.random.PRNGKey(0))
        if self.heteroscedastic and network is not None:
            x = jax.ShapeDtypeStruct((1, self.layer_sizes[0]), jnp.float32)
            out = jax.eval_shape(self.network.apply, shapes, x)
            if out.shape[-1] != self._num_outputs:
                raise ValueError(
                    f"a heteroscedastic model's network must have 2 * d_out = "
                    f"{self._num_outputs} outputs (mean and log noise offset), "
                    f"got {out.shape[-1]}"
                )
        template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
        self._template = template
        flat, self._unravel = ravel_pytree(template)
        self.num_weights = int(flat.shape[0])
        # The prior standard deviations at prior_scale 1: the scale multiplies them.
        self._unit_std = self._prior_std(template, 1.0)
        self._weight_std = jnp.asarray(self._unit_std * self.prior_scale)
        self._offset = 0 if self.noise_std is not None else 1
        self.dim = self.num_weights + self._offset

    # -- layout ---------------------------------------------------------------------------
    @property
    def learns_noise(self) -> bool:
        """Whether sigma is a sampled parameter (``position[0] = log sigma``)."""
        return self.noise_std is None

    def _prior_std(self, template: Any, scale: float) -> np.ndarray:
        stds = []
        for W, b in template:
            fan_in = W.shape[0]
            w_scale = scale / np.sqrt(fan_in) if self.prior == "fan_in" else scale
            stds.append(np.full(W.size, w_scale))
            stds.append(np.full(b.size, scale))
        return np.concatenate(stds)

    def unravel(self, position: Array) -> Any:
        """The network's parameter pytree held in a flat position."""
        return self._unravel(position[self._offset :])

    def sigma(self, position: Array) -> Array:
        """The noise parameter sigma at ``position`` (without the ``noise_floor``)."""
        if self.noise_std is not None:
            # jnp.asarray first: a float64 NumPy position would warn under 32-bit JAX.
            return jnp.asarray(self.noise_std, dtype=jnp.asarray(position).dtype)
        return jnp.exp(position[0])

    def mean(self, position: Array, X: Array) -> Array:
        """Network output ``(n, d_out)`` at ``position`` for inputs ``X`` ``(n, d_in)``.

        For a heteroscedastic model, the mean outputs only (the first ``d_out``).
        """
        return self._mean_and_offset(position, X)[0]

    def noise_level(self, position: Array, X: Array) -> Array:
        """The noise standard deviation at each input: ``(n, d_out)``.

        ``sigma(position)`` everywhere unless the model is heteroscedastic; the
        ``noise_floor`` included.
        """
        return self.mean_and_noise(position, X)[1]

    def mean_and_noise(self, position: Array, X: Array) -> tuple[Array, Array]:
        """``(mean, noise_level)`` at inputs ``X``, both ``(n, d_out)``, from one pass."""
        mu, g = self._mean_and_offset(position, X)
        sigma = self.sigma(position)
        noise = jnp.broadcast_to(sigma, mu.shape) if g is None else sigma * jnp.exp(g)
        return mu, self.with_floor(noise)

    def with_floor(self, noise: Array) -> Array:
        """``sqrt(noise_floor**2 + noise**2)``: ``noise`` itself when there is no floor."""
        if not self._has_floor:  # a Python branch: no floor, the same program as before
            return noise
        return jnp.hypot(noise, jnp.asarray(self.noise_floor, dtype=jnp.result_type(noise)))

    def _mean_and_offset(self, position: Array, X: Array) -> tuple[Array, Array | None]:
        """The network's outputs split into the mean and the log noise offset ``g(x)``
        (``None`` for a homoscedastic model)."""
        out = self.network.apply(self.unravel(position), X)
        if not self.heteroscedastic:
            return out, None
        d_out = self.layer_sizes[-1]
        return out[..., :d_out], out[..., d_out:]

    def parameter_names(self) -> list[str]:
        """Names of the flat coordinates, e.g. ``log_sigma``, ``W_0[0,3]``, ``b_1[0]``."""
        names = ["log_sigma"] if self.learns_noise else []
        template = self._template
        for layer, (W, b) in enumerate(template):
            names += [f"W_{layer}[{i},{j}]" for i in range(W.shape[0]) for j in range(W.shape[1])]
            names += [f"b_{layer}[{j}]" for j in range(b.shape[0])]
        return names

    def constrained(self, positions: Array) -> dict[str, np.ndarray]:
        """Named arrays for a batch of positions ``(..., dim)``: sigma and each layer."""
        positions = np.asarray(positions)
        lead = positions.shape[:-1]
        out: dict[str, np.ndarray] = {}
        if self.learns_noise:
            out["sigma"] = np.exp(positions[..., 0])
        template = self._template
        start = self._offset
        for layer, (W, b) in enumerate(template):
            for name, arr in ((f"W_{layer}", W), (f"b_{layer}", b)):
                size = arr.size
                out[name] = positions[..., start : start + size].reshape(*lead, *arr.shape)
                start += size
        return out

    # -- densities --------------------------------------------------------------------------
    def logprior(self, position: Array) -> Array:
        """Log prior density of a flat position (in log-sigma coordinates, Jacobian included)."""
        w = position[self._offset :]
        z = w / self._weight_std
        lp = -0.5 * jnp.sum(z * z) - jnp.sum(jnp.log(self._weight_std)) - 0.5 * w.size * _LOG_2PI
        if self.learns_noise:
            s = position[0]
            a = self.noise_shape
            # Gamma(a, 1) on sigma = exp(s), times the Jacobian d sigma / d s = sigma.
            lp = lp + a * s - jnp.exp(s) - gammaln(a)
        return lp

    def loglikelihood_per_datum(self, position: Array, X: Array, y: Array) -> Array:
        """Gaussian log-likelihood of each row of ``(X, y)``, summed over outputs: ``(n,)``."""
        mu, g = self._mean_and_offset(position, X)
        if g is not None:
            # log of the noise level, kept in log space: no exp/log round trip.
            log_sigma = position[0] + g
            if self._has_floor:
                log_floor = jnp.log(jnp.asarray(self.noise_floor, dtype=log_sigma.dtype))
                log_sigma = 0.5 * jnp.logaddexp(2.0 * log_sigma, 2.0 * log_floor)
            r = (y - mu) * jnp.exp(-log_sigma)
            return jnp.sum(-0.5 * r * r - log_sigma - 0.5 * _LOG_2PI, axis=-1)
        sigma = self.with_floor(self.sigma(position))
        r = (y - mu) / sigma
        return jnp.sum(-0.5 * r * r - jnp.log(sigma) - 0.5 * _LOG_2PI, axis=-1)

    def sample_prior(self, key: Array, num_samples: int | None = None) -> Array:
        """Draw positions from the prior: ``(dim,)``, or ``(num_samples, dim)``."""
        shape = () if num_samples is None else (int(num_samples),)
        kw, ks = jax.random.split(key)
        w = jax.random.normal(kw, (*shape, self.num_weights)) * self._weight_std
        if not self.learns_noise:
            return w
        # In log space and without jax.random.gamma's loop (see langevin_nets.gamma); the
        # floor keeps sigma a positive float for very small shapes.
        log_sigma = jnp.maximum(
            log_gamma(ks, self.noise_shape, shape, w.dtype), jnp.log(jnp.finfo(w.dtype).tiny)
        )
        return jnp.concatenate([log_sigma[..., None], w], axis=-1)

    def posterior(self, X: Any, y: Any, data_chunk: int | None = None) -> Posterior:
        """Bind training data and return the :class:`Posterior`.

        Parameters
        ----------
        X, y : array-like
            Inputs ``(n, d_in)`` and targets ``(n, d_out)`` (or ``(n,)`` for one output).
        data_chunk : int, optional
            Evaluate the network on at most this many rows at a time, to bound the memory
            of gradients on large data sets (see :meth:`Posterior.with_data_chunk`).

        Raises
        ------
        ValueError
            If shapes disagree with ``layer_sizes``, the data hold NaN/inf, or
            ``data_chunk`` is not a positive integer.
        """
        return Posterior(self, X, y, data_chunk=data_chunk)

    # -- identity -----------------------------------------------------------------------------
    def _structure(self) -> tuple:
        """What sets the compiled programs: everything but the hyperparameters' values."""
        # A user network is compared by identity; the default MLP is rebuilt from the sizes.
        activation = self.activation if isinstance(self.activation, str) else id(self.activation)
        network = None if self._default_network else id(self.network)
        # The class too: a subclass may compute other densities from the same structure.
        return (
            type(self), self.layer_sizes, activation, self.prior, network,
            self.heteroscedastic, self.learns_noise, self._has_floor,
        )  # fmt: skip

    def _identity(self) -> tuple:
        return (*self._structure(), *self._hyperparameters().values())

    def _hyperparameters(self) -> dict[str, float]:
        """The numeric hyperparameters this model's structure uses, by name."""
        out = {"prior_scale": self.prior_scale}
        if self.learns_noise:
            out["noise_shape"] = self.noise_shape
        else:
            out["noise_std"] = self.noise_std
        if self._has_floor:
            out["noise_floor"] = self.noise_floor
        return out

    def _with_hyperparameters(self, values: dict[str, Any]) -> BayesianMLP:
        """A copy of this model with other hyperparameter values, e.g. tracers inside a
        compiled program (one program then serves every prior scale, noise prior and floor).
        No validation: the values may be traced."""
        model = object.__new__(type(self))
        model.__dict__.update(self.__dict__)
        for name, value in values.items():
            setattr(model, name, value)
        scale = values["prior_scale"]
        if isinstance(scale, float):  # as __init__ computes it: in float64, then cast
            model._weight_std = jnp.asarray(self._unit_std * scale)
        else:
            model._weight_std = jnp.asarray(self._unit_std, dtype=jnp.result_type(scale)) * scale
        return model

    def __eq__(self, other: object) -> bool:
        # Equal models give the same densities: a compiled sampler for one is reused for the
        # other (the model is the static part of a Posterior pytree).
        if not isinstance(other, BayesianMLP):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        # No truth test of a value: inside a compiled program the values are tracers.
        noise = (
            f"noise_shape={self.noise_shape}"
            if self.learns_noise
            else f"noise_std={self.noise_std}"
        )
        hetero = ", heteroscedastic=True" if self.heteroscedastic else ""
        floor = f", noise_floor={self.noise_floor}" if self._has_floor else ""
        return (
            f"BayesianMLP(layer_sizes={self.layer_sizes}, activation={self.activation!r}, "
            f"prior={self.prior!r}, prior_scale={self.prior_scale}, {noise}{hetero}{floor})"
        )


@jax.tree_util.register_pytree_node_class
class Posterior:
    """The posterior of a :class:`BayesianMLP` given data ``(X, y)``.

    All methods take flat positions of shape ``(dim,)`` and are pure JAX functions,
    safe to ``jit``, ``grad`` and ``vmap``.

    A ``Posterior`` is a pytree whose leaves are the data ``(X, y)`` and the model's numeric
    hyperparameters (prior scale, noise prior, fixed noise level, noise floor), and whose
    static part is the rest of the model (layers, activation, prior family, noise model).
    Passed as an argument to a jitted function, the data and hyperparameters are traced, so
    one compiled program serves every data set of the same shape and every prior scale
    (e.g. the splits of a benchmark and the candidates of an evidence selection) instead of
    being rebuilt with them baked in as constants.

    With a ``data_chunk`` (see :meth:`with_data_chunk`) the network is evaluated on that
    many rows at a time and its activations are recomputed in the backward pass, so that
    the memory of a gradient grows with the chunk rather than with the data set. The chunk
    is static, next to the model, in the pytree's auxiliary data.
    """

    def __init__(
        self, model: BayesianMLP, X: Any, y: Any, *, data_chunk: int | None = None
    ) -> None:
        X = as_float_matrix(X, "X")
        y = as_float_matrix(y, "y")
        d_in, d_out = model.layer_sizes[0], model.layer_sizes[-1]
        if X.shape[1] != d_in:
            raise ValueError(f"X has {X.shape[1]} columns but layer_sizes[0] is {d_in}")
        if y.shape[1] != d_out:
            raise ValueError(f"y has {y.shape[1]} columns but layer_sizes[-1] is {d_out}")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        self.model = model
        self._hyper = _hyper_leaves(model)
        self.X = jnp.asarray(X, dtype=jnp.result_type(float))
        self.y = jnp.asarray(y, dtype=jnp.result_type(float))
        self.num_data = int(X.shape[0])
        self.dim = model.dim
        self.data_chunk = _check_data_chunk(data_chunk, self.num_data)

    def with_data_chunk(self, chunk: int | None) -> Posterior:
        """The same posterior, its likelihood evaluated ``chunk`` data rows at a time.

        The values are those of the unchunked posterior up to float rounding. The network
        runs on one chunk after another (a ``lax.map``) with each chunk's body under
        ``jax.checkpoint``: a reverse-mode gradient keeps the activations of one chunk at a
        time, ``O(chunk x width)`` per particle instead of ``O(n x width)``, for the cost of
        a second forward pass through the network.

        Parameters
        ----------
        chunk : int or None
            Rows per chunk, a positive integer; ``None``, or a chunk of at least
            ``num_data`` rows, evaluates all rows at once (stored as ``None``).

        Returns
        -------
        Posterior
            A new posterior sharing this one's data arrays and model.

        Raises
        ------
        TypeError, ValueError
            If ``chunk`` is not ``None`` or a positive integer.
        """
        chunk = _check_data_chunk(chunk, self.num_data)
        post = object.__new__(Posterior)
        post.__dict__.update(self.__dict__)
        post.data_chunk = chunk
        return post

    def logprior(self, position: Array) -> Array:
        """Log prior density."""
        return self.model.logprior(position)

    def loglikelihood_per_datum(self, position: Array) -> Array:
        """Log-likelihood of each data point, shape ``(num_data,)``."""
        chunk = self.data_chunk
        n = self.X.shape[0]
        if chunk is None or chunk >= n:
            return self.model.loglikelihood_per_datum(position, self.X, self.y)
        return _chunked_loglikelihood(self.model, chunk, position, self.X, self.y)

    def loglikelihood(self, position: Array) -> Array:
        """Total log-likelihood."""
        return jnp.sum(self.loglikelihood_per_datum(position))

    def logdensity(self, position: Array) -> Array:
        """Unnormalised log posterior density: log prior + log-likelihood."""
        return self.logprior(position) + self.loglikelihood(position)

    def weighted_logdensity(self, position: Array, weights: Array) -> Array:
        """``log p(theta) + sum_i w_i log p(y_i | theta)`` for per-datum weights ``w``.

        ``w = lambda * ones`` is geometric tempering; a 0/1 mask is data annealing.
        """
        return self.logprior(position) + jnp.dot(weights, self.loglikelihood_per_datum(position))

    def sample_prior(self, key: Array, num_samples: int | None = None) -> Array:
        """Draw positions from the prior."""
        return self.model.sample_prior(key, num_samples)

    def __call__(self, position: Array) -> Array:
        return self.logdensity(position)

    # -- pytree -------------------------------------------------------------------------------
    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[_Structure, int | None]]:
        # The chunk is static (it sets the shapes of the compiled loop); the data and the
        # hyperparameters are not.
        return (self.X, self.y, self._hyper), (_Structure(self.model), self.data_chunk)

    @classmethod
    def tree_unflatten(cls, aux: tuple[_Structure, int | None], children: tuple) -> Posterior:
        # No validation: the leaves may be tracers or placeholders (jax.tree transforms).
        structure, data_chunk = aux
        post = object.__new__(cls)
        post.X, post.y, post._hyper = children
        post.model = _model_with(structure.model, post._hyper)
        post.data_chunk = data_chunk
        shape = getattr(post.X, "shape", None)
        post.num_data = int(shape[0]) if shape else 0
        post.dim = post.model.dim
        return post


class _Structure:
    """A model as the static part of a :class:`Posterior` pytree: equal when the structures
    are (the hyperparameters are leaves), so that one compiled program serves them all."""

    __slots__ = ("model", "_key")

    def __init__(self, model: BayesianMLP) -> None:
        self.model = model
        self._key = model._structure()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Structure) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"_Structure({self.model!r})"


def _hyper_leaves(model: BayesianMLP) -> dict[str, Array]:
    dtype = jnp.result_type(float)
    return {k: jnp.asarray(v, dtype=dtype) for k, v in model._hyperparameters().items()}


def _model_with(model: BayesianMLP, leaves: Any) -> BayesianMLP:
    """``model`` with the hyperparameters held in a Posterior's ``leaves``.

    Traced leaves give a model whose densities read them (a Python branch on a value then
    fails loudly instead of baking in another model's constant); concrete leaves that
    hold ``model``'s own values give ``model`` itself; other concrete values give a copy
    with those values; placeholders (shapes, shardings) leave ``model`` as it is.
    """
    own = model._hyperparameters()
    if not isinstance(leaves, dict) or set(leaves) != set(own):
        return model
    values = list(leaves.values())
    if any(isinstance(v, jax.core.Tracer) for v in values):
        return model._with_hyperparameters(leaves)
    if not all(isinstance(v, jax.Array | np.ndarray | float) and np.size(v) == 1
               for v in values):  # fmt: skip
        return model
    arrays = {k: np.asarray(v) for k, v in leaves.items()}
    if all(a == np.asarray(own[k], dtype=a.dtype) for k, a in arrays.items()):
        return model
    return model._with_hyperparameters({k: float(np.asarray(v)) for k, v in leaves.items()})


def _check_data_chunk(chunk: Any, num_data: int) -> int | None:
    """``chunk`` as a positive int, or ``None`` when absent or covering all ``num_data`` rows."""
    if chunk is None:
        return None
    chunk = positive_int(chunk, "data_chunk")
    return None if chunk >= num_data else chunk


def _chunked_loglikelihood(
    model: BayesianMLP, chunk: int, position: Array, X: Array, y: Array
) -> Array:
    """``model.loglikelihood_per_datum`` over ``chunk`` rows at a time, ``chunk < n``.

    The ``n // chunk`` full chunks go through a ``lax.map``; the ``n % chunk`` rows left
    over, if any, are one more call. No padding: padded rows would cost network
    evaluations, and a non-finite output on a padding row would turn the gradient into
    NaN even after being sliced away (0 * inf).
    """
    n = X.shape[0]
    num_full = n // chunk
    split = num_full * chunk

    # Under checkpoint only the body's inputs are kept for the backward pass; each chunk's
    # activations are recomputed there. prevent_cse=False is safe inside a loop (lax.map)
    # and lets XLA keep its usual optimisations.
    @functools.partial(jax.checkpoint, prevent_cse=False)
    def body(theta: Array, xb: Array, yb: Array) -> Array:
        return model.loglikelihood_per_datum(theta, xb, yb)

    Xs = X[:split].reshape(num_full, chunk, X.shape[1])
    ys = y[:split].reshape(num_full, chunk, y.shape[1])
    full = jax.lax.map(lambda xy: body(position, xy[0], xy[1]), (Xs, ys)).reshape(split)
    if split == n:
        return full
    return jnp.concatenate([full, body(position, X[split:], y[split:])])
