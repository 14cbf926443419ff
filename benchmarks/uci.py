"""UCI regression benchmark: SMC Bayesian neural networks against the published numbers.

Runs the standard UCI protocol (see ``shared/data/uci/README.md``) on the data sets and
splits asked for:

* one hidden layer of ``n_hidden.txt`` units (50), ReLU, as in the published runs;
* inputs and target standardised with the *training* split's statistics (done by
  :func:`langevin_nets.fit.fit`);
* test RMSE of the predictive mean and test log-likelihood (mean over test points of
  the log posterior predictive density), both in the target's original units;
* mean ± standard error (sample std / sqrt(splits)) over the splits run.

One fixed recipe for every data set: ``smc-adaptive`` (adaptive likelihood tempering,
HMC moves), ``fan_in`` prior with ``prior_scale`` 1, Gamma(1, 1) prior on the noise
level, ``--particles`` particles and ``--steps`` HMC moves of ``--integration-steps``
leapfrog steps per stage (defaults: those of ``langevin-nets uci``). The test split is
never used to choose anything. With ``--select-by-evidence`` the prior scale (and the
noise-prior shape and the hidden width, if several are given) is also chosen per split
among a small candidate set by the SMC estimate of the log evidence ``log p(y_train | X_train)``:
the candidate with the highest log evidence is reported as the "evidence-selected"
row. The fixed recipe is one of the candidates (same seed), so it is run only once.

The script writes its JSON after every fit (atomically: a temporary file, then a
rename) and skips the fits already in the JSON, so an interrupted run is continued by
running the same command again. A JSON written with a different recipe is refused.

Usage::

    .venv/bin/python benchmarks/uci.py --quick
    nice .venv/bin/python benchmarks/uci.py --datasets boston,yacht --splits 0-2 \\
        --select-by-evidence --out benchmarks/results/uci_smc.json --md benchmarks/results/uci.md

The reference numbers are copied from ``shared/data/uci/README.md`` (published
tables) and from the issue (BlackJAX measurements made elsewhere), see
:data:`PUBLISHED` and :data:`BLACKJAX_ORIENTATION`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, CompileTimer, command_line, machine_info  # noqa: E402
from langevin_nets.io.config import UCI_DEFAULTS  # noqa: E402

# -- reference numbers (data) -------------------------------------------------------------------

#: Published test RMSE / test log-likelihood (mean over all 20 splits; protein 5), from
#: ``shared/data/uci/README.md``: Hernández-Lobato & Adams 2015 (PBP); Gal & Ghahramani
#: 2016, Table 1, corrected version (MC dropout); the MC dropout authors' 2018 rerun with
#: grid-searched hyperparameters; Lakshminarayanan et al. 2017, Table 1 (deep ensembles).
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "boston": {"pbp": (3.01, -2.57), "mcdropout_2016": (2.97, -2.46),
               "mcdropout_2018": (2.90, -2.40), "deep_ensembles": (3.28, -2.41)},
    "concrete": {"pbp": (5.67, -3.16), "mcdropout_2016": (5.23, -3.04),
                 "mcdropout_2018": (4.82, -2.93), "deep_ensembles": (6.03, -3.06)},
    "energy": {"pbp": (1.80, -2.04), "mcdropout_2016": (1.66, -1.99),
               "mcdropout_2018": (0.54, -1.21), "deep_ensembles": (2.09, -1.38)},
    "kin8nm": {"pbp": (0.10, 0.90), "mcdropout_2016": (0.10, 0.95),
               "mcdropout_2018": (0.08, 1.14), "deep_ensembles": (0.09, 1.20)},
    "naval": {"pbp": (0.01, 3.73), "mcdropout_2016": (0.01, 3.80),
              "mcdropout_2018": (0.00, 4.45), "deep_ensembles": (0.00, 5.63)},
    "power": {"pbp": (4.12, -2.84), "mcdropout_2016": (4.02, -2.80),
              "mcdropout_2018": (4.01, -2.80), "deep_ensembles": (4.11, -2.79)},
    "protein": {"pbp": (4.73, -2.97), "mcdropout_2016": (4.36, -2.89),
                "mcdropout_2018": (4.27, -2.87), "deep_ensembles": (4.71, -2.83)},
    "wine": {"pbp": (0.64, -0.97), "mcdropout_2016": (0.62, -0.93),
             "mcdropout_2018": (0.62, -0.93), "deep_ensembles": (0.64, -0.94)},
    "yacht": {"pbp": (1.02, -1.63), "mcdropout_2016": (1.11, -1.55),
              "mcdropout_2018": (0.67, -1.25), "deep_ensembles": (1.58, -1.18)},
}  # fmt: skip
PUBLISHED_LABELS = {
    "pbp": "PBP (2015)",
    "mcdropout_2016": "MC dropout (2016)",
    "mcdropout_2018": "MC dropout rerun (2018)",
    "deep_ensembles": "deep ensembles (2017)",
}
#: A plain linear Gaussian model on the same splits (README): anything worse is broken.
LINEAR_BASELINE: dict[str, tuple[float, float]] = {
    "boston": (4.59, -2.97), "concrete": (10.31, -3.76), "energy": (3.06, -2.54),
    "wine": (0.654, -1.00), "yacht": (8.97, -3.63),
}  # fmt: skip
#: Test log-likelihood measured elsewhere (not by this script) with BlackJAX adaptive
#: tempered SMC: HMC moves, 256 particles, fan-in prior, 40-100 s a split on 2 CPU cores;
#: numbers from the issue. ``stderr`` is None where only the mean was given.
BLACKJAX_ORIENTATION: dict[str, dict[str, Any]] = {
    "yacht": {"log_likelihood": -0.40, "stderr": 0.04, "splits": "0-4"},
    "energy": {"log_likelihood": -0.71, "stderr": 0.08, "splits": "0-4"},
    "boston": {"log_likelihood": -2.43, "stderr": 0.12, "splits": "0-4"},
    "concrete": {"log_likelihood": -3.19, "stderr": None, "splits": "0-2"},
    "wine": {"log_likelihood": -1.00, "stderr": None, "splits": "0-2"},
}

# -- the recipe --------------------------------------------------------------------------------

DEFAULT_DATASETS = ("boston", "concrete", "energy", "wine", "yacht")
METHOD = "smc-adaptive"
ACTIVATION = UCI_DEFAULTS["activation"]
PRIOR = "fan_in"
FIXED_PRIOR_SCALE = 1.0
FIXED_NOISE_SHAPE = 1.0
DEFAULT_PRIOR_SCALES = (0.5, 1.0, 2.0)
DEFAULT_NOISE_SHAPES = (1.0,)
NOISE_MODELS = ("homoscedastic", "heteroscedastic")
# The heteroscedastic candidates' noise floor (fit's noise_floor): "auto" is the rounding
# noise h / sqrt(12) of a target recorded on a grid of spacing h (20 distinct values or
# fewer; of these data sets only wine, whose grades have h = 1), and no floor for any other
# target. Without it the per-point noise collapsed where wine's training grades agreed
# (split 8: noise 0.0003 at a test point, test LL -115). The homoscedastic candidates are
# the published Gaussian model, without a floor.
HETERO_NOISE_FLOOR = "auto"
# The recipe is `langevin-nets uci`'s defaults: few particles, long trajectories. On split 0
# the training log evidence rose far more with the leapfrog steps per move than with the
# particles or moves (yacht: -479 at 64 x 5 x 20, -414 at 256 x 10 x 20, -343 at 32 x 5 x
# 100; benchmarks/uci_budget.py). About 15-60 s a split on 2 CPU cores (yacht .. wine).
DEFAULT_PARTICLES = UCI_DEFAULTS["particles"]
DEFAULT_STEPS = UCI_DEFAULTS["steps"]
DEFAULT_INTEGRATION_STEPS = UCI_DEFAULTS["integration_steps"]
QUICK = {"datasets": ("yacht", "boston"), "splits": "first 2", "particles": 32, "steps": 3}
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS_DIR / "uci_smc.json"
QUICK_OUT = RESULTS_DIR / "uci_quick.json"
# Recipe entries that must match for a JSON to be continued.
RECIPE_KEYS = ("method", "activation", "prior", "fixed_prior_scale", "fixed_noise_shape",
               "particles", "steps", "integration_steps", "seed",
               "heteroscedastic_noise_floor")  # fmt: skip
# Recipe entries added later: a JSON without them was run with these values.
RECIPE_DEFAULTS = {"integration_steps": 20}


class UsageError(Exception):
    """Bad command-line input: reported as one ``error:`` line, exit status 2."""


# -- arguments ---------------------------------------------------------------------------------


def parse_splits(spec: str, n_splits: int) -> list[int]:
    """Split numbers from ``"K"``, ``"0,3,5"``, ``"0-2"``, ``"all"`` or ``"first K"``.

    ``first K`` (also ``firstK``, ``first:K``) and ``all`` are clipped to ``n_splits``;
    explicit numbers must exist.
    """
    s = spec.strip().lower()
    if s == "all":
        return list(range(n_splits))
    m = re.fullmatch(r"first[\s:=]*(\d+)", s)
    if m:
        k = int(m.group(1))
        if k < 1:
            raise UsageError(f"--splits {spec!r}: 'first K' needs K >= 1")
        return list(range(min(k, n_splits)))
    out: list[int] = []
    for part in s.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise UsageError(f"--splits {spec!r}: empty range {part!r}")
            out += list(range(a, b + 1))
        elif re.fullmatch(r"\d+", part):
            out.append(int(part))
        else:
            raise UsageError(
                f"--splits {spec!r}: expected K, a list 0,3,5, a range 0-2, 'all' or 'first K'"
            )
    bad = [k for k in out if k >= n_splits]
    if bad:
        raise UsageError(f"--splits {spec!r}: split {bad[0]} does not exist (0..{n_splits - 1})")
    return list(dict.fromkeys(out))


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
        raise UsageError(f"{name} must be positive numbers, got {text!r}")
    return tuple(dict.fromkeys(vals))


def _noise_models(text: str) -> tuple[str, ...]:
    """``--noise-models``: known names, at least one, no repeats."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in NOISE_MODELS]
    if not names or bad:
        raise UsageError(f"--noise-models must be a comma-separated list of "
                         f"{', '.join(NOISE_MODELS)}, got {text!r}")  # fmt: skip
    return names


