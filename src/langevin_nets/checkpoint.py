"""Checkpoints of a sampler's state: atomic ``.npz`` + ``.json`` pairs, no pickle.

A checkpoint at ``PATH`` is two files, ``PATH.npz`` (the arrays) and ``PATH.json`` (the
metadata, readable by people and tools); a ``PATH`` ending in ``.npz`` or ``.json`` names
the same pair. Each file is written to a temporary file in the same directory, flushed,
``fsync``-ed and moved into place with ``os.replace``, so a reader (or a run killed at
any moment) sees either the previous checkpoint or the new one, never a mix.

The ``.npz`` is the source of truth: it carries its own copy of the metadata (as the
UTF-8 bytes of the JSON text, array ``__meta__``), so that a run killed between the two
replacements still resumes from a consistent state. Arrays are loaded with
``allow_pickle=False``; metadata is JSON only.

The metadata records the format and its version, what wrote it (``kind``), a description
of the configuration with its hash, and a hash of the data; :func:`check_compatible`
refuses to resume with another configuration or other data.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "langevin-nets-checkpoint"
VERSION = 1
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, of another format version, or written
    with another configuration or data."""


# -- paths ------------------------------------------------------------------------------------


def paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(npz, json)`` files of the checkpoint ``path``.

    Raises
    ------
    TypeError
        If ``path`` is not a string or path.
    ValueError
        If it is empty or one of the two files is a directory.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"checkpoint must be a path, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or text.strip() == "":
        raise ValueError(f"checkpoint must be a non-empty path, got {path!r}")
    p = Path(text).expanduser()
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    npz, meta = p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")
    for f in (npz, meta):
        if f.is_dir():
            raise ValueError(f"checkpoint file {str(f)!r} is a directory")
    return npz, meta


def exists(path: str | os.PathLike) -> bool:
    """Whether a checkpoint is stored at ``path`` (its ``.npz`` exists)."""
    return paths(path)[0].is_file()


def remove(path: str | os.PathLike) -> None:
    """Delete the checkpoint at ``path`` and any temporary file a killed write left."""
    npz, meta = paths(path)
    for f in (npz, meta):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
        if f.parent.is_dir():
            for tmp in f.parent.glob(f"{f.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


# -- hashing ------------------------------------------------------------------------------------


def array_digest(*arrays: Any) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON text of ``obj`` (sorted keys)."""
    text = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def describe(obj: Any) -> str:
    """``repr(obj)`` without memory addresses (which change from one process to the next)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def _jsonable(obj: Any) -> Any:
    """Plain JSON values; non-finite floats become strings (JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


# -- atomic writes ------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some systems cannot open a directory (then skip).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically: ``write(binary file)`` into a temporary file beside it,
    flush, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# -- save / load --------------------------------------------------------------------------------


def save(path: str | os.PathLike, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Store ``arrays`` (numeric or boolean) and JSON ``meta`` at ``path``, atomically.

    The format name and version are added to ``meta``.
    """
    npz, meta_path = paths(path)
    data: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint array {name!r} has dtype {arr.dtype}; numbers only")
        if name == _META:
            raise ValueError(f"{_META!r} is a reserved name")
        data[name] = arr
    full = {"format": FORMAT, "version": VERSION, **_jsonable(dict(meta))}
    text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False) + "\n"
    data[_META] = np.frombuffer(text.encode(), dtype=np.uint8)

    def write_npz(fh: Any) -> None:
        buf = io.BytesIO()
        np.savez(buf, **data)
        fh.write(buf.getvalue())

    atomic_write(npz, write_npz)
    atomic_write(meta_path, lambda fh: fh.write(text.encode()))


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata stored at ``path``, or None if there is no checkpoint.

    Raises
    ------
    CheckpointError (a ValueError)
        If the file is unreadable, not a checkpoint, or of another format version.
    """
    npz, _ = paths(path)
    if not npz.is_file():
        return None
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # zipfile, OSError, ValueError...: all mean "unreadable"
        raise CheckpointError(f"checkpoint {str(npz)!r} is unreadable ({err}); delete it") from None
    raw = arrays.pop(_META, None)
    try:
        meta = json.loads(bytes(raw).decode()) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(npz)!r} is not a langevin-nets checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {str(npz)!r} has format version {meta.get('version')!r}; this "
            f"version of langevin-nets reads version {VERSION}; delete it to start afresh"
        )
    return arrays, meta


def info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata of the checkpoint at ``path`` (None if there is none)."""
    loaded = load(path)
    return None if loaded is None else loaded[1]


def check_compatible(
    meta: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    kind: str,
    config: Mapping[str, Any],
    data_hash: str | None,
) -> None:
    """Refuse to resume a checkpoint written by another sampler, configuration or data.

    Raises
    ------
    CheckpointError (a ValueError)
        Naming the first setting that differs, when it can.
    """
    where = str(paths(path)[0])
    if meta.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint {where!r} was written by {meta.get('kind')!r}, not {kind!r}"
        )
    config = _jsonable(dict(config))
    if meta.get("config_hash") != digest(config):
        old = meta.get("config") or {}
        diffs = [
            f"{k}: {_shown(old.get(k))} in the checkpoint, {_shown(config.get(k))} now"
            for k in sorted(set(old) | set(config))
            if old.get(k) != config.get(k)
        ]
        detail = f" ({'; '.join(diffs[:3])})" if diffs else ""
        raise CheckpointError(
            f"checkpoint {where!r} was written with a different configuration{detail}; "
            "resume with the same settings and seed, or delete the checkpoint to start afresh"
        )
    if data_hash is not None and meta.get("data_hash") != data_hash:
        raise CheckpointError(
            f"checkpoint {where!r} was written for different data (or a different model); "
            "resume with the same data, or delete the checkpoint to start afresh"
        )


def _shown(value: Any) -> str:
    """A setting as shown in messages: hashes shortened, floats to 6 digits."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return f"hash {value[:10]}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def header(kind: str, config: Mapping[str, Any], data_hash: str | None) -> dict[str, Any]:
    """The metadata entries :func:`check_compatible` reads."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("langevin-nets")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        pkg = None
    import jax

    config = _jsonable(dict(config))
    return {
        "kind": kind,
        "config": config,
        "config_hash": digest(config),
        "data_hash": data_hash,
        "langevin_nets_version": pkg,
        "jax_version": jax.__version__,
    }


__all__ = [
    "FORMAT",
    "CheckpointError",
    "VERSION",
    "array_digest",
    "atomic_write",
    "check_compatible",
    "describe",
    "digest",
    "exists",
    "header",
    "info",
    "load",
    "paths",
    "remove",
    "save",
]
