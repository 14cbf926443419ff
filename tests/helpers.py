"""Helpers shared by several test modules (imported as ``helpers``: pytest puts ``tests/``
on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.monitoring
import numpy as np

#: The JAX monitoring event emitted once per backend compilation.
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def count_compiles(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), number of backend compilations it triggered)``."""
    events = []

    def listen(event, duration, **_):
        if event == BACKEND_COMPILE:
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        out = jax.block_until_ready(fn(*args, **kwargs))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return out, len(events)


def same(a, b) -> bool:
    """Whether two pytrees hold bitwise-equal arrays (NaN equal to NaN)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def assert_one_error(err: str, *needles: str) -> str:
    """The CLI's stderr is one ``error:`` line holding every needle (case-insensitive)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {err!r}"
    assert lines[0].startswith("error:"), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    assert "Traceback" not in err
    return lines[0]


def assert_nothing_written(tmp_path: Path, out: Path) -> None:
    """No output folder and no temporary or backup files left in ``tmp_path``."""
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
