"""Writing a run's outputs: an atomic output directory, summary.json, predictions.csv,
posterior.nc (ArviZ InferenceData) and config.toml."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langevin_nets.io.config import InputError

# Above this many (draw, data point) pairs, posterior.nc leaves out the pointwise groups.
MAX_POINTWISE = 20_000_000


# -- the output directory -------------------------------------------------------------------


def default_out_dir(base: str | os.PathLike = "runs") -> Path:
    """``runs/<timestamp>``, with a suffix if that already exists."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    p = Path(base) / stamp
    k = 1
    while p.exists():
        p = Path(base) / f"{stamp}-{k}"
        k += 1
    return p


class OutputDir:
    """An output directory written atomically.

    :meth:`check` fails early (before any work) if the path cannot be used;
    :meth:`staging` yields a temporary directory beside the target and renames it
    into place only when the block finishes without an exception, so a failed run
    leaves nothing behind.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.overwrite = overwrite

    def check(self) -> None:
        """Raise :class:`InputError` if the directory cannot be written."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise InputError(
                f"output path {str(p)!r} is a file, not a directory; choose another --out"
            )
        if p.is_dir() and any(p.iterdir()) and not self.overwrite:
            raise InputError(
                f"output directory {str(p)!r} already exists and is not empty; "
                "choose another --out or pass --overwrite"
            )
        # The nearest existing ancestor must be a writable directory.
        anc = p.parent
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise InputError(
                f"cannot create output directory {str(p)!r}: {str(anc)!r} is a file; "
                "choose another --out"
            )
        if not os.access(anc, os.W_OK | os.X_OK):
            raise InputError(
                f"cannot create output directory {str(p)!r}: {str(anc)!r} is not writable; "
                "choose another --out"
            )

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """Yield a temporary directory; on success it becomes :attr:`path`."""
        self.check()
        created: list[Path] = []
        parent = self.path.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for m in reversed(missing):
            m.mkdir()
            created.append(m)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
        try:
            yield tmp
            self._commit(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            for c in reversed(created):
                with contextlib.suppress(OSError):
                    c.rmdir()
            raise

    def _commit(self, tmp: Path) -> None:
        target = self.path
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir():
            if any(target.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.rmdir(old)
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
                return
            target.rmdir()
        os.rename(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- JSON -------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become null (they are not valid JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return str(obj)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def environment() -> dict[str, Any]:
    """Package, JAX and device information for the summary.

    ``device_count`` and ``devices_available`` are the devices JAX sees (over all
    processes); a summary replaces ``device_count`` by the devices a run used.
    """
    import platform

    import jax

    import langevin_nets

    devices = jax.devices()
    return {
        "langevin_nets_version": langevin_nets.__version__,
        "jax_version": jax.__version__,
        "python_version": platform.python_version(),
        "platform": devices[0].platform if devices else None,
        "device_count": jax.device_count(),
        "devices_available": jax.device_count(),
        "process_count": jax.process_count(),
        "x64": bool(jax.config.jax_enable_x64),
    }


# -- predictions.csv ---------------------------------------------------------------------------


def _fmt(v: float, digits: int | None = None) -> str:
    """Inputs as read (shortest round-trip repr); model outputs to float32 precision."""
    v = float(v)
    if not math.isfinite(v):
        return ""
    return repr(v) if digits is None else f"{v:.{digits}g}"


def write_predictions(
    path: Path,
    X: np.ndarray,
    feature_names: Sequence[str],
    pred: Any,
    y: np.ndarray | None = None,
    target_name: str = "y",
) -> None:
    """One row per input: the inputs, the target if known, mean, std, lower_90, upper_90."""
    cols = [*feature_names]
    if y is not None:
        cols.append(target_name)
    cols += ["mean", "std", "lower_90", "upper_90"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(X.shape[0]):
            row = [_fmt(v) for v in X[i]]
            if y is not None:
                row.append(_fmt(y[i]))
            row += [_fmt(a[i], 9) for a in (pred.mean, pred.std, pred.lower, pred.upper)]
            w.writerow(row)


# -- posterior.nc --------------------------------------------------------------------------------


@functools.cache
def _per_draw_program() -> Any:
    """One jitted ``(posterior, draws, pointwise) -> (sigma, log prior, log-likelihood per
    datum or None)`` for every draw. The posterior is an argument (data and
    hyperparameters traced): fits of one model structure and data shape share it."""
    import jax

    @functools.partial(jax.jit, static_argnums=2)
    def per_draw(posterior: Any, flat: Any, pointwise: bool) -> Any:
        sigma = jax.vmap(posterior.model.sigma)(flat)
        lp = jax.vmap(posterior.logprior)(flat)
        ll = jax.vmap(posterior.loglikelihood_per_datum)(flat) if pointwise else None
        return sigma, lp, ll

    return per_draw


def _mean_and_noise(model: Any, flat: np.ndarray, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and noise level of the first output for each draw: two ``(draws, n)`` arrays,
    from the predictive's own compiled program (cached on the model)."""
    from langevin_nets.predict import predict

    pred = predict(model, flat, X)
    return np.asarray(pred.samples[..., 0]), np.asarray(pred.noise[..., 0])


def inference_data(result: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray | None) -> Any:
    """An ArviZ InferenceData of a :class:`~langevin_nets.fit.FitResult`.

    Groups: ``posterior`` (``sigma`` and ``W_l``/``b_l`` in standardised units, plus
    ``sigma_y``, the noise level in the target's units), ``sample_stats``,
    ``log_likelihood`` and ``posterior_predictive`` (training data, original units),
    ``observed_data``, ``constant_data`` (training inputs and the standardisation),
    and ``predictions`` (test inputs) when there is a test set. SMC particles are
    resampled to equal weights (systematic resampling) and stored as one chain.
    """
    import arviz as az
    import jax.numpy as jnp

    model = result.model
    draws = np.asarray(result.draws)  # (chains, draws, dim)
    C, D, dim = draws.shape
    post = model.constrained(draws)
    coords: dict[str, Any] = {}
    dims: dict[str, list[str]] = {}
    layer_sizes = model.layer_sizes
    for layer in range(len(layer_sizes) - 1):
        a, b = f"layer{layer}_in", f"layer{layer}_out"
        dims[f"W_{layer}"] = [a, b]
        dims[f"b_{layer}"] = [b]
        coords[a] = np.arange(layer_sizes[layer])
        # The network's own width: a heteroscedastic model's last layer has 2 * d_out.
        coords[b] = np.arange(post[f"b_{layer}"].shape[-1])
    coords["layer0_in"] = list(result.feature_names)
    s_y, m_y = float(result.y_scaler.scale[0]), float(result.y_scaler.mean[0])
    flat = draws.reshape(C * D, dim)
    Xs = jnp.asarray(result.x_scaler.transform(X), dtype=flat.dtype)
    ys = jnp.asarray(result.y_scaler.transform(y[:, None]), dtype=flat.dtype)
    n = X.shape[0]
    pointwise = C * D * n <= MAX_POINTWISE
    sigma, lp, ll = _per_draw_program()(model.posterior(Xs, ys), jnp.asarray(flat), pointwise)
    sigma = np.asarray(sigma).reshape(C, D)
    post["sigma_y"] = sigma * s_y
    groups: dict[str, Any] = {}
    sample_stats: dict[str, Any] = {}
    lp = np.asarray(lp).reshape(C, D)
    if pointwise:
        ll = np.asarray(ll).reshape(C, D, n) - math.log(s_y)
        mu, noise = _mean_and_noise(model, flat, Xs)
        rng = np.random.default_rng(result.config["seed"])
        y_rep = (mu + noise * rng.standard_normal(mu.shape)) * s_y + m_y
        groups["log_likelihood"] = {result.target_name: ll}
        groups["posterior_predictive"] = {result.target_name: y_rep.reshape(C, D, n)}
        sample_stats["lp"] = lp + ll.sum(axis=-1)
    sample_stats["log_prior"] = lp
    if result.particles is None and result.raw is not None:
        acc = np.asarray(result.raw.acceptance_rate).reshape(C, D)
        sample_stats["acceptance_rate"] = acc
    if getattr(result, "ancestors", None) is not None:
        sample_stats["particle_index"] = np.asarray(result.ancestors).reshape(C, D)
    dims[result.target_name] = ["obs"]
    coords["obs"] = np.arange(n)
    observed = {result.target_name: y}
    constant = {
        "X": X,
        "x_mean": result.x_scaler.mean,
        "x_scale": result.x_scaler.scale,
        "y_mean": np.asarray(m_y),
        "y_scale": np.asarray(s_y),
    }
    dims.update({"X": ["obs", "feature"], "x_mean": ["feature"], "x_scale": ["feature"]})
    coords["feature"] = list(result.feature_names)
    kwargs: dict[str, Any] = {}
    if X_test is not None and C * D * X_test.shape[0] <= MAX_POINTWISE:
        # Predictions follow the stored (equal-weight) draws.
        Xt = jnp.asarray(result.x_scaler.transform(X_test), dtype=flat.dtype)
        mu_t, noise_t = _mean_and_noise(model, flat, Xt)
        rng = np.random.default_rng(result.config["seed"] + 1)
        y_new = (mu_t + noise_t * rng.standard_normal(mu_t.shape)) * s_y + m_y
        kwargs["predictions"] = {result.target_name: y_new.reshape(C, D, -1)}
        kwargs["pred_dims"] = {result.target_name: ["test_obs"]}
        kwargs["pred_coords"] = {"test_obs": np.arange(X_test.shape[0])}
        kwargs["predictions_constant_data"] = {"X_test": X_test}
        dims["X_test"] = ["test_obs", "feature"]
    attrs = {
        "method": result.method,
        "units": "W_l, b_l and sigma are in standardised units (see constant_data); "
        "sigma_y, log_likelihood, posterior_predictive and predictions are in the "
        "target's original units",
        "weights": "SMC particles resampled to equal weights (systematic resampling), "
        "one chain; Langevin draws are equal-weight, one chain per chain",
    }
    idata = az.from_dict(
        posterior=post,
        sample_stats=sample_stats,
        observed_data=observed,
        constant_data=constant,
        coords=coords,
        dims=dims,
        posterior_attrs=attrs,
        sample_stats_attrs={"weights": attrs["weights"]},
        **groups,
        **kwargs,
    )
    return idata


def write_posterior(path: Path, idata: Any) -> None:
    idata.to_netcdf(str(path))


def config_toml_text(config: Mapping[str, Any], command: str) -> str:
    from langevin_nets.io.config import to_toml

    header = (
        f"Effective configuration of `langevin-nets {command}`; rerun with\n"
        f"  langevin-nets {command} --config config.toml\n"
        "Keys not set were left to the program (its choices are under resolved in summary.json)."
    )
    return to_toml(config, header)