def _positive_int(text: str, name: str, least: int = 1) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {text!r}") from None
    if v < least:
        raise UsageError(f"{name} must be at least {least}, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="UCI regression benchmark of smc-adaptive Bayesian MLPs against the "
        "published PBP / MC dropout / deep-ensembles numbers.",
    )
    p.add_argument(
        "--datasets",
        default=None,
        metavar="A,B,...",
        help=f"data sets (default: {','.join(DEFAULT_DATASETS)}; "
        f"--quick: {','.join(QUICK['datasets'])})",
    )
    p.add_argument(
        "--splits",
        default=None,
        metavar="SPEC",
        help="K, 0,3,5, 0-2, 'all' or 'first K' (default: 0-2; --quick: first 2)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a cheap subset: yacht and boston, first 2 splits, "
        f"{QUICK['particles']} particles, {QUICK['steps']} moves per stage "
        "(explicit options win)",
    )
    p.add_argument(
        "--select-by-evidence",
        action="store_true",
        help="also choose the prior scale (and noise shape, width, noise model) per split by "
        "the training log evidence among --prior-scales x --noise-shapes x --width-factors "
        "x --noise-models",
    )
    p.add_argument(
        "--prior-scales",
        default=",".join(f"{v:g}" for v in DEFAULT_PRIOR_SCALES),
        metavar="S1,S2,...",
        help="evidence candidates for prior_scale (default: %(default)s)",
    )
    p.add_argument(
        "--noise-shapes",
        default=",".join(f"{v:g}" for v in DEFAULT_NOISE_SHAPES),
        metavar="A1,A2,...",
        help="evidence candidates for noise_shape (default: %(default)s)",
    )
    p.add_argument(
        "--width-factors",
        default="1",
        metavar="F1,F2,...",
        help="evidence candidates for the hidden width, as multiples of the data set's "
        "n_hidden (0.5: 25 units where the protocol has 50; default: %(default)s)",
    )
    p.add_argument(
        "--noise-models",
        default="homoscedastic",
        metavar="M1,M2",
        help="evidence candidates for the noise model: homoscedastic (one noise level) "
        "and/or heteroscedastic (a noise level that depends on the input; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--hetero-width-factors",
        default=None,
        metavar="F1,F2,...",
        help="the width factors of the heteroscedastic candidates, if not --width-factors",
    )
    p.add_argument(
        "--particles",
        default=None,
        metavar="N",
        help=f"SMC particles (default: {DEFAULT_PARTICLES})",
    )
    p.add_argument(
        "--steps",
        default=None,
        metavar="M",
        help=f"HMC moves per SMC stage (default: {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--integration-steps",
        default=None,
        metavar="L",
        help=f"leapfrog steps per HMC move (default: {DEFAULT_INTEGRATION_STEPS})",
    )
    p.add_argument(
        "--seed", default="0", metavar="N", help="base seed; split K uses seed + K (default: 0)"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="UCI data folder (default: $LANGEVIN_NETS_UCI_DIR, else shared/data/uci)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE.json",
        help=f"results JSON, continued if it exists (default: "
        f"{DEFAULT_OUT.relative_to(REPO_ROOT)}; --quick: "
        f"{QUICK_OUT.relative_to(REPO_ROOT)})",
    )
    p.add_argument(
        "--md",
        default=None,
        metavar="FILE.md",
        help="markdown table (default: --out with the suffix .md)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-fit lines on stdout")
    p.add_argument("--progress", action="store_true",
                   help="a progress bar per fit on stderr (a split of kin8nm, naval or power "
                        "takes 10-30 minutes on 2 cores)")  # fmt: skip
    return p  # fmt: skip


