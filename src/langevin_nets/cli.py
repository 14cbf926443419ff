"""The ``langevin-nets`` command: ``fit`` a CSV file, run the ``uci`` benchmark, or the ``demo``.

Exit status: 0 on success; 2 for bad input (options, data or config files), with one
``error:`` line on stderr; 1 when the run itself fails (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langevin_nets.io.config import (
    DEFAULTS,
    FIT_KEYS,
    MODEL_KEYS,
    OPTION_BY_NAME,
    OPTIONS,
    PARALLEL_KEYS,
    PROCESS_KEYS,
    UCI_DEFAULTS,
    UCI_KEYS,
    InputError,
    InputTypeError,
    describe_candidate,
    ignored_options,
    load_toml,
    select_candidates,
    validate,
    varied_options,
)

PROG = "langevin-nets"
UCI_ENV = "LANGEVIN_NETS_UCI_DIR"
# The UCI protocol's network: one hidden layer of n_hidden.txt units with this activation
# (the published PBP / MC-dropout / deep-ensemble runs used ReLU).
UCI_ACTIVATION = UCI_DEFAULTS["activation"]


class UsageError(Exception):
    """An argparse usage error, reported as one ``error:`` line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see '{self.prog} --help'")


# -- parser -----------------------------------------------------------------------------------

_GROUP_TITLES = {
    "data": "data",
    "model": "model",
    "method": "method",
    "smc": "SMC (smc-adaptive, smc-data, smc-geometric)",
    "langevin": "Langevin",
    "kernel": "BAOAB moves (all methods)",
    "run": "run",
    "selection": "model selection by the log evidence",
    "parallel": "devices and processes",
    "uci": "UCI",
}


# Boolean options given as plain flags (no --no-X form).
_FLAGS = ("quiet", "overwrite", "resume")
# A run's checkpoint: CHECKPOINT_NAME.npz and .json in the output directory (see cmd_fit).
CHECKPOINT_NAME = "checkpoint"


def _default_text(opt: Any) -> str:
    d = opt.default
    if d is None:
        return "automatic" if opt.group not in ("data",) else "none"
    if opt.kind == "hidden":
        return ",".join(str(h) for h in d)
    return str(d)


