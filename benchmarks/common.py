"""Shared helpers for the benchmarks: machine info, compile-time capture, timing, output.

Every benchmark writes one JSON file whose ``machine`` entry comes from
:func:`machine_info`, so numbers from different machines and commits can be compared.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.monitoring

REPO_ROOT = Path(__file__).resolve().parents[1]

# Events jax records for each compilation: tracing to a jaxpr, lowering to MLIR and the
# XLA backend compile. Their sum is what a call spends before it starts to run.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    """Where and with what a benchmark ran.

    Returns
    -------
    dict
        CPU model, logical cores (total and usable by this process), load average,
        platform, Python, JAX and jaxlib versions, JAX backend and devices, whether
        64-bit mode is on, ``XLA_FLAGS``, the git commit and a UTC timestamp.
    """
    import jaxlib

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "timestamp_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "load_average_1_5_15min": load,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64_enabled": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "git": _git_revision(),
    }


class CompileTimer:
    """Sum the compile time jax reports while the context is open.

    jax emits a duration event for each trace, lowering and backend compile; this
    listens to them, so the compile time of a call can be told apart from its run
    time even when the callee compiles internally on every call.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0

    def _listen(self, event: str, duration: float, **_: Any) -> None:
        if event in COMPILE_EVENTS:
            self.seconds += duration
            self.count += 1

    def __enter__(self) -> CompileTimer:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


def timed_call(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn()`` to completion (``block_until_ready``) and time it.

    Returns
    -------
    dict
        ``result``; ``wall_s`` (total wall time); ``compile_s`` (trace, lowering and
        compile time jax reported during the call); ``run_s = wall_s - compile_s``;
        ``cpu_s`` (process CPU time, all threads); ``compiles`` (compile events seen).
    """
    with CompileTimer() as ct:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = jax.block_until_ready(fn())
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return {
        "result": result,
        "wall_s": wall,
        "compile_s": ct.seconds,
        "run_s": max(wall - ct.seconds, 0.0),
        "cpu_s": cpu,
        "compiles": ct.count,
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with 4 significant digits."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(script: str, args: Sequence[str]) -> str:
    """How a benchmark was run, for its results file: ``.venv/bin/python benchmarks/SCRIPT
    ARGS``, led by ``nice`` only when this process runs at a lower priority (its timings
    are then upper bounds on a shared machine)."""
    import shlex

    niced = hasattr(os, "nice") and os.nice(0) > 0
    return ("nice " if niced else "") + " ".join(
        [f".venv/bin/python benchmarks/{script}", shlex.join(list(args))]
    ).rstrip()


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON, creating parent folders; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    return path