# -- JSON --------------------------------------------------------------------------------------


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, allow_nan=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def candidate_key(
    prior_scale: float, noise_shape: float, width_factor: float = 1.0,
    heteroscedastic: bool = False,
) -> str:  # fmt: skip
    """The candidate's name; the width is named only when it is not the protocol's, the
    noise model only when it is heteroscedastic."""
    key = f"prior_scale={prior_scale:g},noise_shape={noise_shape:g}"
    if width_factor != 1.0:
        key += f",width={width_factor:g}x"
    return key + (",heteroscedastic" if heteroscedastic else "")


def hidden_units(n_hidden: int, width_factor: float) -> int:
    """The width of a candidate: ``width_factor`` times the protocol's, at least one unit."""
    return max(1, round(n_hidden * width_factor))


def load_results(path: Path, recipe: dict[str, Any]) -> dict[str, Any]:
    """The JSON at ``path`` if its recipe matches, a fresh skeleton if there is none."""
    if not path.exists():
        return {"benchmark": "uci", "recipe": recipe, "runs": {}, "invocations": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--out {str(path)!r} exists but is not readable JSON: {e}") from None
    if data.get("benchmark") != "uci" or not isinstance(data.get("runs"), dict):
        raise UsageError(f"--out {str(path)!r} is not a UCI benchmark results file")
    old = data.get("recipe", {})
    for k, v in RECIPE_DEFAULTS.items():
        old.setdefault(k, v)
    # Before the floor, heteroscedastic candidates had none; a file without any is the same.
    if "heteroscedastic_noise_floor" not in old:
        hetero = any(c.get("heteroscedastic") for splits in data["runs"].values()
                     for rec in splits.values() for c in rec["candidates"].values())  # fmt: skip
        old["heteroscedastic_noise_floor"] = 0.0 if hetero else HETERO_NOISE_FLOOR
    diff = [k for k in RECIPE_KEYS if old.get(k) != recipe[k]]
    if diff:
        what = ", ".join(f"{k}: {old.get(k)!r} there, {recipe[k]!r} now" for k in diff)
        raise UsageError(
            f"--out {str(path)!r} holds results of another recipe ({what}); "
            "give another --out or the same options"
        )
    data.setdefault("invocations", [])
    return data


# -- one fit -----------------------------------------------------------------------------------


def run_fit(
    X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray, n_hidden: int,
    prior_scale: float, noise_shape: float, particles: int, steps: int, seed: int,
    integration_steps: int = DEFAULT_INTEGRATION_STEPS, progress: bool = False,
    width_factor: float = 1.0, heteroscedastic: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Fit one split with one candidate; metrics in the target's original units.

    ``progress`` shows the fit's per-stage bar on stderr (a large data set's split runs for
    many minutes); it costs one host callback a stage.
    """
    from langevin_nets.fit import fit

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    units = hidden_units(n_hidden, width_factor)
    floor = HETERO_NOISE_FLOOR if heteroscedastic else 0.0
    with CompileTimer() as ct, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        res = fit(
            X, y, Xt, yt, method=METHOD, hidden=(units,), activation=ACTIVATION,
            prior=PRIOR, prior_scale=prior_scale, noise_shape=noise_shape,
            particles=particles, steps=steps, integration_steps=integration_steps, seed=seed,
            progress=progress, heteroscedastic=heteroscedastic, noise_floor=floor,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    return {
        "prior_scale": prior_scale,
        "noise_shape": noise_shape,
        "width_factor": width_factor,
        "heteroscedastic": heteroscedastic,
        # In the target's units: what "auto" resolved to for this split's training target.
        "noise_floor": res.resolved["noise_floor"],
        "hidden_units": units,
        "test_rmse": res.test.rmse,
        "test_log_likelihood": res.test.log_likelihood,
        "test_coverage_90": res.test.coverage_90,
        "train_rmse": res.train.rmse,
        "train_log_likelihood": res.train.log_likelihood,
        "log_evidence": res.log_evidence,
        "num_stages": len(res.stages or []),
        "hit_max_stages": bool(res.sampler.get("hit_max_stages", False)),
        "mean_acceptance_rate": res.sampler.get("mean_acceptance_rate"),
        "final_ess": res.sampler.get("final_ess"),
        "gradient_evaluations": res.gradient_evaluations,
        "wall_seconds": wall,
        "compile_seconds": ct.seconds,
        "load_average_1min_before": load,
        "warnings": sorted({str(w.message) for w in caught})[:5],
    }


# -- aggregation -------------------------------------------------------------------------------


def best_published_log_likelihood(name: str) -> float | None:
    """The highest of :data:`PUBLISHED`'s test log-likelihoods for ``name`` (None if none)."""
    pub = PUBLISHED.get(name)
    return None if pub is None else max(ll for _, ll in pub.values())


def mean_se(values: Sequence[float]) -> dict[str, Any] | None:
    """Mean and standard error (sample std / sqrt(k)); ``stderr`` None for one value."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return None
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "stderr": se, "n": int(v.size)}


def select_by_evidence(split_rec: dict[str, Any], keys: Sequence[str]) -> str | None:
    """The candidate (among ``keys``, all present) with the highest log evidence."""
    cands = split_rec["candidates"]
    if not all(k in cands for k in keys):
        return None
    scored = []
    for i, k in enumerate(keys):
        lz = cands[k]["log_evidence"]
        if lz is not None and math.isfinite(lz):
            scored.append((lz, -i, k))
    if not scored:
        return None
    # Ties go to the earlier candidate (the fixed recipe comes first).
    return max(scored)[2]


#: The aggregate row of the evidence selection among the homoscedastic candidates alone.
HOMO_ROW = "evidence_selected_homoscedastic"


def _selected_row(runs: dict[str, Any], splits: Sequence[str], keys: Sequence[str]
                  ) -> dict[str, Any]:  # fmt: skip
    """The evidence-selected row among ``keys`` over the splits that ran them all."""
    chosen = []
    for s in splits:
        k = select_by_evidence(runs[s], keys)
        if k is not None:
            rec = runs[s]["candidates"]
            chosen.append((int(s), k, rec[k], sum(rec[c]["wall_seconds"] for c in keys)))
    return {
        "candidates": list(keys),
        "splits": [c[0] for c in chosen],
        "chosen": {str(c[0]): c[1] for c in chosen},
        "test_rmse": mean_se([c[2]["test_rmse"] for c in chosen]),
        "test_log_likelihood": mean_se([c[2]["test_log_likelihood"] for c in chosen]),
        "test_coverage_90": mean_se([c[2]["test_coverage_90"] for c in chosen]),
        # All candidates are fitted, so a split costs their sum.
        "wall_seconds": mean_se([c[3] for c in chosen]),
    }


def aggregate(data: dict[str, Any], datasets: Sequence[str], cand_keys: Sequence[str]
              ) -> dict[str, Any]:  # fmt: skip
    """Per data set: the fixed-recipe and evidence-selected rows over the splits done."""
    fixed_key = candidate_key(FIXED_PRIOR_SCALE, FIXED_NOISE_SHAPE)
    out: dict[str, Any] = {}
    for name in datasets:
        runs = data["runs"].get(name, {})
        splits = sorted(runs, key=int)
        fixed = [runs[s]["candidates"][fixed_key] for s in splits
                 if fixed_key in runs[s]["candidates"]]  # fmt: skip
        entry: dict[str, Any] = {
            "fixed": {
                "splits": [int(s) for s in splits if fixed_key in runs[s]["candidates"]],
                "test_rmse": mean_se([r["test_rmse"] for r in fixed]),
                "test_log_likelihood": mean_se([r["test_log_likelihood"] for r in fixed]),
                "test_coverage_90": mean_se([r["test_coverage_90"] for r in fixed]),
                "wall_seconds": mean_se([r["wall_seconds"] for r in fixed]),
                "compile_seconds": mean_se([r["compile_seconds"] for r in fixed]),
            }
        }
        if len(cand_keys) > 1:
            entry["evidence_selected"] = _selected_row(runs, splits, cand_keys)
        homo_keys = [k for k in cand_keys if not k.endswith("heteroscedastic")]
        if 1 < len(homo_keys) < len(cand_keys):
            # The same selection without the heteroscedastic candidates: what they changed.
            entry[HOMO_ROW] = _selected_row(runs, splits, homo_keys)
        ll = entry["fixed"]["test_log_likelihood"]
        best = best_published_log_likelihood(name)
        if ll is not None and best is not None:
            entry["best_published_log_likelihood"] = best
            entry["fixed"]["beats_every_published_log_likelihood"] = ll["mean"] > best
            for row in ("evidence_selected", HOMO_ROW):
                sel = entry.get(row, {}).get("test_log_likelihood")
                if sel is not None:
                    entry[row]["beats_every_published_log_likelihood"] = sel["mean"] > best
        out[name] = entry
    return out


# -- markdown ----------------------------------------------------------------------------------


def _pm(v: dict[str, Any] | None, spec: str) -> str:
    if v is None:
        return "–"
    se = v.get("stderr")
    return f"{v['mean']:{spec}}" + ("" if se is None else f" ± {se:{spec}}")


def _splits_text(splits: Sequence[int]) -> str:
    s = sorted(splits)
    if not s:
        return "none"
    if len(s) > 1 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ",".join(str(k) for k in s)


def _selected(a: dict[str, Any], metric: str, spec: str, row: str = "evidence_selected") -> str:
    """The evidence-selected cell; its splits in brackets when they are not the fixed row's
    (a data set whose other candidates ran on only some splits)."""
    es = a.get(row, {})
    text = _pm(es.get(metric), spec)
    if es.get(metric) is not None and sorted(es["splits"]) != sorted(a["fixed"]["splits"]):
        text += f" [{_splits_text(es['splits'])}]"
    return text


def summary_tables(data: dict[str, Any], datasets: Sequence[str], cand_keys: Sequence[str],
                   level: int = 2) -> list[str]:  # fmt: skip
    """The test log-likelihood, test RMSE and wall-time tables (markdown lines), with
    headings of ``level``; also rendered into the README by ``make_tables.py``."""
    agg = data["aggregate"]
    sel_on = len(cand_keys) > 1
    homo_on = any(HOMO_ROW in agg[name] for name in datasets)
    h = "#" * level
    lines: list[str] = [f"{h} Test log-likelihood (higher is better)", ""]
    head = ["data set", "splits", "ours, fixed"]
    if sel_on:
        head.append("ours, evidence-selected")
    if homo_on:
        head.append("ours, selected among homoscedastic only")
    head += ["BlackJAX SMC (elsewhere)"] + list(PUBLISHED_LABELS.values())
    head.append("beats every published?")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in datasets:
        a = agg[name]
        bj = BLACKJAX_ORIENTATION.get(name)
        bj_text = "–" if bj is None else (_pm({"mean": bj["log_likelihood"],
                                                "stderr": bj["stderr"]}, ".2f")
                                           + f" [{bj['splits']}]")  # fmt: skip
        pub = PUBLISHED.get(name, {})
        row = [name, _splits_text(a["fixed"]["splits"]),
               _pm(a["fixed"]["test_log_likelihood"], ".3f")]  # fmt: skip
        if sel_on:
            row.append(_selected(a, "test_log_likelihood", ".3f"))
        if homo_on:
            row.append(_selected(a, "test_log_likelihood", ".3f", HOMO_ROW))
        row.append(bj_text)
        best = max((v[1] for v in pub.values()), default=None)
        for k in PUBLISHED_LABELS:
            v = pub.get(k)
            row.append("–" if v is None else (f"**{v[1]:.2f}**" if v[1] == best else f"{v[1]:.2f}"))
        verdict = []
        if a["fixed"].get("beats_every_published_log_likelihood") is not None:
            verdict.append("fixed: " + ("yes" if a["fixed"]["beats_every_published_log_likelihood"]
                                        else "no"))  # fmt: skip
        for key, label in (("evidence_selected", "selected"), (HOMO_ROW, "homoscedastic")):
            beats = a.get(key, {}).get("beats_every_published_log_likelihood")
            if beats is not None:
                verdict.append(f"{label}: " + ("yes" if beats else "no"))
        row.append("; ".join(verdict) or "–")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"{h} Test RMSE (lower is better)", ""]
    head = ["data set", "splits", "ours, fixed"]
    if sel_on:
        head.append("ours, evidence-selected")
    if homo_on:
        head.append("ours, selected among homoscedastic only")
    head += list(PUBLISHED_LABELS.values()) + ["linear model"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in datasets:
        a = agg[name]
        pub = PUBLISHED.get(name, {})
        row = [name, _splits_text(a["fixed"]["splits"]), _pm(a["fixed"]["test_rmse"], ".3f")]
        if sel_on:
            row.append(_selected(a, "test_rmse", ".3f"))
        if homo_on:
            row.append(_selected(a, "test_rmse", ".3f", HOMO_ROW))
        row += ["–" if pub.get(k) is None else f"{pub[k][0]:.2f}" for k in PUBLISHED_LABELS]
        lin = LINEAR_BASELINE.get(name)
        row.append("–" if lin is None else f"{lin[0]:.3g}")
        lines.append("| " + " | ".join(row) + " |")

    lines += ["", f"{h} Wall time per split (seconds, this run)", "",
              "Compilation included. Since commit b4efe84 the data are an argument of the "
              "compiled SMC program, so only the first split of a data set (or of a candidate) "
              "in a run compiles it and later splits reuse it (about 0.3 s instead of 10-50 s); "
              "splits run before that commit compiled anew. The machine was shared with "
              "other jobs, so times are upper bounds.", ""]  # fmt: skip
    head = ["data set", "fixed: wall", "fixed: of which compile"]
    if sel_on:
        head.append(f"evidence-selected: wall (all {len(cand_keys)} candidates)")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in datasets:
        a = agg[name]
        row = [name, _pm(a["fixed"]["wall_seconds"], ".0f"),
               _pm(a["fixed"]["compile_seconds"], ".0f")]  # fmt: skip
        if sel_on:
            row.append(_selected(a, "wall_seconds", ".0f"))
        lines.append("| " + " | ".join(row) + " |")

    return lines


def describe(data: dict[str, Any], cand_keys: Sequence[str]) -> list[str]:
    """The recipe and how to read the tables (markdown lines)."""
    rec = data["recipe"]
    sel_on = len(cand_keys) > 1
    return [
        f"Ours: `{rec['method']}` (adaptive likelihood tempering, HMC moves), one hidden layer "
        f"of n_hidden units ({rec['activation']}), `{rec['prior']}` prior, "
        f"{rec['particles']} particles, {rec['steps']} moves per stage of "
        f"{rec.get('integration_steps', RECIPE_DEFAULTS['integration_steps'])} leapfrog steps, "
        "seed + split. "
        f"*Fixed*: prior_scale {rec['fixed_prior_scale']:g}, noise prior Gamma("
        f"{rec['fixed_noise_shape']:g}, 1) on sigma (standardised units). "
        + (
            "*Evidence-selected*: per split, the candidate among "
            + ", ".join(f"`{k}`" for k in cand_keys)
            + " with the highest SMC log evidence on the training split."
            + (
                " *heteroscedastic*: the noise standard deviation at x is sigma exp(g(x)), g a "
                "second network output with the mean's prior"
                + (
                    ", with a noise floor q added in quadrature, sqrt(q^2 + sigma^2 "
                    "exp(2 g(x))): q = h / sqrt(12), the rounding noise of a target recorded "
                    "on a grid of spacing h (20 distinct training values or fewer: wine's "
                    "grades, h = 1), and q = 0 for every other target."
                    if rec.get("heteroscedastic_noise_floor") == "auto"
                    else "."
                )
                if any(k.endswith("heteroscedastic") for k in cand_keys)
                else ""
            )
            if sel_on
            else ""
        ),
        "",
        "Test metrics in the target's original units; mean ± standard error over the splits "
        "run (column *splits*). The published numbers are means over **all 20 splits** "
        "(shared/data/uci/README.md); the BlackJAX column was measured **elsewhere** (not in "
        "this run) on this kind of machine: adaptive tempered SMC, HMC moves, 256 particles, "
        "fan-in prior, on the splits in brackets. A mean over a few splits is a rough estimate "
        "(compare within the standard errors), and *beats every published?* compares means only.",
        *_superseded_note(data),
    ]


def _superseded_note(data: dict[str, Any]) -> list[str]:
    """A paragraph on the fits kept under ``superseded`` (a changed recipe), if any."""
    reasons = collections.Counter(
        r["superseded_because"] for splits in data["runs"].values()
        for rec in splits.values() for r in rec.get("superseded", {}).values()
    )  # fmt: skip
    if not reasons:
        return []
    return ["", "Not in these tables: fits run under an earlier recipe, kept in the JSON "
            "under each split's `superseded`: " + "; ".join(
                f"{n} because {why}" for why, n in reasons.items()) + "."]  # fmt: skip


def markdown(data: dict[str, Any], datasets: Sequence[str], cand_keys: Sequence[str]) -> str:
    sel_on = len(cand_keys) > 1
    lines = ["# UCI regression benchmark", "", *describe(data, cand_keys), ""]
    lines += summary_tables(data, datasets, cand_keys, level=2)
    lines += ["", "## Per split", "",
              "| data set | split | candidate | log evidence | test RMSE | test LL | "
              "cov. 90% | stages | seconds | chosen by evidence |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in datasets:
        runs = data["runs"].get(name, {})
        for s in sorted(runs, key=int):
            chosen = select_by_evidence(runs[s], cand_keys) if sel_on else None
            for k, r in runs[s]["candidates"].items():
                lz = r["log_evidence"]
                lines.append(
                    f"| {name} | {s} | {k} | {'–' if lz is None else f'{lz:.1f}'} "
                    f"| {r['test_rmse']:.3f} | {r['test_log_likelihood']:.3f} "
                    f"| {r['test_coverage_90']:.2f} | {r['num_stages']} "
                    f"| {r['wall_seconds']:.0f} | {'yes' if k == chosen else ''} |"
                )
    m = data.get("machine", {})
    lines += ["", f"Machine (latest run): {m.get('cpu_model')}, "
              f"{m.get('cpu_count_usable')} usable cores, "
              f"JAX {m.get('jax')} ({m.get('backend')}), git {m.get('git', {}).get('commit')}"
              f"{' (dirty)' if m.get('git', {}).get('dirty') else ''}.", "",
              "Commands:", ""]  # fmt: skip
    for inv in data.get("invocations", []):
        git = inv.get("git") or {}
        rev = f"  # git {str(git.get('commit'))[:7]}{' (dirty)' if git.get('dirty') else ''}"
        lines.append(f"    {inv['command']}" + (rev if git else ""))
    lines.append("")
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args, list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    from langevin_nets.datasets import find_uci_dir, load_uci

    particles = (
        _positive_int(args.particles, "--particles", 2)
        if args.particles
        else (QUICK["particles"] if args.quick else DEFAULT_PARTICLES)
    )
    steps = (
        _positive_int(args.steps, "--steps")
        if args.steps
        else (QUICK["steps"] if args.quick else DEFAULT_STEPS)
    )
    integration_steps = (_positive_int(args.integration_steps, "--integration-steps")
                         if args.integration_steps else DEFAULT_INTEGRATION_STEPS)  # fmt: skip
    seed = _positive_int(args.seed, "--seed", 0)
    names = (tuple(n.strip() for n in args.datasets.split(",") if n.strip()) if args.datasets
             else (QUICK["datasets"] if args.quick else DEFAULT_DATASETS))  # fmt: skip
    if not names:
        raise UsageError("--datasets is empty")
    split_spec = args.splits or (QUICK["splits"] if args.quick else "0-2")
    try:
        root = find_uci_dir(args.data_dir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    plan: list[tuple[str, list[int]]] = []
    for name in names:
        folder = root / name
        if not (folder / "data.txt").is_file():
            avail = sorted(p.name for p in root.iterdir() if (p / "data.txt").is_file())
            raise UsageError(f"unknown data set {name!r} in {str(root)!r}; available: "
                             f"{', '.join(avail)}")  # fmt: skip
        n_splits = int(np.loadtxt(folder / "n_splits.txt", ndmin=1)[0])
        plan.append((name, parse_splits(split_spec, n_splits)))
    prior_scales = _floats(args.prior_scales, "--prior-scales")
    noise_shapes = _floats(args.noise_shapes, "--noise-shapes")
    width_factors = _floats(args.width_factors, "--width-factors")
    hetero_widths = (_floats(args.hetero_width_factors, "--hetero-width-factors")
                     if args.hetero_width_factors else width_factors)  # fmt: skip
    noise_models = _noise_models(args.noise_models)
    fixed_key = candidate_key(FIXED_PRIOR_SCALE, FIXED_NOISE_SHAPE)
    cands = [(FIXED_PRIOR_SCALE, FIXED_NOISE_SHAPE, 1.0, False)]
    if args.select_by_evidence:
        for nm in noise_models:
            hetero = nm == "heteroscedastic"
            cands += [(ps, ns, wf, hetero) for ps in prior_scales for ns in noise_shapes
                      for wf in (hetero_widths if hetero else width_factors)
                      if candidate_key(ps, ns, wf, hetero) != fixed_key]  # fmt: skip
    cand_keys = [candidate_key(*c) for c in cands]

    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else DEFAULT_OUT)
    md = Path(args.md) if args.md else out.with_suffix(".md")
    recipe = {
        "method": METHOD, "activation": ACTIVATION, "prior": PRIOR,
        "fixed_prior_scale": FIXED_PRIOR_SCALE, "fixed_noise_shape": FIXED_NOISE_SHAPE,
        "particles": particles, "steps": steps, "integration_steps": integration_steps,
        "seed": seed,
        "seed_rule": "seed + split (the same for every candidate of a split)",
        "hidden": "one layer of n_hidden.txt units",
        "standardisation": "training split, inputs and target (langevin_nets.fit)",
        "heteroscedastic_noise_floor": HETERO_NOISE_FLOOR,
    }  # fmt: skip
    data = load_results(out, recipe)
    command = command_line("uci.py", argv)
    machine = machine_info()
    invocation = {
        "command": command.strip(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": machine["git"],
    }  # fmt: skip
    # A run that fits nothing (all done already) leaves the record of machines and commands as
    # it was; the first fit of this run adds them.
    if not data["runs"]:
        data["machine"] = machine
    data["data_dir"] = str(root)
    data["reference"] = {
        "published": {k: {m: {"test_rmse": v[0], "test_log_likelihood": v[1]}
                          for m, v in d.items()} for k, d in PUBLISHED.items()},
        "published_source": "shared/data/uci/README.md (means over all splits)",
        "blackjax_orientation": BLACKJAX_ORIENTATION,
        "blackjax_source": "measured elsewhere (issue), not by this script",
        "linear_baseline": {k: {"test_rmse": v[0], "test_log_likelihood": v[1]}
                            for k, v in LINEAR_BASELINE.items()},
    }  # fmt: skip
    all_names = list(dict.fromkeys([*data["runs"].keys(), *names]))

    # A rerun without --select-by-evidence keeps the evidence rows of an earlier run.
    table_keys = cand_keys
    if len(cand_keys) == 1 and len(data.get("candidates", [])) > 1:
        table_keys = list(data["candidates"])

    def save() -> None:
        data["candidates"] = table_keys
        data["aggregate"] = aggregate(data, all_names, table_keys)
        write_json_atomic(data, out)
        write_text_atomic(markdown(data, all_names, table_keys), md)

    failures = 0
    for name, splits in plan:
        for k in splits:
            rec = data["runs"].setdefault(name, {}).setdefault(str(k), {"candidates": {}})
            todo = [c for c, key in zip(cands, cand_keys, strict=True)
                    if key not in rec["candidates"]]  # fmt: skip
            if not todo:
                if not args.quiet:
                    print(f"{name} split {k}: done already (in {out})", flush=True)
                continue
            X, y, Xt, yt, n_hidden = load_uci(name, k, root)
            rec.update(n_train=int(X.shape[0]), n_test=int(Xt.shape[0]), n_hidden=n_hidden,
                       seed=seed + k)  # fmt: skip
            for ps, ns, wf, hetero in todo:
                key = candidate_key(ps, ns, wf, hetero)
                try:
                    r = run_fit(X, y.ravel(), Xt, yt.ravel(), n_hidden, ps, ns, particles,
                                steps, seed + k, integration_steps,
                                progress=args.progress and not args.quiet,
                                width_factor=wf, heteroscedastic=hetero)  # fmt: skip
                except Exception as e:  # a failed fit must not lose the run so far
                    failures += 1
                    print(f"{name} split {k} {key}: FAILED: {type(e).__name__}: {e}",
                          file=sys.stderr, flush=True)  # fmt: skip
                    continue
                r["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                rec["candidates"][key] = r
                if invocation not in data["invocations"]:
                    data["machine"] = machine
                    data["invocations"].append(invocation)
                save()
                if not args.quiet:
                    print(f"{name} split {k} {key}: test RMSE {r['test_rmse']:.4f}, test LL "
                          f"{r['test_log_likelihood']:.4f}, log Z {r['log_evidence']:.2f}, "
                          f"{r['num_stages']} stages, {r['wall_seconds']:.1f} s "
                          f"({r['compile_seconds']:.1f} s compiling)", flush=True)  # fmt: skip
    save()
    if not args.quiet:
        print(markdown(data, all_names, table_keys))
        print(f"results: {out}\ntable: {md}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
