"""Options of ``langevin-nets fit``/``uci``: defaults, TOML config files, validation.

One table (:data:`OPTIONS`) drives the command line, the TOML config file and the
Python API (:func:`langevin_nets.fit.fit`), so that all three accept the same
values and reject bad ones with the same messages. ``None`` means "chosen
automatically" (recorded as such in the effective configuration).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langevin_nets.activations import ACTIVATIONS
from langevin_nets.model import PRIORS

METHODS = ("smc-adaptive", "smc-data", "smc-geometric", "langevin")
RESAMPLING = ("systematic", "stratified", "multinomial", "residual")


class InputError(ValueError):
    """Bad input from a user: a data file, an option value or a config file.

    Its message is meant to be shown alone, as one line.
    """


def read_input_bytes(path: Path, role: str, option: str, kind: str) -> bytes:
    """The bytes of an input file, or an :class:`InputError` naming ``role`` and ``option``.

    ``kind`` says what the option expects (e.g. "a CSV file") when given a directory.
    """
    name = str(path)
    if not path.exists():
        raise InputError(f"{role} file {name!r} does not exist; check the path given to {option}")
    if path.is_dir():
        raise InputError(f"{role} file {name!r} is a directory; give {kind} to {option}")
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {role} file {name!r}: {e.strerror}") from None


class InputTypeError(TypeError):
    """An option of the Python API has the wrong type."""


@dataclass(frozen=True)
class Option:
    """One option: its key (underscores), default, kind of value and help text."""

    name: str
    default: Any
    kind: str
    help: str
    group: str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_H = {
    "hidden": 'hidden layer widths, comma-separated (e.g. 50,50); "" for none (a linear model)',
}

OPTIONS: tuple[Option, ...] = (
    # -- data (fit only) ------------------------------------------------------------------
    Option("data", None, "path", "training data: a CSV file with a header row", "data",
           metavar="FILE"),
    Option("target", None, "str", "target column (default: the last column)", "data",
           metavar="COL"),
    Option("features", None, "names", "feature columns, comma-separated (default: all others)",
           "data", metavar="A,B,..."),
    Option("test", None, "path", "test data: a CSV file with the same columns", "data",
           metavar="FILE"),
    Option("test_fraction", None, "open_fraction",
           "hold out this fraction of the training rows as a test set (random, by --seed)",
           "data", metavar="F"),
    # -- model ----------------------------------------------------------------------------
    Option("hidden", (50,), "hidden", _H["hidden"], "model", metavar="H1,H2,..."),
    Option("activation", "tanh", "choice", "hidden-layer activation", "model",
           choices=tuple(ACTIVATIONS)),
    Option("prior", "fan_in", "choice",
           "weight prior: normal (every weight N(0, s^2)) or fan_in (N(0, s^2/fan_in))",
           "model", choices=PRIORS),
    Option("prior_scale", 1.0, "float+", "prior standard deviation s", "model", metavar="S"),
    Option("noise_shape", 1.0, "float+",
           "shape a of the Gamma(a, 1) prior on the noise level (standardised units)", "model",
           metavar="A"),
    Option("noise_std", None, "float+",
           "fix the noise standard deviation (target's units) instead of learning it "
           "(default: learned)", "model",
           metavar="S"),
    Option("heteroscedastic", False, "bool",
           "let the noise level depend on the input: the network predicts a log-scale "
           "offset of sigma per point (needs a learned noise level)", "model"),
    Option("noise_floor", 0.0, "floor",
           "noise standard deviation (target's units) added in quadrature to the learned "
           "one, so the noise never falls below it; auto: the rounding noise h/sqrt(12) "
           "of a target on a grid of spacing h (20 distinct values or fewer), else 0",
           "model", metavar="Q|auto"),
    Option("select", None, "select",
           "choose among candidate values by the log evidence on the training data (SMC "
           "methods): OPTION=V1/V2/..., once per option varied (hidden, activation, prior, "
           "prior_scale, noise_shape, noise_std, heteroscedastic, noise_floor); every "
           "combination is fit and the one with the highest log evidence is kept",
           "selection", metavar="OPTION=V1/V2"),
    Option("standardize", True, "bool",
           "standardise inputs and target with the training statistics", "model"),
    # -- method ---------------------------------------------------------------------------
    Option("method", "smc-adaptive", "choice", "sampler", "method", choices=METHODS),
    # -- SMC ------------------------------------------------------------------------------
    Option("particles", 128, "int2", "SMC particles (at least 2)", "smc", metavar="N"),
    Option("stages", None, "int+", "stages of smc-geometric (default: 50)", "smc", metavar="K"),
    Option("batch_size", None, "int+",
           "data points added per stage by smc-data (default: about 50 stages)", "smc",
           metavar="B"),
    Option("steps", 5, "int+",
           "MCMC moves per SMC stage (each a trajectory of --integration-steps BAOAB steps)",
           "smc", metavar="M"),
    Option("integration_steps", 20, "int+",
           "BAOAB (leapfrog) steps per SMC move: the trajectory length, in steps", "smc",
           metavar="L"),
    Option("target_ess", 0.5, "open_fraction", "smc-adaptive: relative ESS aimed at per stage",
           "smc", metavar="F"),
    Option("ess_threshold", 0.5, "fraction", "resample when the relative ESS falls below this",
           "smc", metavar="F"),
    Option("resampling", "systematic", "choice", "resampling scheme", "smc",
           choices=RESAMPLING),
    Option("waste_free", None, "int2",
           "waste-free SMC with chains of P states: each stage resamples particles / P of "
           "them, moves each P - 1 times and keeps every state visited (--steps and "
           "--ess-threshold are then not used; --particles must be a multiple of P)", "smc",
           metavar="P"),
    # -- Langevin ---------------------------------------------------------------------------
    Option("samples", 500, "int+", "langevin: samples kept per chain", "langevin",
           metavar="S"),
    Option("burnin", 1000, "int0", "langevin: steps discarded per chain", "langevin",
           metavar="B"),
    Option("thin", 4, "int+", "langevin: steps between kept samples", "langevin", metavar="T"),
    Option("chains", 4, "int+", "langevin: independent chains (each from its own MAP)",
           "langevin", metavar="C"),
    Option("map_steps", 2000, "int+", "langevin: Adam steps of the MAP search per chain",
           "langevin", metavar="N"),
    Option("on_divergence", "raise", "choice",
           "langevin: on a non-finite step, stop with an error (raise) or go back to the "
           "chain's last finite state with half the step size (restart)", "langevin",
           choices=("raise", "restart")),
    Option("max_restarts", 10, "int0", "langevin: restarts allowed per chain", "langevin",
           metavar="R"),
    # -- kernel -----------------------------------------------------------------------------
    Option("step_size", None, "float+",
           "BAOAB step size (default: tuned; SMC adapts it per stage)", "kernel", metavar="DT"),
    Option("friction", None, "float0", "BAOAB friction (default: automatic)", "kernel",
           metavar="G"),
    Option("mass", 1.0, "float+", "BAOAB mass (scalar)", "kernel", metavar="M"),
    Option("metropolis", True, "bool", "Metropolis-adjust the BAOAB moves (exact sampling)",
           "kernel"),
    # -- run --------------------------------------------------------------------------------
    Option("seed", 0, "seed", "random seed", "run", metavar="N"),
    Option("out", None, "path", "output directory (default: runs/<timestamp>)", "run",
           metavar="DIR"),
    Option("overwrite", False, "bool", "replace the output directory if it is not empty",
           "run"),
    Option("quiet", False, "bool", "no progress bar or summary on the terminal", "run"),
    Option("checkpoint_every", None, "int+",
           "save a checkpoint in --out every K SMC stages (langevin: every K samples per "
           "chain) so that --resume can continue a killed run (default: no checkpoints, "
           "or every stage / a tenth of the samples with --resume)", "run", metavar="K"),
    Option("resume", False, "bool",
           "continue from the checkpoint in --out (same options and data), or start one "
           "if there is none", "run"),
    # -- devices and processes ----------------------------------------------------------------
    Option("devices", None, "devices",
           "SMC: spread the particles over this many devices, or all (default: all devices "
           "when --particles divides evenly among them, else one)", "parallel", metavar="N"),
    Option("particle_chunk", None, "int+",
           "SMC: move at most this many particles at a time on each device, to bound memory "
           "(default: all at once)", "parallel", metavar="K"),
    Option("data_chunk", None, "int+",
           "evaluate the likelihood on at most this many data rows at a time, to bound the "
           "memory of gradients on large data (default: all rows at once)", "parallel",
           metavar="R"),
    Option("coordinator", None, "coordinator",
           "multi-process run: HOST:PORT of process 0, reachable from every process; give "
           "with --num-processes and --process-id (default: one process)", "parallel",
           metavar="HOST:PORT"),
    Option("num_processes", None, "int+",
           "multi-process run: number of processes (default: one process)", "parallel",
           metavar="P"),
    Option("process_id", None, "int0",
           "multi-process run: this process's id, 0 to P-1; process 0 writes the outputs "
           "(default: one process)", "parallel", metavar="I"),
    # -- uci only ---------------------------------------------------------------------------
    Option("data_dir", None, "path", "folder holding the UCI data sets (default: "
           "$LANGEVIN_NETS_UCI_DIR, else shared/data/uci nearby)", "uci", metavar="DIR"),
    Option("splits", None, "splits", "splits to run: K, a list 0,3,5, a range 0-4, or all",
           "uci", metavar="SPEC"),
)

OPTION_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
# Options of `fit` only (the uci command runs many fits into one output directory).
FIT_ONLY = ("checkpoint_every", "resume")
FIT_KEYS = tuple(o.name for o in OPTIONS if o.group != "uci")
# The `uci` command's own defaults for these options (the rest are `fit`'s): the recipe
# of benchmarks/uci.py. ReLU as in the published runs; long HMC trajectories, because on the
# UCI sets the training log evidence rose most with the trajectory length (yacht split 0:
# -479 with 64 particles x 5 moves x 20 steps, -414 with 256 x 10 x 20, -343 with 32 x 5 x
# 100 at a third of that one's time; benchmarks/uci_budget.py).
UCI_DEFAULTS: dict[str, Any] = {"activation": "relu", "particles": 32, "steps": 5,
                                "integration_steps": 100}
UCI_KEYS = tuple(o.name for o in OPTIONS if o.group != "data" and o.name not in FIT_ONLY)
# Options of the fitting itself (what fit() takes), as opposed to data and run options.
MODEL_KEYS = tuple(
    o.name for o in OPTIONS if o.group in ("model", "method", "smc", "langevin", "kernel")
)
# Devices and chunks (what fit() takes besides MODEL_KEYS), and the multi-process options.
PARALLEL_KEYS = ("devices", "particle_chunk", "data_chunk")
PROCESS_KEYS = ("coordinator", "num_processes", "process_id")
#: Options that --select may vary: the model and its prior, what the evidence compares.
SELECTABLE = ("hidden", "activation", "prior", "prior_scale", "noise_shape", "noise_std",
              "heteroscedastic", "noise_floor")  # fmt: skip
#: The most candidates --select may ask for (all combinations of its values).
MAX_CANDIDATES = 64
SMC_METHODS = ("smc-adaptive", "smc-data", "smc-geometric")
# Options that only some methods use: {option: methods that use it}.
USED_BY: dict[str, tuple[str, ...]] = {
    "devices": SMC_METHODS,
    "particle_chunk": SMC_METHODS,
    "particles": ("smc-adaptive", "smc-data", "smc-geometric"),
    "stages": ("smc-geometric",),
    "batch_size": ("smc-data",),
    "steps": ("smc-adaptive", "smc-data", "smc-geometric"),
    "integration_steps": SMC_METHODS,
    "target_ess": ("smc-adaptive",),
    "ess_threshold": ("smc-adaptive", "smc-data", "smc-geometric"),
    "resampling": ("smc-adaptive", "smc-data", "smc-geometric"),
    "waste_free": SMC_METHODS,
    "samples": ("langevin",),
    "burnin": ("langevin",),
    "thin": ("langevin",),
    "chains": ("langevin",),
    "map_steps": ("langevin",),
    "on_divergence": ("langevin",),
    "max_restarts": ("langevin",),
}


# -- value conversion ---------------------------------------------------------------------


def _display(name: str, style: str) -> str:
    return OPTION_BY_NAME[name].flag if style == "cli" else name


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


class _Converter:
    """Convert and check one value; raise with a message naming the option."""

    def __init__(self, name: str, style: str, where: str) -> None:
        self.name = name
        self.style = style
        self.where = where  # e.g. " (set in config file x.toml)"
        self.label = _display(name, style)

    def fail(self, what: str, value: Any, type_error: bool = False) -> None:
        shown = repr(value) if not isinstance(value, str) else repr(value)
        msg = f"{self.label} must be {what}, got {shown}{self.where}"
        if type_error and self.style == "api":
            raise InputTypeError(msg)
        raise InputError(msg)

    def number(self, value: Any, what: str, integer: bool) -> float | int:
        # Strings are accepted from the command line only; TOML and Python give typed values.
        if isinstance(value, str) and self.style == "cli" and not self.where:
            text = value.strip()
            try:
                return int(text) if integer else float(text)
            except ValueError:
                self.fail(what, value)
        if integer and _is_int(value):
            return int(value)
        if integer and isinstance(value, float | np.floating) and float(value).is_integer():
            if self.style == "api":
                self.fail(what, value, type_error=True)
            return int(value)
        if not integer and _is_number(value):
            return float(value)
        self.fail(what, value, type_error=True)
        raise AssertionError  # unreachable

    def convert(self, kind: str, value: Any, choices: tuple[str, ...] | None) -> Any:
        if kind == "int+":
            v = self.number(value, "a positive integer", True)
            if v < 1:
                self.fail("a positive integer", value)
            return v
        if kind == "int2":
            v = self.number(value, "an integer of at least 2", True)
            if v < 2:
                self.fail("an integer of at least 2", value)
            return v
        if kind == "int0":
            v = self.number(value, "a non-negative integer", True)
            if v < 0:
                self.fail("a non-negative integer", value)
            return v
        if kind == "seed":
            what = "a non-negative integer below 2**32"
            v = self.number(value, what, True)
            if not 0 <= v < 2**32:
                self.fail(what, value)
            return v
        if kind in ("float+", "float0"):
            what = "a positive number" if kind == "float+" else "a non-negative number"
            v = self.number(value, what, False)
            if not math.isfinite(v) or v < 0 or (kind == "float+" and v == 0):
                self.fail(what, value)
            return v
        if kind == "fraction":
            what = "a number in (0, 1]"
            v = self.number(value, what, False)
            if not (0.0 < v <= 1.0):
                self.fail(what, value)
            return v
        if kind == "open_fraction":
            what = "a number strictly between 0 and 1"
            v = self.number(value, what, False)
            if not (0.0 < v < 1.0):
                self.fail(what, value)
            return v
        if kind == "floor":
            what = "a non-negative number or auto"
            if isinstance(value, str) and value.strip().lower() == "auto":
                return "auto"
            v = self.number(value, what, False)
            if not math.isfinite(v) or v < 0:
                self.fail(what, value)
            return v
        if kind == "devices":
            what = "a positive integer or all"
            if isinstance(value, str) and value.strip().lower() == "all":
                return "all"
            v = self.number(value, what, True)
            if v < 1:
                self.fail(what, value)
            return v
        if kind == "coordinator":
            from langevin_nets.distributed import parse_coordinator

            try:
                host, port = parse_coordinator(value, self.label)
            except TypeError as e:
                if self.style == "api":
                    raise InputTypeError(f"{e}{self.where}") from None
                raise InputError(f"{e}{self.where}") from None
            except ValueError as e:
                raise InputError(f"{e}{self.where}") from None
            return value.strip()
        if kind == "bool":
            if isinstance(value, bool | np.bool_):
                return bool(value)
            self.fail("true or false", value, type_error=True)
        if kind == "choice":
            if not isinstance(value, str):
                self.fail("one of " + ", ".join(choices or ()), value, type_error=True)
            if value not in (choices or ()):
                what = {"method": "method", "activation": "activation", "prior": "prior",
                        "resampling": "resampling scheme"}.get(self.name, self.name)
                raise InputError(
                    f"unknown {what} {value!r} for {self.label}{self.where}; "
                    f"choose one of: {', '.join(choices or ())}"
                )
            return value
        if kind in ("str", "path"):
            if isinstance(value, os.PathLike) and kind == "path":
                value = os.fspath(value)
            if not isinstance(value, str):
                self.fail("a string" if kind == "str" else "a path", value, type_error=True)
            if value.strip() == "":
                self.fail("a non-empty string" if kind == "str" else "a path", value)
            return value
        if kind == "names":
            return self.names(value)
        if kind == "hidden":
            return self.hidden(value)
        if kind == "splits":
            return self.splits(value)
        if kind == "select":
            return self.select(value)
        raise AssertionError(f"unknown option kind {kind}")

    def select(self, value: Any) -> tuple[str, ...]:
        """``OPTION=V1/V2/...`` items (one per option varied), each value checked as its
        option checks it; returned in a canonical text form (see :func:`select_candidates`)."""
        what = "OPTION=V1/V2/... such as prior_scale=1/2 (or a list of them)"
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            self.fail(what, value, type_error=True)
        if not all(isinstance(item, str) for item in items):
            self.fail(what, value, type_error=True)
        out: list[str] = []
        seen: set[str] = set()
        count = 1
        for item in items:
            name, sep, rest = item.partition("=")
            key = name.strip().lstrip("-").replace("-", "_")
            if not sep or not key:
                self.fail(what, item)
            if key not in SELECTABLE:
                raise InputError(
                    f"{self.label} cannot vary {name.strip()!r}{self.where}; it varies one "
                    f"of: {', '.join(SELECTABLE)}"
                )
            if key in seen:
                raise InputError(
                    f"{self.label} varies {key} twice{self.where}; list all its values in one "
                    f"{key}=V1/V2/..."
                )
            seen.add(key)
            values = [_select_value(key, text, self.label, self.where) for text in rest.split("/")]
            texts = [_select_text(key, v) for v in values]
            if len(values) < 2:
                raise InputError(
                    f"{self.label} {item.strip()!r} gives one value{self.where}; give two or "
                    f"more separated by / (for one value use {OPTION_BY_NAME[key].flag})"
                )
            dup = sorted({t for t in texts if texts.count(t) > 1})
            if dup:
                raise InputError(f"{self.label} {key} lists {dup[0]!r} twice{self.where}")
            count *= len(values)
            out.append(f"{key}=" + "/".join(texts))
        if count > MAX_CANDIDATES:
            raise InputError(
                f"{self.label} asks for {count} candidates (every combination){self.where}; "
                f"at most {MAX_CANDIDATES} are allowed"
            )
        return tuple(out)

    def names(self, value: Any) -> tuple[str, ...]:
        what = "a comma-separated list of column names such as A,B"
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
        elif isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
            parts = [p.strip() for p in value]
        else:
            self.fail(what, value, type_error=True)
        if not parts or any(p == "" for p in parts):
            self.fail(what, value)
        dup = sorted({p for p in parts if parts.count(p) > 1})
        if dup:
            raise InputError(f"{self.label} names column {dup[0]!r} twice{self.where}")
        return tuple(parts)

    def hidden(self, value: Any) -> tuple[int, ...]:
        what = (
            'a comma-separated list of positive integers such as 50,50 (or "" for no hidden layer)'
        )
        if isinstance(value, str):
            text = value.strip()
            if text == "":
                return ()
            parts: list[Any] = [p.strip() for p in text.split(",")]
            out = []
            for p in parts:
                if not p.isdigit() or int(p) < 1:
                    self.fail(what, value)
                out.append(int(p))
            return tuple(out)
        if _is_int(value):
            value = [value]
        if isinstance(value, list | tuple):
            if not all(_is_int(p) for p in value):
                self.fail(what, value, type_error=True)
            if any(int(p) < 1 for p in value):
                self.fail(what, value)
            return tuple(int(p) for p in value)
        self.fail(what, value, type_error=True)
        raise AssertionError  # unreachable

    def splits(self, value: Any) -> str | tuple[int, ...]:
        what = "a split number K, a list such as 0,3,5, a range such as 0-4, or all"
        if _is_int(value):
            if value < 0:
                self.fail(what, value)
            return (int(value),)
        if isinstance(value, list | tuple) and all(_is_int(p) and p >= 0 for p in value) and value:
            return tuple(int(p) for p in value)
        if not isinstance(value, str):
            self.fail(what, value, type_error=True)
        text = value.strip().lower()
        if text == "all":
            return "all"
        out: list[int] = []
        for part in text.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            if sep:
                if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
                    self.fail(what, value)
                out.extend(range(int(lo), int(hi) + 1))
            elif part.isdigit():
                out.append(int(part))
            else:
                self.fail(what, value)
        return tuple(dict.fromkeys(out))


def _select_value(key: str, text: str, label: str, where: str) -> Any:
    """One ``--select`` value of option ``key``, from its text, checked as the option is."""
    opt = OPTION_BY_NAME[key]
    text = text.strip()
    if opt.kind == "bool":
        if text.lower() not in ("true", "false"):
            raise InputError(f"{label} {key}: values must be true or false, got {text!r}{where}")
        return text.lower() == "true"
    if text == "" and opt.kind != "hidden":
        raise InputError(f"{label} {key}: an empty value{where}; separate values by / ")
    try:
        return _Converter(key, "cli", "").convert(opt.kind, text, opt.choices)
    except InputError as e:
        raise InputError(f"{label} {key}: {e}{where}") from None


def _select_text(key: str, value: Any) -> str:
    """The canonical text of a ``--select`` value (it reads back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if OPTION_BY_NAME[key].kind == "hidden":
        return ",".join(str(h) for h in value)
    return repr(value) if isinstance(value, float) else str(value)


def select_candidates(select: Any) -> list[dict[str, Any]]:
    """Every combination of the values that a validated ``select`` option varies, in order
    (the last option varies fastest): a list of ``{option: value}``."""
    import itertools

    if not select:
        return []
    names, values = [], []
    for item in select:
        key, _, rest = item.partition("=")
        names.append(key)
        values.append([_select_value(key, t, "--select", "") for t in rest.split("/")])
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def varied_options(select: Any) -> list[str]:
    """The options that a validated ``select`` option varies, in its order (none if unset)."""
    return [item.partition("=")[0] for item in select or ()]


def describe_candidate(candidate: Mapping[str, Any]) -> str:
    """``prior_scale=2.0, hidden=25``: a candidate of :func:`select_candidates` as text."""
    return ", ".join(f"{k}={_select_text(k, v)}" for k, v in candidate.items())


def validate(
    options: Mapping[str, Any],
    *,
    keys: tuple[str, ...] = FIT_KEYS,
    style: str = "cli",
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check and normalise options; return the full configuration with defaults filled in.

    Parameters
    ----------
    options : mapping
        Options given (keys with underscores); missing ones take their defaults.
    keys : tuple of str
        The options the command accepts.
    style : {"cli", "api"}
        Name options as command-line flags (``--particles``) or as keyword arguments
        (``particles``); the API also rejects strings where numbers are expected.
    sources : mapping, optional
        ``{key: config file path}`` for options read from a config file (named in messages).

    Raises
    ------
    InputError (a ValueError), InputTypeError (a TypeError)
    """
    sources = dict(sources or {})
    unknown = [k for k in options if k not in keys]
    if unknown:
        raise InputError(
            f"unknown option {unknown[0]!r}; valid options: {', '.join(sorted(keys))}"
        )
    out: dict[str, Any] = {}
    for key in keys:
        opt = OPTION_BY_NAME[key]
        if key in options and options[key] is not None:
            where = f" (set in config file {sources[key]})" if key in sources else ""
            out[key] = _Converter(key, style, where).convert(opt.kind, options[key], opt.choices)
        else:
            out[key] = opt.default
    label = (lambda k: OPTION_BY_NAME[k].flag) if style == "cli" else (lambda k: k)
    given = {k for k, v in options.items() if v is not None}
    if "noise_std" in given and "noise_shape" in given:
        raise InputError(
            f"give either {label('noise_shape')} (learn the noise level) or "
            f"{label('noise_std')} (fix it), not both"
        )
    if out.get("heteroscedastic") and "noise_std" in given:
        raise InputError(
            f"{label('heteroscedastic')} learns the noise level; it cannot be combined with "
            f"{label('noise_std')}"
        )
    if "test" in keys and out.get("test") is not None and out.get("test_fraction") is not None:
        raise InputError(
            f"give either {label('test')} (a test file) or {label('test_fraction')} "
            "(hold out part of the training data), not both"
        )
    wf, particles = out.get("waste_free"), out.get("particles")
    if wf is not None and particles is not None and particles % wf:
        raise InputError(
            f"{label('waste_free')} {wf} needs {label('particles')} divisible by it "
            f"(particles / {wf} chains of {wf} states); got {label('particles')} {particles}"
        )
    _check_parallel(out, given, label)
    if out.get("select"):
        _check_select(options, out, given, keys, style, sources, label)
    return out


def _check_select(
    options: Mapping[str, Any], out: dict[str, Any], given: set[str], keys: tuple[str, ...],
    style: str, sources: Mapping[str, str], label: Any,
) -> None:  # fmt: skip
    """Cross-checks of --select; every candidate is then checked whole, as one run's options."""
    flag = label("select")
    for key in varied_options(out["select"]):
        if key in given:
            raise InputError(
                f"{label(key)} is given and also varied by {flag}; give one of them"
            )
    if out.get("method") not in SMC_METHODS:
        raise InputError(
            f"{flag} compares candidates by their log evidence, which only the SMC methods "
            f"estimate; choose {label('method')} smc-adaptive, smc-data or smc-geometric"
        )
    for key in ("checkpoint_every", "resume"):
        if key in given and out.get(key):
            raise InputError(f"{flag} fits several candidates; {label(key)} is for a single fit")
    if any(out.get(k) is not None for k in PROCESS_KEYS):
        raise InputError(f"{flag} runs in one process; drop the multi-process options")
    common = {k: v for k, v in options.items() if k != "select"}
    for cand in select_candidates(out["select"]):
        try:
            validate({**common, **cand}, keys=keys, style=style, sources=sources)
        except InputError as e:
            raise InputError(f"{flag} candidate {describe_candidate(cand)}: {e}") from None


def _check_parallel(out: dict[str, Any], given: set[str], label: Any) -> None:
    """Cross-checks of the device, chunk and process options (no JAX call)."""
    method = out.get("method")
    devices = out.get("devices")
    if "devices" in given and method == "langevin" and devices not in (1, "all"):
        raise InputError(
            f"{label('devices')} {devices}: only the SMC methods run on several devices; "
            f"{label('method')} langevin runs on one (drop {label('devices')} or choose an SMC "
            "method)"
        )
    particles = out.get("particles")
    if isinstance(devices, int) and method in SMC_METHODS and particles % devices:
        raise InputError(
            f"{label('particles')} {particles} cannot be split evenly over {label('devices')} "
            f"{devices}; choose a number of particles divisible by {devices}"
        )
    present = [k for k in PROCESS_KEYS if k in out and out[k] is not None]
    if present and len(present) < len(PROCESS_KEYS):
        missing = [label(k) for k in PROCESS_KEYS if k not in present]
        raise InputError(
            f"{', '.join(label(k) for k in PROCESS_KEYS[:-1])} and {label(PROCESS_KEYS[-1])} "
            f"go together (a multi-process run); missing: {', '.join(missing)}"
        )
    if present:
        num, pid = out["num_processes"], out["process_id"]
        if pid >= num:
            raise InputError(
                f"{label('process_id')} must be from 0 to {num - 1} for "
                f"{label('num_processes')} {num}, got {pid}"
            )
        if num > 1 and method == "langevin":
            raise InputError(
                f"{label('num_processes')} {num}: only the SMC methods run over several "
                "processes; choose an SMC method"
            )


def ignored_options(config: Mapping[str, Any], given: set[str]) -> list[str]:
    """The options in ``given`` that ``config['method']`` does not use."""
    method = config["method"]
    return [k for k in sorted(given) if k in USED_BY and method not in USED_BY[k]]


# -- TOML config files ----------------------------------------------------------------------


def load_toml(path: str | os.PathLike, keys: tuple[str, ...] = FIT_KEYS) -> dict[str, Any]:
    """Read options from a TOML file: a flat table of long option names (dashes or underscores).

    Relative paths in the file (``data``, ``test``, ``out``, ``data_dir``) are taken
    relative to the file's folder.

    Raises
    ------
    InputError
        If the file is missing, unreadable, not valid TOML, or holds unknown keys.
    """
    p = Path(path)
    raw = read_input_bytes(p, "config", "--config", "a TOML file")
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(
            f"config file {str(p)!r} is not a text file; give a TOML file to --config"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in keys:
            hint = "" if isinstance(value, dict) else f"; valid keys: {', '.join(sorted(keys))}"
            what = "table" if isinstance(value, dict) else "key"
            raise InputError(f"unknown {what} {raw_key!r} in config file {str(p)!r}{hint}")
        if key in out:
            raise InputError(f"config file {str(p)!r} sets {key!r} twice (dashes and underscores)")
        if OPTION_BY_NAME[key].kind == "path" and isinstance(value, str) and value.strip():
            value = str(_resolve(p.parent, value))
        out[key] = value
    return out


def _resolve(base: Path, value: str) -> Path:
    v = Path(value).expanduser()
    return v if v.is_absolute() else base / v


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        # JSON string escapes are valid TOML basic-string escapes (ensure_ascii keeps \\uXXXX).
        import json

        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(config: Mapping[str, Any], header: str = "") -> str:
    """Write a flat configuration as TOML (``None`` values, i.e. "automatic", are left out)."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    for key, value in config.items():
        if value is None:
            lines.append(f"# {key} = (not set: automatic or none)")
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
