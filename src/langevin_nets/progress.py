"""Progress bars for compiled loops: a host callback fired every few iterations."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

Array = jax.Array

# Open bars by id, so the callback (a plain host function) can find its bar.
_BARS: dict[int, Any] = {}


class ProgressBar:
    """A tqdm bar driven from inside ``jit`` through :func:`jax.debug.callback`.

    Use as a context manager around the compiled call; inside the traced loop call
    :meth:`update` with the iteration counter.
    """

    def __init__(self, total: int, desc: str = "", enabled: bool = True, every: int | None = None):
        self.total = int(total)
        self.enabled = bool(enabled) and self.total > 0
        self.every = max(1, every if every is not None else self.total // 100)
        self.desc = desc
        self._id = id(self)

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            _BARS[self._id] = tqdm(total=self.total, desc=self.desc, file=sys.stderr, leave=False)
        return self

    def __exit__(self, *exc: object) -> None:
        bar = _BARS.pop(self._id, None)
        if bar is not None:
            bar.close()

    def update(self, i: Array) -> None:
        """Report that iteration ``i`` (0-based, traced) is done."""
        if not self.enabled:
            return
        bar_id, every, total = self._id, self.every, self.total

        def _host(done: np.ndarray) -> None:
            bar = _BARS.get(bar_id)
            if bar is not None:
                bar.update(int(done) - bar.n)

        done = i + 1
        jax.lax.cond(
            (done % every == 0) | (done == total),
            lambda d: jax.debug.callback(_host, d),
            lambda d: None,
            done,
        )


def maybe_progress(fn: Callable[..., Any], bar: ProgressBar) -> Callable[..., Any]:
    """Wrap a scan body ``fn(carry, (i, x))`` so that it reports ``i`` to ``bar``."""

    def wrapped(carry: Any, ix: Any) -> Any:
        i, _ = ix
        out = fn(carry, ix)
        bar.update(i)
        return out

    return wrapped


# Open level bars by a small integer key: the key is passed to compiled code as a traced
# argument, so a new bar does not change the compiled program.
_LEVEL_BARS: dict[int, Any] = {}
_LEVEL_KEYS = iter(range(2**31 - 1))


class LevelProgressBar:
    """A tqdm bar showing a level (a float in ``[0, total]`` or a count) reached so far.

    For loops whose progress is not one unit per iteration, e.g. SMC stages moving a
    tempering exponent from 0 to 1. Use as a context manager around the compiled call; pass
    :attr:`key` into the compiled function and call :func:`report_level` there.
    """

    def __init__(self, total: float, desc: str = "", enabled: bool = True) -> None:
        self.total = total
        self.enabled = bool(enabled)
        self.desc = desc
        self.key = next(_LEVEL_KEYS)

    def __enter__(self) -> LevelProgressBar:
        if self.enabled:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.4g}/{total:.4g} [{elapsed}{postfix}]"
            _LEVEL_BARS[self.key] = tqdm(
                total=self.total, desc=self.desc, file=sys.stderr, leave=False, bar_format=fmt
            )
        return self

    def __exit__(self, *exc: object) -> None:
        bar = _LEVEL_BARS.pop(self.key, None)
        if bar is not None:
            bar.close()


def report_level(bar_key: Array, level: Array, stage: Array) -> None:
    """From traced code: set the bar ``bar_key`` to ``level`` and show the ``stage`` count."""

    def _host(k: np.ndarray, value: np.ndarray, s: np.ndarray) -> None:
        bar = _LEVEL_BARS.get(int(k))
        if bar is not None:
            bar.n = max(bar.n, float(value))
            bar.set_postfix_str(f"stage {int(s)}", refresh=False)
            bar.refresh()

    jax.debug.callback(_host, bar_key, level, stage)
