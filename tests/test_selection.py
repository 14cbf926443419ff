"""select_by_evidence: the choice and the evidences against closed forms, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import count_compiles
from langevin_nets.selection import best_index, select_by_evidence

NOISE = 0.5
N_PARTICLES = 256


def _data():
    rng = np.random.default_rng(11)
    X = rng.uniform(-2.0, 2.0, (30, 2))
    y = 1.5 * X[:, 0] - 0.5 * X[:, 1] + 0.3 + NOISE * rng.standard_normal(30)
    Xt = rng.uniform(-2.0, 2.0, (10, 2))
    yt = 1.5 * Xt[:, 0] - 0.5 * Xt[:, 1] + 0.3 + NOISE * rng.standard_normal(10)
    return X, y, Xt, yt


def _exact_log_evidence(X, y, scale):
    """Bayesian linear regression as fit() runs it: standardised inputs and target (ddof 0),
    fan-in prior of scale ``scale`` (weights N(0, scale^2 / d), bias N(0, scale^2)), the
    fixed noise level in the standardised units; the evidence back in original units."""
    mx, sx, my, sy = X.mean(0), X.std(0), y.mean(), y.std()
    Z, u = (X - mx) / sx, (y - my) / sy
    d = X.shape[1]
    Phi = np.column_stack([Z, np.ones(len(Z))])
    prior = scale**2 * np.diag([1.0 / d] * d + [1.0])
    K = Phi @ prior @ Phi.T + (NOISE / sy) ** 2 * np.eye(len(u))
    _, logdet = np.linalg.slogdet(K)
    log_z = -0.5 * (u @ np.linalg.solve(K, u) + logdet + len(u) * math.log(2 * math.pi))
    return float(log_z - len(u) * math.log(sy))


COMMON = dict(method="smc-adaptive", hidden=(), prior="fan_in", noise_std=NOISE,
              particles=N_PARTICLES, steps=3, seed=3)  # fmt: skip


def test_chooses_the_highest_evidence_and_each_matches_its_closed_form():
    X, y, Xt, yt = _data()
    scales = (0.05, 1.0, 30.0)
    exact = [_exact_log_evidence(X, y, s) for s in scales]
    # Far apart: too narrow a prior cannot fit the slope, too wide a one pays for its volume.
    assert exact[1] - max(exact[0], exact[2]) > 3.0
    # The first candidate compiles; the others differ only in the prior scale and reuse it.
    select_by_evidence(X, y, Xt, yt, candidates=[{"prior_scale": 0.5}], **COMMON)
    sel, compiles = count_compiles(
        select_by_evidence, X, y, Xt, yt,
        candidates=[{"prior_scale": s} for s in scales], **COMMON,
    )  # fmt: skip
    assert compiles == 0
    assert sel.index == 1 and sel.best is sel.fits[1]
    assert [c["prior_scale"] for c in sel.candidates] == list(scales)
    assert all(c["noise_std"] == NOISE for c in sel.candidates)
    # SMC's log-evidence estimate: about 10 stages at ESS ~ N/2 give sd ~ 0.2 (see
    # test_cli_fit's closed-form test); 1 nat is about four sd plus the bias.
    for got, want in zip(sel.log_evidences, exact, strict=True):
        assert got == pytest.approx(want, abs=1.0)
    assert sel.best.test is not None and math.isfinite(sel.best.test.log_likelihood)


def test_best_index_skips_non_finite_evidence_and_keeps_the_first_of_ties():
    assert best_index([math.nan, -3.0, -math.inf, -1.0]) == 3
    assert best_index([-2.0, -1.0, -1.0]) == 1
    assert best_index([math.inf, 0.0]) == 1  # +inf is a failed estimate too
    with pytest.raises(RuntimeError, match="no candidate has a finite log evidence"):
        best_index([math.nan, -math.inf])


@pytest.mark.parametrize(
    ("candidates", "options", "error", "match"),
    [
        ([], {}, ValueError, "candidates is empty"),
        ({"prior_scale": 1.0}, {}, TypeError, "candidates must be a list"),
        ([{"prior_scale": 1.0}, 2.0], {}, TypeError, "candidate 1 must be a dict"),
        ([{"prior_scal": 1.0}], {}, TypeError, "candidate 0: unknown option 'prior_scal'"),
        ([{}], {"particle": 8}, TypeError, "unknown option 'particle'"),
        ([{"checkpoint": "c"}], {}, ValueError, "'checkpoint' cannot be set"),
        ([{}], {"method": "langevin"}, ValueError, "candidate 0: method 'langevin' gives no"),
        ([{}, {"prior_scale": -1.0}], {}, ValueError, "candidate 1: prior_scale"),
        ([{}, {"method": "smc-magic"}], {}, ValueError, "candidate 1: unknown method"),
    ],
)
def test_bad_candidates_are_refused_before_any_fit(candidates, options, error, match):
    X, y, _, _ = _data()
    _, compiles = count_compiles(_raises, error, match, X, y, candidates, options)
    assert compiles == 0  # nothing ran


def _raises(error, match, X, y, candidates, options):
    with pytest.raises(error, match=match):
        select_by_evidence(X, y, candidates=candidates, **options)


def test_bad_data_are_refused_before_any_fit():
    X, y, _, _ = _data()
    with pytest.raises(ValueError, match="rows"):
        select_by_evidence(X, y[:-1], candidates=[{}])