def _add_options(parser: argparse.ArgumentParser, keys: Sequence[str], command: str) -> None:
    groups: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.name not in keys or opt.name == "splits":
            continue
        grp = groups.get(opt.group)
        if grp is None:
            grp = groups[opt.group] = parser.add_argument_group(_GROUP_TITLES[opt.group])
        help_text = opt.help
        if opt.choices:
            help_text += f"; one of {', '.join(opt.choices)}"
        if command == "uci" and opt.name == "hidden":
            help_text += " (default: one layer of n_hidden.txt units)"
        elif command == "uci" and opt.name in UCI_DEFAULTS:
            help_text += f" (default: {UCI_DEFAULTS[opt.name]})"
        elif command == "uci" and opt.name == "out":
            help_text = "output directory (default: runs/uci-NAME/<timestamp>)"
        elif "(default" not in help_text and opt.group != "data" and opt.kind != "bool" or (
            opt.kind == "bool" and opt.name not in _FLAGS
        ):
            help_text += f" (default: {_default_text(opt)})"
        if opt.kind == "select":
            grp.add_argument(opt.flag, dest=opt.name, action="append", default=argparse.SUPPRESS,
                             metavar=opt.metavar, help=help_text)  # fmt: skip
        elif opt.kind == "bool" and opt.name in _FLAGS:
            grp.add_argument(opt.flag, action="store_true", default=argparse.SUPPRESS,
                             help=help_text)  # fmt: skip
        elif opt.kind == "bool":
            grp.add_argument(opt.flag, action=argparse.BooleanOptionalAction,
                             default=argparse.SUPPRESS, help=help_text)  # fmt: skip
        else:
            grp.add_argument(opt.flag, dest=opt.name, default=argparse.SUPPRESS,
                             metavar=opt.metavar or opt.name.upper(), help=help_text)  # fmt: skip
    run = groups["run"]
    run.add_argument("--config", metavar="FILE.toml", default=None,
                     help="read options from a TOML file (long option names as keys, dashes "
                     "or underscores); options on the command line win")  # fmt: skip
    run.add_argument("--debug", action="store_true", help="show the traceback of internal errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``langevin-nets``."""
    from langevin_nets import __version__

    parser = _Parser(
        prog=PROG,
        description="Bayesian neural networks for regression, sampled with BAOAB Langevin "
        "dynamics and Sequential Monte Carlo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fitp = sub.add_parser(
        "fit", help="fit a Bayesian MLP to a CSV file",
        description="Fit a Bayesian MLP to a CSV file (header row; target: last column by "
        "default) and write summary.json, predictions.csv, posterior.nc, report.png and "
        "config.toml to --out.",
    )  # fmt: skip
    _add_options(fitp, FIT_KEYS, "fit")
    fitp.set_defaults(handler=cmd_fit)

    ucip = sub.add_parser(
        "uci", help="run the standard UCI regression protocol",
        description="Fit one UCI data set on its standard train/test splits (one hidden layer "
        f"of n_hidden.txt units, {UCI_ACTIVATION}, training-set standardisation) and report "
        "test RMSE and log-likelihood per split and as mean +- standard error. Data: "
        f"--data-dir, else ${UCI_ENV}, else ../shared/data/uci.",
    )  # fmt: skip
    ucip.add_argument("name", help="data set, e.g. boston, concrete, energy, yacht")
    which = ucip.add_mutually_exclusive_group()
    which.add_argument("--split", dest="split", default=argparse.SUPPRESS, metavar="K",
                       help="run split K only")  # fmt: skip
    which.add_argument("--splits", dest="splits", default=argparse.SUPPRESS, metavar="SPEC",
                       help=OPTION_BY_NAME["splits"].help + " (default: all)")  # fmt: skip
    _add_options(ucip, UCI_KEYS, "uci")
    ucip.set_defaults(handler=cmd_uci)

    demop = sub.add_parser("demo", help="fit the toy problem with every method",
                           description="Fit the toy problem with every method and write the "
                           "comparison to --out.")  # fmt: skip
    demop.add_argument("--out", default="demo_out", metavar="DIR",
                       help="output directory (default: demo_out)")
    demop.add_argument("--seed", default="0", metavar="N", help="random seed (default: 0)")
    demop.add_argument("--quick", action="store_true", help="a smaller, faster run")
    demop.add_argument("--quiet", action="store_true", help="no progress output")
    demop.add_argument("--debug", action="store_true", help="show the traceback of errors")
    demop.set_defaults(handler=cmd_demo)
    return parser


# -- shared steps ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _gather(args: argparse.Namespace, keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge the config file (if any) and the command line; the command line wins."""
    cli = {k: v for k, v in vars(args).items() if k in keys}
    options: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if getattr(args, "config", None):
        options = load_toml(args.config, tuple(keys))
        sources = {k: args.config for k in options}
    for k, v in cli.items():
        options[k] = v
        sources.pop(k, None)
    return options, sources


def _warn(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"warning: {msg}", file=sys.stderr)


def _warn_ignored(cfg: dict[str, Any], given: set[str]) -> None:
    for k in ignored_options(cfg, given):
        _warn(f"{OPTION_BY_NAME[k].flag} is not used by --method {cfg['method']} (ignored)",
              cfg["quiet"])  # fmt: skip


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


@contextlib.contextmanager
def _quiet_warnings() -> Any:
    with warnings.catch_warnings():
        # ArviZ announces its refactor with a FutureWarning on import.
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextlib.contextmanager
def _discrete_target_said(y: Any, cfg: dict[str, Any], quiet: bool, say: bool = True
                          ) -> Any:  # fmt: skip
    """Say fit's discrete-target warning as one ``warning:`` line (when ``say``), and keep
    fit from repeating it as a Python warning."""
    from langevin_nets.fit import DiscreteTargetWarning, discrete_target_message

    message = discrete_target_message(y, cfg["heteroscedastic"], cfg["noise_floor"])
    if message is not None and say:
        _warn(message, quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscreteTargetWarning)
        yield


def _model_kwargs(cfg: dict[str, Any], devices: int | None) -> dict[str, Any]:
    """fit()'s keyword arguments; ``devices`` resolved by :func:`_start_processes`."""
    kw = {k: cfg[k] for k in (*MODEL_KEYS, *PARALLEL_KEYS)}
    kw["devices"] = devices
    kw["seed"] = cfg["seed"]
    return kw


def _is_main(cfg: dict[str, Any]) -> bool:
    """Whether this process writes the outputs: process 0, or the only process."""
    return cfg.get("process_id") in (None, 0)


def _start_processes(cfg: dict[str, Any]) -> int | None:
    """Join the multi-process run given by --coordinator/--num-processes/--process-id,
    then resolve --devices (all: the devices of every process), check it and return it.

    Called after every input check that needs no JAX, so that bad input stops each
    process alike before any of them waits for the others, and before JAX starts.
    """
    if cfg.get("coordinator") is not None:
        from langevin_nets import distributed

        distributed.initialize(cfg["coordinator"], cfg["num_processes"], cfg["process_id"])
    from langevin_nets.fit import SMC_SCHEDULES, resolve_devices

    if cfg["devices"] is None and cfg["method"] in SMC_SCHEDULES:
        import jax

        n = jax.device_count()
        if n > 1 and cfg["particles"] % n:
            # The engine's default would say so with a Python warning: one line instead.
            _warn(f"--particles {cfg['particles']} is not divisible by the {n} devices; "
                  f"running on one device (choose a multiple of {n}, or --devices)",
                  cfg["quiet"])  # fmt: skip
            return 1
    return resolve_devices(cfg["devices"], cfg["method"], cfg["particles"], "cli")


def _process_checkpoint(
    ckpt: str | None, cfg: dict[str, Any], main_process: bool
) -> tuple[str | None, str | None]:
    """This process's checkpoint path, and a scratch folder to remove after the run.

    In a multi-process run every process takes part in saving a checkpoint (the particles
    are gathered from all of them) and saves a copy. Process 0 keeps its copy in --out;
    the others save theirs in a scratch folder of their own, so that only process 0
    writes to --out. With --resume they start from process 0's checkpoint, sent to them
    over the run's own connection (no shared file system needed).
    """
    if ckpt is None or (cfg.get("num_processes") or 1) == 1:
        return ckpt, None
    import numpy as np
    from jax.experimental import multihost_utils

    from langevin_nets import checkpoint as ckpt_io

    files = ckpt_io.paths(ckpt)
    blobs = [b"", b""]
    if main_process and cfg["resume"] and all(f.is_file() for f in files):
        blobs = [f.read_bytes() for f in files]
    sizes = np.array([len(b) for b in blobs], np.int32)
    sizes = np.asarray(multihost_utils.broadcast_one_to_all(sizes))
    payload = b""
    if sizes.sum() > 0:
        buf = np.frombuffer(b"".join(blobs), np.uint8) if main_process else (
            np.zeros(int(sizes.sum()), np.uint8)
        )  # fmt: skip
        payload = np.asarray(multihost_utils.broadcast_one_to_all(buf)).tobytes()
    if main_process:
        return ckpt, None
    scratch = tempfile.mkdtemp(prefix=f"langevin-nets-p{cfg['process_id']}-")
    own = str(Path(scratch) / CHECKPOINT_NAME)
    if payload:
        cut = int(sizes[0])
        for f, part in zip(ckpt_io.paths(own), (payload[:cut], payload[cut:]), strict=True):
            f.write_bytes(part)
    return own, scratch


def _stop_processes(cfg: dict[str, Any]) -> None:
    """Leave the multi-process run (waits until every process gets here)."""
    if cfg.get("coordinator") is not None:
        from langevin_nets import distributed

        distributed.shutdown()


def _fmt(v: Any, spec: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


# -- fit -------------------------------------------------------------------------------------


def cmd_fit(args: argparse.Namespace) -> int:
    """``langevin-nets fit``.

    Checkpoints (``--checkpoint-every K`` or ``--resume``) are written to
    ``checkpoint.npz`` and ``checkpoint.json`` in the output directory itself, created for
    them at the first save, so that a killed run can be found and continued with
    ``--resume`` and the same ``--out``. The other outputs are still written to a staging
    directory and renamed into place at the end, which replaces the directory and so
    removes the checkpoint: a finished run leaves only its outputs. A refused resume
    (other options or data) changes nothing.
    """
    from langevin_nets.io.csv_data import load_dataset
    from langevin_nets.io.outputs import OutputDir, default_out_dir

    options, sources = _gather(args, FIT_KEYS)
    cfg = validate(options, keys=FIT_KEYS, style="cli", sources=sources)
    if cfg["data"] is None:
        raise InputError("no training data: give --data FILE.csv (or data = ... in --config)")
    cfg["data"] = _abs(cfg["data"])
    cfg["test"] = _abs(cfg["test"])
    checkpointing = cfg["checkpoint_every"] is not None or cfg["resume"]
    main_process = _is_main(cfg)
    if not main_process:
        cfg["quiet"] = True  # process 0 reports for all
    out = OutputDir(cfg["out"] or default_out_dir(), overwrite=cfg["overwrite"])
    if _only_checkpoint(out.path) and not out.overwrite:
        if not cfg["resume"]:
            raise InputError(
                f"output directory {str(out.path)!r} holds the checkpoint of an unfinished "
                "run; pass --resume to continue it, or --overwrite to start afresh"
            )
        out.overwrite = True  # the directory holds this run's checkpoint, nothing else
    if cfg["resume"] and not out.overwrite and out.path.is_dir() and any(out.path.iterdir()):
        raise InputError(
            f"--resume: output directory {str(out.path)!r} holds no checkpoint to continue "
            "(and is not empty); choose another --out, or pass --overwrite to replace it"
        )
    out.check()
    cfg["out"] = str(out.path)
    ckpt = str(out.path / CHECKPOINT_NAME) if checkpointing else None
    ds = load_dataset(cfg["data"], cfg["target"], cfg["features"], cfg["test"])
    X, y, X_test, y_test = ds.X, ds.y, ds.X_test, ds.y_test
    split_info = None
    if cfg["test_fraction"] is not None:
        X, y, X_test, y_test, split_info = _holdout(X, y, cfg["test_fraction"], cfg["seed"])
    _warn_ignored(cfg, set(options))

    from langevin_nets.fit import fit, import_smc

    if cfg["method"] != "langevin":
        import_smc()
    devices = _start_processes(cfg)
    if ckpt is not None and not cfg["resume"] and main_process:
        # --overwrite without --resume: an old checkpoint there is not to be continued.
        from langevin_nets.checkpoint import remove

        remove(ckpt)
    from langevin_nets.checkpoint import CheckpointError

    own_ckpt, scratch = _process_checkpoint(ckpt, cfg, main_process)
    selection: dict[str, Any] | None = None
    try:
        # Process 0 speaks for all.
        with _discrete_target_said(y, cfg, cfg["quiet"] or not main_process):
            if cfg["select"]:
                result, selection = _fit_selected(
                    cfg, devices, X, y, X_test, y_test, cfg["quiet"],
                    feature_names=ds.features, target_name=ds.target,
                )
            else:
                result = fit(X, y, X_test, y_test, **_model_kwargs(cfg, devices),
                             progress=not cfg["quiet"], feature_names=ds.features,
                             target_name=ds.target, checkpoint=own_ckpt,
                             checkpoint_every=cfg["checkpoint_every"],
                             resume=cfg["resume"])  # fmt: skip
    except CheckpointError as e:
        raise InputError(f"{e} (--resume)") from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if not main_process:
        _stop_processes(cfg)
        return 0
    if ckpt is not None and _only_checkpoint(out.path):
        out.overwrite = True  # the checkpoint goes when the outputs take the directory
    if result.sampler.get("hit_max_stages"):
        _warn("SMC stopped at its stage cap before reaching the posterior; the results are "
              "for an intermediate target", cfg["quiet"])  # fmt: skip
    data_info = {
        "train_file": ds.train_path,
        "test_file": ds.test_path,
        "test_fraction_split": split_info,
        "target": ds.target,
        "features": list(ds.features),
        "n_train": int(X.shape[0]),
        "n_test": None if X_test is None else int(X_test.shape[0]),
    }
    with _quiet_warnings():
        _write_fit_outputs(out, cfg, result, X, y, X_test, y_test, data_info, selection)
    _stop_processes(cfg)
    if not cfg["quiet"]:
        _print_fit(result, out.path)
        if selection is not None:
            chosen = selection["candidates"][selection["chosen_index"]]
            print(f"  chosen by the log evidence: {chosen['description']} (candidate "
                  f"{selection['chosen_index'] + 1} of {len(selection['candidates'])})")
    return 0


def _fit_selected(
    cfg: dict[str, Any], devices: int | None, X: Any, y: Any, X_test: Any, y_test: Any,
    quiet: bool, **fit_options: Any,
) -> tuple[Any, dict[str, Any]]:
    """``--select``: every candidate fit, the highest training log evidence kept.

    Returns the chosen fit and the ``selection`` record (summary.json, results.json).
    """
    from langevin_nets.selection import select_by_evidence

    candidates = select_candidates(cfg["select"])
    if not quiet:
        print(f"  {len(candidates)} candidates (--select), compared by the log evidence on "
              "the training data:")  # fmt: skip

    def report(i: int, _: dict[str, Any], res: Any) -> None:
        if not quiet:
            print(f"    {i + 1}/{len(candidates)} {describe_candidate(candidates[i])}: log "
                  f"evidence {_fmt(res.log_evidence, '.6g')} ({res.wall_seconds:.1f} s)",
                  flush=True)  # fmt: skip

    from langevin_nets.errors import DivergenceError

    try:
        sel = select_by_evidence(
            X, y, X_test, y_test, candidates=candidates, on_fit=report,
            **_model_kwargs(cfg, devices), progress=not quiet, **fit_options,
        )  # fmt: skip
    except DivergenceError:
        raise
    except RuntimeError as e:  # no candidate has a finite log evidence
        raise DivergenceError(f"--select: {e}") from None

    def metric(m: Any, name: str) -> Any:
        return None if m is None else getattr(m, name)

    rows = []
    for cand, res, log_z in zip(candidates, sel.fits, sel.log_evidences, strict=True):
        rows.append({
            "description": describe_candidate(cand),
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in cand.items()},
            "log_evidence": log_z if math.isfinite(log_z) else None,
            "train_log_likelihood": metric(res.train, "log_likelihood"),
            "test_log_likelihood": metric(res.test, "log_likelihood"),
            "test_rmse": metric(res.test, "rmse"),
            "wall_seconds": res.wall_seconds,
        })
    selection = {
        "by": "highest log evidence on the training data (target's original units); ties go "
        "to the earlier candidate; the test data play no part",
        "chosen_index": sel.index,
        "chosen": rows[sel.index]["description"],
        "wall_seconds_all_candidates": sum(f.wall_seconds for f in sel.fits),
        "candidates": rows,
    }
    return sel.best, selection


def _only_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a directory holding checkpoint files only (and at least one)."""
    if not path.is_dir():
        return False
    names = [p.name for p in path.iterdir()]
    return bool(names) and all(n.startswith(CHECKPOINT_NAME + ".") for n in names)


def _holdout(X: Any, y: Any, fraction: float, seed: int) -> tuple[Any, ...]:
    import numpy as np

    n = X.shape[0]
    n_test = max(1, round(fraction * n))
    if n - n_test < 2:
        raise InputError(
            f"--test-fraction {fraction} leaves {n - n_test} training row(s) of {n}; "
            "use a smaller fraction or more data"
        )
    perm = np.random.default_rng(seed).permutation(n)
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    info = {"fraction": fraction, "seed": seed, "test_rows": (te + 1).tolist()}
    return X[tr], y[tr], X[te], y[te], info


def _summary(cfg: dict[str, Any], result: Any, data_info: dict[str, Any]) -> dict[str, Any]:
    from langevin_nets.io.outputs import environment

    smc = result.particles is not None
    return {
        **environment(),
        "command": "fit",
        "method": result.method,
        "seed": cfg["seed"],
        "config": cfg,
        "resolved": result.resolved,
        "data": data_info,
        "model": {
            "layer_sizes": list(result.model.layer_sizes),
            "num_parameters": int(result.model.dim),
            "activation": cfg["activation"],
            "prior": cfg["prior"],
            "prior_scale": cfg["prior_scale"],
            "learns_noise": bool(result.model.learns_noise),
            "heteroscedastic": bool(result.model.heteroscedastic),
            # In the target's units; "auto" in the config is resolved here.
            "noise_floor": float(result.resolved.get("noise_floor", 0.0)),
            "standardization": {
                "enabled": cfg["standardize"],
                "x_mean": result.x_scaler.mean,
                "x_scale": result.x_scaler.scale,
                "y_mean": float(result.y_scaler.mean[0]),
                "y_scale": float(result.y_scaler.scale[0]),
            },
        },
        "num_particles": int(result.particles.shape[0]) if smc else None,
        "num_samples": None if smc else result.num_draws,
        "log_evidence": result.log_evidence,
        "log_evidence_standardized": result.log_evidence_standardized,
        "train": None if result.train is None else result.train.as_dict(),
        "test": None if result.test is None else result.test.as_dict(),
        "gradient_evaluations": result.gradient_evaluations,
        "wall_seconds": result.wall_seconds,
        "timings": result.timings,
        **_parallel_info(cfg, result),
        "sampler": result.sampler,
        "checkpoint": result.checkpoint,
        "stages": result.stages,
        "units": "metrics, predictions and log_evidence are in the target's original units",
        "posterior_nc": "SMC particles resampled to equal weights (systematic), one chain"
        if smc
        else "Langevin draws, one chain per --chains",
    }


def _parallel_info(cfg: dict[str, Any], result: Any) -> dict[str, Any]:
    """Devices used (environment() gives those present), processes and chunk settings."""
    return {
        "device_count": int(result.num_devices),
        "process_count": int(result.process_count),
        "particle_chunk": cfg["particle_chunk"],
        "data_chunk": cfg["data_chunk"],
    }


def _write_fit_outputs(
    out: Any, cfg: dict[str, Any], result: Any, X: Any, y: Any, X_test: Any, y_test: Any,
    data_info: dict[str, Any], selection: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    from langevin_nets.io.outputs import (
        inference_data,
        write_json,
        write_posterior,
        write_predictions,
    )
    from langevin_nets.io.report import write_report

    with out.staging() as tmp:
        summary = _summary(cfg, result, data_info)
        if selection is not None:
            summary["config"] = _unvaried(cfg)
            chosen = selection["candidates"][selection["chosen_index"]]["options"]
            # The model section describes the chosen candidate (the rest of it comes from
            # the chosen fit itself).
            summary["model"].update(
                {k: v for k, v in chosen.items() if k in ("activation", "prior", "prior_scale")}
            )
            summary["selection"] = selection
        write_json(tmp / "summary.json", summary)
        if X_test is not None:
            pred = result.predict(X_test, 0.9)
            write_predictions(tmp / "predictions.csv", X_test, result.feature_names, pred,
                              y_test, result.target_name)  # fmt: skip
        else:
            pred = result.predict(X, 0.9)
            write_predictions(tmp / "predictions.csv", X, result.feature_names, pred, y,
                              result.target_name)  # fmt: skip
        write_posterior(tmp / "posterior.nc", inference_data(result, X, y, X_test))
        write_report(tmp / "report.png", result, X, y, X_test, y_test)
        (tmp / "config.toml").write_text(_config_text(cfg, "fit"))


def _config_text(cfg: dict[str, Any], command: str) -> str:
    from langevin_nets.io.outputs import config_toml_text

    # Run settings, not the fit's: the multi-process options differ between processes.
    run_only = ("out", "overwrite", "quiet", "resume", *PROCESS_KEYS)
    # Options varied by select are left out: a rerun varies them again.
    varied = varied_options(cfg.get("select"))
    keep = {k: v for k, v in _unvaried(cfg).items() if k not in run_only}
    if keep.get("noise_std") is not None or "noise_std" in varied:
        # A fixed noise level leaves the noise prior unused, and a rerun refuses both.
        keep.pop("noise_shape", None)
    text = config_toml_text(keep, command)
    if varied:
        text += f"# {', '.join(varied)}: chosen by select (see selection in summary.json)\n"
    return text + "".join(f"# {k} = {cfg[k]!r} (of this run)\n" for k in run_only
                          if cfg.get(k) is not None)  # fmt: skip


def _print_fit(result: Any, out: Path) -> None:
    smc = result.particles is not None
    size = (
        f"{result.particles.shape[0]} particles, {len(result.stages or [])} stages"
        if smc
        else f"{result.draws.shape[0]} chain(s) x {result.draws.shape[1]} samples"
    )
    if result.num_devices > 1:
        size += f", {result.num_devices} devices"
    if result.process_count > 1:
        size += f" in {result.process_count} processes"
    print(f"{PROG} fit: {result.method}, {size}, {result.wall_seconds:.1f} s "
          f"({result.gradient_evaluations} gradient evaluations)")  # fmt: skip
    for name, m in (("train", result.train), ("test", result.test)):
        if m is not None:
            print(f"  {name + ':':6} RMSE {_fmt(m.rmse)}  log-lik {_fmt(m.log_likelihood)}  "
                  f"coverage(90%) {_fmt(m.coverage_90, '.3f')}  (n={m.n})")  # fmt: skip
    if result.log_evidence is not None:
        print(f"  log evidence {result.log_evidence:.6g}")
    print(f"  outputs in {out}")


# -- uci ---------------------------------------------------------------------------------------


def _uci_call(fn: Any, *args: Any) -> Any:
    """Call a :mod:`langevin_nets.datasets` UCI helper; its ValueErrors are input errors."""
    try:
        return fn(*args)
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from None


def uci_info(data_dir: Path, name: str) -> dict[str, Any]:
    """Number of splits and hidden units of a UCI data set, with a clear error if missing."""
    import numpy as np

    folder = data_dir / name
    if not (folder / "data.txt").is_file():
        avail = sorted(p.name for p in data_dir.iterdir() if (p / "data.txt").is_file())
        raise InputError(
            f"unknown UCI data set {name!r} in {str(data_dir)!r}; "
            f"available: {', '.join(avail) or 'none'}; check the name or --data-dir"
        )
    try:
        n_splits = int(np.loadtxt(folder / "n_splits.txt", ndmin=1)[0])
        n_hidden = int(np.loadtxt(folder / "n_hidden.txt", ndmin=1)[0])
    except (OSError, ValueError, IndexError) as e:
        raise InputError(f"UCI data set folder {str(folder)!r} is incomplete: {e}") from None
    return {"folder": folder, "n_splits": n_splits, "n_hidden": n_hidden}


def cmd_uci(args: argparse.Namespace) -> int:
    """``langevin-nets uci NAME``."""
    from langevin_nets.io.outputs import OutputDir, default_out_dir

    if "split" in vars(args):
        args.splits = args.split
        del args.split
    options, sources = _gather(args, UCI_KEYS)
    cfg = validate(options, keys=UCI_KEYS, style="cli", sources=sources)
    from langevin_nets.datasets import find_uci_dir, load_uci

    data_dir = _uci_call(find_uci_dir, cfg["data_dir"]).absolute()
    info = uci_info(data_dir, args.name)
    splits = cfg["splits"] or "all"
    splits = tuple(range(info["n_splits"])) if splits == "all" else splits
    bad = [k for k in splits if k >= info["n_splits"]]
    if bad:
        raise InputError(
            f"{args.name} has splits 0 to {info['n_splits'] - 1}; split {bad[0]} does not exist"
        )
    cfg["data_dir"] = str(data_dir)
    cfg["splits"] = list(splits)
    if "hidden" not in options:
        cfg["hidden"] = (info["n_hidden"],)
    for name, value in UCI_DEFAULTS.items():
        if name not in options:
            cfg[name] = value
    out = OutputDir(cfg["out"] or default_out_dir(Path("runs") / f"uci-{args.name}"),
                    overwrite=cfg["overwrite"])  # fmt: skip
    out.check()
    cfg["out"] = str(out.path)
    _warn_ignored(cfg, set(options))

    from langevin_nets.fit import fit, import_smc

    if cfg["method"] != "langevin":
        import_smc()
    main_process = _is_main(cfg)
    devices = _start_processes(cfg)
    quiet = cfg["quiet"] or not main_process  # process 0 reports for all
    rows = []
    if not quiet:
        hidden, activation, _ = _network_text(cfg)
        print(f"{PROG} uci {args.name}: {cfg['method']}, hidden {hidden}, {activation}, "
              f"splits {_splits_text(splits)}")  # fmt: skip
        if cfg["select"]:
            print(f"  per split, the candidate with the highest training log evidence among "
                  f"{', '.join(cfg['select'])}")  # fmt: skip
        print(_row_header())
    for k in splits:
        X, y, Xt, yt, _ = _uci_call(load_uci, args.name, k, data_dir)
        y, yt = y.reshape(-1), yt.reshape(-1)
        # Said once, not for every split.
        selection = None
        with _discrete_target_said(y, cfg, quiet, say=k == splits[0]):
            if cfg["select"]:
                res, selection = _fit_selected(cfg, devices, X, y, Xt, yt, quiet)
            else:
                res = fit(X, y, Xt, yt, **_model_kwargs(cfg, devices), progress=not quiet)
        row = {
            "split": k,
            "n_train": int(X.shape[0]),
            "n_test": int(Xt.shape[0]),
            "test_rmse": res.test.rmse,
            "test_log_likelihood": res.test.log_likelihood,
            "test_coverage_90": res.test.coverage_90,
            "train_rmse": res.train.rmse,
            "train_log_likelihood": res.train.log_likelihood,
            "log_evidence": res.log_evidence,
            "gradient_evaluations": res.gradient_evaluations,
            "wall_seconds": res.wall_seconds,
            "num_stages": len(res.stages) if res.stages is not None else None,
            "device_count": int(getattr(res, "num_devices", 1)),
        }
        if selection is not None:
            # The split's time is every candidate's fit; the metrics are the chosen one's.
            row["wall_seconds"] = selection["wall_seconds_all_candidates"]
            row["chosen"] = selection["chosen"]
            row["selection"] = selection
        rows.append(row)
        if not quiet:
            print(_row_text(row), flush=True)
            if selection is not None:
                print(f"    split {k}: chose {row['chosen']}", flush=True)
    if not main_process:
        _stop_processes(cfg)
        return 0
    agg = _aggregate(rows)
    if not quiet:
        print(_agg_text(agg))
    from langevin_nets.io.outputs import environment, write_json

    results = {
        **environment(),
        "command": "uci",
        "dataset": args.name,
        "method": cfg["method"],
        "seed": cfg["seed"],
        "config": _unvaried(cfg),
        "protocol": "one hidden layer, training-split standardisation of inputs and target; "
        "test RMSE and mean test log predictive density in the target's original units; "
        "mean +- standard error (sample std / sqrt(splits)) over splits",
        "splits": rows,
        "aggregate": agg,
        # Devices used (environment() gave those present).
        "device_count": rows[0]["device_count"],
    }
    with _quiet_warnings(), out.staging() as tmp:
        write_json(tmp / "results.json", results)
        (tmp / "results.md").write_text(_results_md(args.name, cfg, rows, agg))
        (tmp / "config.toml").write_text(_config_text(cfg, f"uci {args.name}"))
    _stop_processes(cfg)
    if not quiet:
        print(f"  outputs in {out.path}")
    return 0


def _splits_text(splits: Sequence[int]) -> str:
    s = list(splits)
    if len(s) > 1 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ",".join(str(k) for k in s)


_COLS = (("split", "split", "d"), ("test_rmse", "test RMSE", ".4f"),
         ("test_log_likelihood", "test LL", ".4f"), ("test_coverage_90", "cov90", ".3f"),
         ("log_evidence", "log Z", ".2f"), ("wall_seconds", "seconds", ".1f"))  # fmt: skip


def _row_header() -> str:
    return "  ".join(f"{title:>11}" for _, title, _ in _COLS)


def _row_text(row: dict[str, Any]) -> str:
    return "  ".join(f"{_fmt(row[k], spec):>11}" for k, _, spec in _COLS)


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"num_splits": len(rows)}
    for key in ("test_rmse", "test_log_likelihood", "test_coverage_90", "log_evidence",
                "wall_seconds"):  # fmt: skip
        vals = np.array([r[key] for r in rows if r[key] is not None], dtype=float)
        if vals.size == 0:
            out[key] = None
            continue
        se = float(vals.std(ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else None
        out[key] = {"mean": float(vals.mean()), "stderr": se}
    return out


def _pm(agg: dict[str, Any], key: str, spec: str) -> str:
    v = agg.get(key)
    if v is None:
        return "n/a"
    se = v["stderr"]
    return f"{v['mean']:{spec}}" + ("" if se is None else f" ± {se:{spec}}")


def _agg_text(agg: dict[str, Any]) -> str:
    return (f"mean ± s.e. over {agg['num_splits']} split(s): test RMSE "
            f"{_pm(agg, 'test_rmse', '.4f')}, test LL {_pm(agg, 'test_log_likelihood', '.4f')}, "
            f"coverage(90%) {_pm(agg, 'test_coverage_90', '.3f')}")  # fmt: skip


def _unvaried(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` without the options ``--select`` varies (their values there are unused)."""
    varied = varied_options(cfg.get("select"))
    return {k: v for k, v in cfg.items() if k not in varied}


def _network_text(cfg: dict[str, Any]) -> tuple[str, str, str]:
    """The hidden layers, activation and prior as shown, or "by --select" where varied."""
    varied = varied_options(cfg.get("select"))
    shown = {"hidden": str(list(cfg["hidden"])), "activation": cfg["activation"],
             "prior": cfg["prior"]}  # fmt: skip
    return tuple(  # type: ignore[return-value]
        "by --select" if k in varied else text for k, text in shown.items()
    )


def _results_md(name: str, cfg: dict[str, Any], rows: list[dict[str, Any]], agg: dict) -> str:
    hidden, activation, prior = _network_text(cfg)
    lines = [
        f"# UCI {name}: {cfg['method']}",
        "",
        f"One hidden layer {hidden}, {activation}, prior {prior}, seed {cfg['seed']}. Test "
        "metrics in the target's original units.",
        "",
    ]
    select = bool(cfg.get("select"))
    if select:
        lines += [
            f"Per split, the candidate with the highest log evidence on the training data among "
            f"`{' '.join('--select ' + item for item in cfg['select'])}` (column *chosen*); the "
            "metrics are the chosen fit's, the seconds all candidates' together.",
            "",
        ]
    extra, rule = (" chosen |", " --- |") if select else ("", "")
    lines += [
        "| split | n_train | n_test | test RMSE | test LL | coverage 90% | log Z | seconds |"
        + extra,
        f"| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{rule}",
    ]
    for r in rows:
        lines.append(
            f"| {r['split']} | {r['n_train']} | {r['n_test']} | {_fmt(r['test_rmse'], '.4f')} "
            f"| {_fmt(r['test_log_likelihood'], '.4f')} | {_fmt(r['test_coverage_90'], '.3f')} "
            f"| {_fmt(r['log_evidence'], '.2f')} | {_fmt(r['wall_seconds'], '.1f')} |"
            + (f" {r['chosen']} |" if select else "")
        )
    lines += [
        f"| **mean ± s.e.** | | | {_pm(agg, 'test_rmse', '.4f')} "
        f"| {_pm(agg, 'test_log_likelihood', '.4f')} | {_pm(agg, 'test_coverage_90', '.3f')} "
        f"| {_pm(agg, 'log_evidence', '.2f')} | {_pm(agg, 'wall_seconds', '.1f')} |"
        + (" |" if select else ""),
        "",
    ]
    return "\n".join(lines)


# -- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """``langevin-nets demo``: delegates to :func:`langevin_nets.demo.run_demo`."""
    seed = validate({"seed": args.seed}, keys=("seed",), style="cli")["seed"]
    # run_demo checks and writes its output directory itself.
    from langevin_nets.demo import run_demo

    with _quiet_warnings():
        run_demo(args.out, quiet=args.quiet, seed=seed, quick=args.quick)
    return 0


# -- entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``langevin-nets`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, --version
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    from langevin_nets.errors import DivergenceError
    from langevin_nets.fit import SMCUnavailableError

    try:
        return int(args.handler(args))
    except (InputError, InputTypeError) as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except (DivergenceError, SMCUnavailableError) as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        print(f"error: internal error: {_one_line(f'{type(e).__name__}: {e}')}{hint}",
              file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["DEFAULTS", "build_parser", "main"]
