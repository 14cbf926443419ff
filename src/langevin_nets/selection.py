"""Choosing among model candidates by their log evidence on the training data.

>>> sel = select_by_evidence(X, y, X_test, y_test,                          # doctest: +SKIP
...                          candidates=[{"prior_scale": 1.0}, {"prior_scale": 2.0}])
>>> sel.best.test.log_likelihood, sel.log_evidences                        # doctest: +SKIP

Each candidate is one :func:`~langevin_nets.fit.fit` with an SMC method, which estimates
the log evidence ``log p(y_train | candidate)`` along the way; the candidate with the
highest one is chosen. The test data play no part in the choice. Candidates that differ
only in the prior scale, the noise prior or the noise floor share one compiled program
(these are traced values of the posterior), so each after the first costs its sampling
alone.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from langevin_nets.fit import (
    CONFIG_KEYS,
    SMC_SCHEDULES,
    FitResult,
    check_data,
    checked_config,
    fit,
)
from langevin_nets.io.config import InputError, InputTypeError

# fit()'s options a candidate may not set: the data are shared, and so would be a
# checkpoint path.
_NOT_OPTIONS = ("X", "y", "X_test", "y_test", "checkpoint", "checkpoint_every", "resume")


class EvidenceSelection(NamedTuple):
    """The outcome of :func:`select_by_evidence`.

    Attributes
    ----------
    best : FitResult
        The fit of the chosen candidate.
    index : int
        Its position in ``candidates``.
    candidates : tuple of dict
        Each candidate's full options (the common ones with its own on top).
    log_evidences : tuple of float
        Each candidate's log evidence on the training data, in the target's original
        units (comparable across candidates, standardised or not).
    fits : tuple of FitResult
        Every candidate's fit, in order.
    """

    best: FitResult
    index: int
    candidates: tuple[dict[str, Any], ...]
    log_evidences: tuple[float, ...]
    fits: tuple[FitResult, ...]


def select_by_evidence(
    X: Any,
    y: Any,
    X_test: Any = None,
    y_test: Any = None,
    *,
    candidates: Sequence[Mapping[str, Any]],
    on_fit: Callable[[int, dict[str, Any], FitResult], None] | None = None,
    **options: Any,
) -> EvidenceSelection:
    """Fit every candidate and keep the one with the highest training log evidence.

    Parameters
    ----------
    X, y, X_test, y_test
        As for :func:`~langevin_nets.fit.fit`; the test data are evaluated for every
        candidate but never used to choose.
    candidates : sequence of mapping
        Each candidate's :func:`~langevin_nets.fit.fit` options, e.g.
        ``[{"prior_scale": 1.0}, {"prior_scale": 2.0, "hidden": (25,)}]``; they override
        ``options``.
    on_fit : callable, optional
        Called as ``on_fit(index, candidate_options, fit_result)`` after each candidate's
        fit, e.g. to report progress.
    **options
        :func:`~langevin_nets.fit.fit` options common to every candidate (``method`` must
        be an SMC method, the default ``smc-adaptive`` is one). Checkpoints are not
        available here.

    Returns
    -------
    EvidenceSelection
        The chosen fit, its index, every candidate's options, log evidence and fit. Ties
        go to the earlier candidate; a candidate whose log evidence is not finite is
        never chosen.

    Raises
    ------
    ValueError, TypeError
        For an empty or malformed candidate list, an unknown option, a method without a
        log evidence (``langevin``), a bad option value (named with its candidate) or bad
        data: all before anything is fitted.
    RuntimeError
        If no candidate's log evidence is finite.
    """
    merged = _merged_candidates(candidates, options)
    for i, cand in enumerate(merged):
        _check_candidate(i, cand)
    check_data(X, y, X_test, y_test)

    if on_fit is not None and not callable(on_fit):
        raise InputTypeError(f"on_fit must be callable or None, got {type(on_fit).__name__}")
    fits_list = []
    for i, cand in enumerate(merged):
        fits_list.append(fit(X, y, X_test, y_test, **cand))
        if on_fit is not None:
            on_fit(i, dict(cand), fits_list[-1])
    fits = tuple(fits_list)
    log_z = tuple(math.nan if f.log_evidence is None else float(f.log_evidence) for f in fits)
    index = best_index(log_z)
    return EvidenceSelection(fits[index], index, tuple(merged), log_z, fits)


def best_index(log_evidences: Sequence[float]) -> int:
    """The index of the highest finite log evidence (the first of equal ones).

    Raises
    ------
    RuntimeError
        If none is finite.
    """
    finite = [i for i, z in enumerate(log_evidences) if math.isfinite(z)]
    if not finite:
        raise RuntimeError(
            f"no candidate has a finite log evidence ({list(log_evidences)}); every fit "
            "failed (see its warnings)"
        )
    return max(finite, key=lambda i: (log_evidences[i], -i))


def _allowed() -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(fit).parameters if p not in _NOT_OPTIONS)


def _merged_candidates(
    candidates: Any, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each candidate's options on top of the common ones, the names checked."""
    allowed = _allowed()

    def check_names(names: Any, where: str) -> None:
        for name in names:
            if name in _NOT_OPTIONS:
                raise InputError(f"{where}: {name!r} cannot be set per selection")
            if name not in allowed:
                raise InputTypeError(
                    f"{where}: unknown option {name!r}; fit() options: {', '.join(allowed)}"
                )

    check_names(options, "select_by_evidence")
    if isinstance(candidates, Mapping | str | bytes) or not isinstance(candidates, Sequence):
        raise InputTypeError(
            "candidates must be a list of dicts of fit() options, got "
            f"{type(candidates).__name__}"
        )
    if len(candidates) == 0:
        raise InputError("candidates is empty: give at least one dict of fit() options")
    merged = []
    for i, cand in enumerate(candidates):
        if not isinstance(cand, Mapping):
            raise InputTypeError(
                f"candidate {i} must be a dict of fit() options, got {type(cand).__name__}"
            )
        check_names(cand, f"candidate {i}")
        merged.append({**options, **cand})
    return merged


def _check_candidate(index: int, options: dict[str, Any]) -> None:
    """Check one candidate's options as :func:`fit` would, before any fit runs."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(fit).parameters.items()
        if name in CONFIG_KEYS
    }
    given = {k: options.get(k, v) for k, v in defaults.items() if k != "devices"}
    try:
        cfg, _ = checked_config(given, options.get("devices", defaults.get("devices")))
    except (InputError, InputTypeError) as err:
        raise type(err)(f"candidate {index}: {err}") from None
    if cfg["method"] not in SMC_SCHEDULES:
        raise InputError(
            f"candidate {index}: method {cfg['method']!r} gives no log evidence; choose one "
            f"of {', '.join(SMC_SCHEDULES)}"
        )
