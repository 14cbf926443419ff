"""UCI side by side: BlackJAX adaptive tempered SMC and ours on the same splits, one run.

For each split asked for, in one process and alternating which goes first:

* **BlackJAX** ``adaptive_tempered_smc`` with its HMC kernel, in the setting the issue
  reports for its own UCI runs: 256 particles, 10 HMC moves per stage of 20 leapfrog steps
  (the long end of its 3-20), unit mass, the step size adapted once per stage from the mean
  acceptance (``log h += clip(acc - 0.75, -1, 1)``), systematic resampling every stage,
  target ESS 0.5. The loop is :func:`peers.blackjax_smc`: all stages in one jitted
  ``while_loop``, compiled anew for every split (the data are constants of the program).
  One call, timed with compilation; without it, the call less the compile time JAX reports.
* **Ours**: ``benchmarks/uci.py``'s fixed recipe through :func:`langevin_nets.fit.fit`
  (``smc-adaptive``, 32 particles, 5 moves of 100 leapfrog steps, fan-in prior scale 1),
  timed as ``uci.py`` times it: one call, compilation included (the program is shared by
  the splits of a data set, so only the first split of a data set compiles).

* **Ours, evidence-selected** (with ``--evidence-selected``): ``uci.py``'s six candidates
  (:data:`SELECTED_CANDIDATES`: prior scale 1 or 2 with the protocol's width or half of it,
  and the two heteroscedastic half-width candidates with the noise floor ``auto``), each fit
  as the fixed recipe is, the one with the highest training log evidence kept. Its time is
  the six fits' together, compilation included, right after the fixed recipe's. With
  ``--screen-steps K`` the six are fit first with ``K`` moves per stage and only the
  ``--keep`` best by that evidence fit in full (successive halving; the time counts all).

With ``--no-blackjax`` only ours run (the fixed recipe and, with ``--evidence-selected``,
the selection), for example on all 20 splits to set the screened selection beside the
published numbers, which are means over all 20; the JSON's ``benchmark`` is then
``uci_ours`` and its table compares with those numbers instead of BlackJAX.

Both fit the same model: one hidden layer of the split's ``n_hidden`` ReLU units, fan-in
prior of scale 1, Gamma(1, 1) prior on the noise level, data standardised with the
training statistics. Test metrics are in the target's original units (as ``fit`` reports
them). Without ``--evidence-selected`` the evidence-selected row of ``uci.py`` is read from
its results JSON for the same splits, where it was run, and was not timed side by side.

Usage::

    nice .venv/bin/python benchmarks/uci_peers.py --datasets yacht,energy,boston --splits 0-4
    nice .venv/bin/python benchmarks/uci_peers.py --evidence-selected --datasets boston \
        --splits 0-4 --out benchmarks/results/uci_peers_selected.json
    .venv/bin/python benchmarks/uci_peers.py --quick
    .venv/bin/python benchmarks/uci_peers.py --no-blackjax --evidence-selected \
        --screen-steps 1 --keep 1 --splits all --out benchmarks/results/uci_screened_all.json

The JSON is written after every split and a rerun skips the splits already in it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uci  # noqa: E402

# peers (BlackJAX, JAX) is imported where a run needs it: make_tables.py renders the table
# from the JSON with this module's markdown() alone.

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS_DIR / "uci_peers.json"
QUICK_OUT = RESULTS_DIR / "uci_peers_quick.json"
#: The issue's BlackJAX setting (particles, HMC moves per stage, leapfrog steps per move).
BLACKJAX = {"particles": 256, "moves": 10, "integration_steps": 20}
QUICK = {"datasets": "yacht", "splits": "0", "particles": 16, "moves": 1,
         "integration_steps": 5, "ours_particles": 8, "ours_steps": 1,
         "ours_integration_steps": 10}  # fmt: skip
#: Goal of the issue: at least BlackJAX's test log-likelihood in at most this share of its time.
TIME_SHARE = 0.5
#: ``uci.py``'s evidence-selected candidates (prior scale, width factor, heteroscedastic), as
#: in its ``--select-by-evidence --prior-scales 1,2 --width-factors 0.5,1 --noise-models
#: homoscedastic,heteroscedastic --hetero-width-factors 0.5`` run (noise shape 1 for all).
SELECTED_CANDIDATES = ((1.0, 1.0, False), (1.0, 0.5, False), (2.0, 0.5, False),
                       (2.0, 1.0, False), (1.0, 0.5, True), (2.0, 0.5, True))  # fmt: skip
QUICK_SELECTED = ((1.0, 1.0, False), (1.0, 0.5, True))


def run_blackjax(problem: Any, particles: int, moves: int, steps: int,
                 seed: int) -> dict[str, Any]:  # fmt: skip
    """BlackJAX on one split (a ``peers.Problem``): one call, which compiles; its run time
    is the call less the compile time JAX reports (as for ours)."""
    import jax

    import peers
    from common import timed_call

    run = peers.blackjax_smc(problem.posterior, particles, moves, "hmc", steps)
    key = jax.random.PRNGKey(seed)
    call = timed_call(lambda: run(key))
    out: peers.SMCOutput = call.pop("result")
    return {
        **peers.test_metrics(problem, out.particles, out.log_weights),
        "log_evidence": peers.original_log_evidence(problem, out.log_z_std),
        "num_stages": out.num_stages,
        "gradient_evaluations": out.gradient_evaluations,
        "reached_posterior": out.reached_posterior,
        "mean_acceptance": out.mean_acceptance,
        "wall_seconds": call["wall_s"],
        "compile_seconds": call["compile_s"],
        "run_seconds": call["run_s"],
    }


def run_ours(problem: Any, seed: int, particles: int, steps: int,
             integration_steps: int) -> dict[str, Any]:  # fmt: skip
    """Ours on one split (the raw data of a ``peers.Problem``): ``uci.py``'s fixed recipe,
    timed as ``uci.py`` times it."""
    n_hidden = problem.posterior.model.layer_sizes[1]
    r = uci.run_fit(problem.X, problem.y, problem.X_test, problem.y_test, n_hidden,
                    uci.FIXED_PRIOR_SCALE, uci.FIXED_NOISE_SHAPE, particles, steps, seed,
                    integration_steps)  # fmt: skip
    keep = ("test_rmse", "test_log_likelihood", "log_evidence", "num_stages",
            "gradient_evaluations", "wall_seconds", "compile_seconds")  # fmt: skip
    out = {k: r[k] for k in keep}
    out["run_seconds"] = max(r["wall_seconds"] - r["compile_seconds"], 0.0)
    return out


def run_selected(problem: Any, seed: int, particles: int, steps: int, integration_steps: int,
                 candidates: Sequence[tuple[float, float, bool]],
                 screen: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Ours, evidence-selected, on one split: every candidate fit as the fixed recipe is (same
    seed), the highest training log evidence kept; the time is all the fits' together.

    With ``screen`` (``{"steps": K, "keep": M}``) the candidates are first fit with ``K``
    moves per stage instead of ``steps``, and only the ``M`` with the highest log evidence
    of those cheap fits are fit again in full; the choice among those is by their full
    fits' evidence. The time counts every fit, screening included.
    """
    n_hidden = problem.posterior.model.layer_sizes[1]
    by_key = {uci.candidate_key(p, uci.FIXED_NOISE_SHAPE, w, h): (p, w, h)
              for p, w, h in candidates}  # fmt: skip

    def fit_all(keys: Sequence[str], moves: int) -> dict[str, Any]:
        fits = {}
        for key in keys:
            prior_scale, width, hetero = by_key[key]
            fits[key] = uci.run_fit(
                problem.X, problem.y, problem.X_test, problem.y_test, n_hidden, prior_scale,
                uci.FIXED_NOISE_SHAPE, particles, moves, seed, integration_steps,
                width_factor=width, heteroscedastic=hetero,
            )
        return fits

    def best(fits: dict[str, Any], count: int) -> list[str]:
        # Non-finite evidence (a failed fit) ranks last.
        def score(k: str) -> float:
            lz = fits[k]["log_evidence"]
            return lz if lz is not None and math.isfinite(lz) else -math.inf

        return sorted(fits, key=score, reverse=True)[:count]

    def summary(fits: dict[str, Any]) -> dict[str, Any]:
        return {k: {m: f[m] for m in ("log_evidence", "test_log_likelihood", "test_rmse",
                                      "wall_seconds", "compile_seconds")}
                for k, f in fits.items()}  # fmt: skip

    screened: dict[str, Any] = {}
    full_keys = list(by_key)
    if screen is not None:
        screened = fit_all(full_keys, screen["steps"])
        full_keys = best(screened, screen["keep"])
    fits = fit_all(full_keys, steps)
    chosen = best(fits, 1)[0]
    every = [*screened.values(), *fits.values()]
    wall = sum(f["wall_seconds"] for f in every)
    compile_s = sum(f["compile_seconds"] for f in every)
    pick = fits[chosen]
    out = {
        "chosen": chosen,
        "test_rmse": pick["test_rmse"],
        "test_log_likelihood": pick["test_log_likelihood"],
        "log_evidence": pick["log_evidence"],
        "candidates": summary(fits),
        "wall_seconds": wall,
        "compile_seconds": compile_s,
        "run_seconds": max(wall - compile_s, 0.0),
    }
    if screen is not None:
        out["screened"] = summary(screened)
    return out


def run_split(name: str, split: int, root: Path, seed: int, bj: dict[str, int] | None,
              ours: dict[str, int], blackjax_first: bool,
              selected: Sequence[tuple[float, float, bool]] = (),
              screen: dict[str, int] | None = None, fixed: bool = True
              ) -> dict[str, Any]:  # fmt: skip
    """Both samplers on one split, in the order asked for (ours' evidence-selected fits, if
    any candidates are given, right after ours' fixed one); ours alone when ``bj`` is None,
    and without the fixed recipe when not ``fixed``."""
    import peers

    problem = peers.uci_problem(name, split, root)
    if bj is None:  # --no-blackjax
        order: tuple[str, ...] = ("ours",)
        rec: dict[str, Any] = {"order": "ours only"}
    else:
        order = ("blackjax", "ours") if blackjax_first else ("ours", "blackjax")
        rec = {"order": "blackjax first" if blackjax_first else "ours first"}
    for who in order:
        if who == "blackjax":
            rec[who] = run_blackjax(problem, bj["particles"], bj["moves"],
                                    bj["integration_steps"], seed)  # fmt: skip
        else:
            if fixed:
                rec[who] = run_ours(problem, seed, ours["particles"], ours["steps"],
                                    ours["integration_steps"])
            if selected:
                rec["ours_selected"] = run_selected(
                    problem, seed, ours["particles"], ours["steps"], ours["integration_steps"],
                    selected, screen,
                )
    return rec


def _evidence_selected(uci_json: Path, name: str, splits: Sequence[int]) -> dict[str, Any]:
    """``uci.py``'s evidence-selected test LL on ``splits``, from its JSON (not side by side)."""
    try:
        data = json.loads(uci_json.read_text())
    except (OSError, ValueError):
        return {}
    runs = data.get("runs", {}).get(name, {})
    keys = data.get("candidates", [])
    if len(keys) < 2:
        return {}
    chosen = [uci.select_by_evidence(runs[str(s)], keys) if str(s) in runs else None
              for s in splits]  # fmt: skip
    if any(c is None for c in chosen):
        return {}
    picks = [runs[str(s)]["candidates"][c] for s, c in zip(splits, chosen, strict=True)]
    return {
        "source": str(uci_json.name),
        "test_log_likelihood": uci.mean_se([p["test_log_likelihood"] for p in picks]),
        "wall_seconds_all_candidates": uci.mean_se(
            [sum(runs[str(s)]["candidates"][k]["wall_seconds"] for k in keys) for s in splits]
        ),
    }


def paired_difference(runs: dict[str, Any], who: str = "ours") -> dict[str, Any] | None:
    """``who`` (ours, or ours_selected) minus BlackJAX test log-likelihood, split by split:
    mean and standard error.

    Both ran on the same splits, so the split-to-split spread (the larger part of each
    column's standard error) cancels in the difference.
    """
    return uci.mean_se([r[who]["test_log_likelihood"] - r["blackjax"]["test_log_likelihood"]
                        for r in runs.values()])  # fmt: skip


def _signed_pm(v: dict[str, Any] | None) -> str:
    if v is None:
        return "–"
    se = v.get("stderr")
    return f"{v['mean']:+.3f}" + ("" if se is None else f" ± {se:.3f}")


_STATS = ("test_log_likelihood", "test_rmse", "wall_seconds", "run_seconds", "log_evidence")


def _done(data: dict[str, Any]) -> list[tuple[str, list[int], list[dict[str, Any]]]]:
    """Per data set with any split done: its name, the splits in order and their records."""
    out = []
    for name, runs in data["runs"].items():
        splits = sorted(int(s) for s in runs)
        if splits:
            out.append((name, splits, [runs[str(s)] for s in splits]))
    return out


def aggregate_ours(data: dict[str, Any]) -> dict[str, Any]:
    """``--no-blackjax``: per data set, ours' rows over the splits run, each against the best
    published test log-likelihood (a mean over all 20 splits)."""
    out = {}
    for name, splits, recs in _done(data):
        best = uci.best_published_log_likelihood(name)
        row: dict[str, Any] = {"splits": splits, "best_published_log_likelihood": best}
        for who in ("ours", "ours_selected"):
            if all(who in r for r in recs):
                stats = {k: uci.mean_se([r[who][k] for r in recs]) for k in _STATS}
                ll = stats["test_log_likelihood"]
                stats["beats_every_published_log_likelihood"] = (
                    None if best is None or ll is None else bool(ll["mean"] > best))
                row[who] = stats
        out[name] = row
    return out


def aggregate(data: dict[str, Any], uci_json: Path) -> dict[str, Any]:
    """Per data set over the splits both ran: means, time ratio, and the issue's verdict."""
    if data["config"].get("blackjax") is None:
        return aggregate_ours(data)
    out = {}
    for name, splits, recs in _done(data):
        runs = data["runs"][name]
        row: dict[str, Any] = {"splits": splits}
        for who in ("blackjax", "ours"):
            row[who] = {k: uci.mean_se([r[who][k] for r in recs]) for k in _STATS}
        row["paired_test_ll_difference"] = paired_difference(runs)
        bj, us = row["blackjax"], row["ours"]
        # Time per split, compilation included on both sides (BlackJAX compiles every split):
        # what a user waits for. Without compilation beside it.
        share = us["wall_seconds"]["mean"] / bj["wall_seconds"]["mean"]
        row["time_share"] = share
        row["time_share_compiled"] = us["run_seconds"]["mean"] / bj["run_seconds"]["mean"]
        row["at_least_as_good"] = (us["test_log_likelihood"]["mean"]
                                   >= bj["test_log_likelihood"]["mean"])  # fmt: skip
        row["goal_met"] = bool(row["at_least_as_good"] and share <= TIME_SHARE)
        row["evidence_selected"] = _evidence_selected(uci_json, name, splits)
        if all("ours_selected" in r for r in recs):
            sel = {k: uci.mean_se([r["ours_selected"][k] for r in recs]) for k in _STATS}
            sel_share = sel["wall_seconds"]["mean"] / bj["wall_seconds"]["mean"]
            sel_good = sel["test_log_likelihood"]["mean"] >= bj["test_log_likelihood"]["mean"]
            row["ours_selected"] = {
                **sel,
                "paired_test_ll_difference": paired_difference(runs, "ours_selected"),
                "time_share": sel_share,
                "time_share_compiled": sel["run_seconds"]["mean"] / bj["run_seconds"]["mean"],
                "at_least_as_good": bool(sel_good),
                "goal_met": bool(sel_good and sel_share <= TIME_SHARE),
            }
        out[name] = row
    return out


def markdown_ours(data: dict[str, Any]) -> str:
    """``--no-blackjax``: ours' rows against the best published test log-likelihood."""
    cfg = data["config"]
    screen = cfg.get("screen")
    sel = cfg.get("selected_candidates")
    how = ""
    if sel:
        how = (f" *Selected*: per split, the one of {len(sel)} candidates (those of "
               "`uci.py`'s evidence-selected row) with the highest training log evidence"
               + (f", after screening: all fit with {screen['steps']} move(s) per stage, the "
                  f"{screen['keep']} best of those by log evidence fit again in full"
                  if screen else "")
               + "; its time counts all its fits.")
    lines = [
        f"Ours alone, {cfg['ours']['particles']} particles, {cfg['ours']['steps']} moves of "
        f"{cfg['ours']['integration_steps']} leapfrog steps a stage. *Fixed*: `uci.py`'s fixed "
        f"recipe.{how} Test LL and RMSE: mean ± standard error over the splits, original "
        "units. The published numbers are means over all 20 splits, so the comparison holds "
        "only on rows with all 20. Time per split includes compilation (the first split of "
        "a data set compiles).",
        "",
        "| data set | splits | fixed test LL | selected test LL | best published test LL "
        "| fixed RMSE | selected RMSE | fixed s / split | selected s / split "
        "| beats every published? |",
        "|" + "---|" * 10,
    ]
    for name, a in data["aggregate"].items():
        fx, se = a.get("ours", {}), a.get("ours_selected", {})
        best = a.get("best_published_log_likelihood")
        verdict = []
        for label, row in (("fixed", fx), ("selected", se)):
            beats = row.get("beats_every_published_log_likelihood")
            if beats is not None:
                verdict.append(f"{label}: {'yes' if beats else 'no'}")
        lines.append(
            f"| {name} | {uci._splits_text(a['splits'])} "
            f"| {uci._pm(fx.get('test_log_likelihood'), '.3f')} "
            f"| {uci._pm(se.get('test_log_likelihood'), '.3f')} "
            f"| {'–' if best is None else f'{best:.2f}'} "
            f"| {uci._pm(fx.get('test_rmse'), '.3f')} | {uci._pm(se.get('test_rmse'), '.3f')} "
            f"| {uci._pm(fx.get('wall_seconds'), '.1f')} "
            f"| {uci._pm(se.get('wall_seconds'), '.1f')} "
            f"| {'; '.join(verdict) or '–'} |"
        )
    return "\n".join(lines) + "\n"


def markdown(data: dict[str, Any]) -> str:
    """The side-by-side table (also rendered into the README by ``make_tables.py``)."""
    cfg = data["config"]
    if cfg.get("blackjax") is None:
        return markdown_ours(data)
    lines = [
        f"BlackJAX {cfg['blackjax_version']} adaptive tempered SMC, HMC kernel: "
        f"{cfg['blackjax']['particles']} particles, {cfg['blackjax']['moves']} moves per "
        f"stage of {cfg['blackjax']['integration_steps']} leapfrog steps, step size adapted "
        "per stage. Ours: `uci.py`'s fixed recipe "
        f"({cfg['ours']['particles']} particles, {cfg['ours']['steps']} moves of "
        f"{cfg['ours']['integration_steps']} leapfrog steps). Same model and splits, one run, "
        "the order alternating by split. Wall time per split includes compilation on both "
        "sides (BlackJAX's program has the data as constants and compiles for every split; "
        "ours compiles once per data set); *compiled*: the time without it, the call less "
        "the compile time JAX reports, on both sides. The verdict is on the wall time with "
        "compilation. "
        "Test LL and RMSE: mean ± standard error over the splits, original units. *Ours - "
        "BlackJAX, paired*: the test LL difference split by split, mean ± standard error "
        "(the splits' own spread cancels in it).",
        "",
        "| data set | splits | BlackJAX test LL | ours test LL | ours - BlackJAX, paired "
        "| ours evidence-selected (uci.py, not side by side) | BlackJAX RMSE | ours RMSE "
        "| BlackJAX s / split (compiled) "
        "| ours s / split (compiled) | ours / BlackJAX time (compiled) "
        f"| ours as good in <= {TIME_SHARE:g} the time? |",
        "|" + "---|" * 12,
    ]
    for name, a in data["aggregate"].items():
        bj, us, es = a["blackjax"], a["ours"], a["evidence_selected"]
        lines.append(
            f"| {name} | {uci._splits_text(a['splits'])} "
            f"| {uci._pm(bj['test_log_likelihood'], '.3f')} "
            f"| {uci._pm(us['test_log_likelihood'], '.3f')} "
            f"| {_signed_pm(paired_difference(data['runs'][name]))} "
            f"| {uci._pm(es.get('test_log_likelihood'), '.3f')} "
            f"| {uci._pm(bj['test_rmse'], '.3f')} | {uci._pm(us['test_rmse'], '.3f')} "
            f"| {uci._pm(bj['wall_seconds'], '.1f')} ({uci._pm(bj['run_seconds'], '.1f')}) "
            f"| {uci._pm(us['wall_seconds'], '.1f')} ({uci._pm(us['run_seconds'], '.1f')}) "
            f"| {a['time_share']:.2f} ({a['time_share_compiled']:.2f}) "
            f"| {'yes' if a['goal_met'] else 'no'} |"
        )
    sel_rows = [(n, a) for n, a in data["aggregate"].items() if "ours_selected" in a]
    if sel_rows:
        screen = cfg.get("screen")
        how = (
            f"fit first with {screen['steps']} move(s) per stage, the {screen['keep']} with "
            "the highest log evidence of those fits fit again in full, and the highest full "
            "log evidence kept; its time is all the fits' together, screening included."
            if screen
            else "fit one after another right after the fixed recipe, the highest training "
            "log evidence kept; its time is all the fits' together."
        )
        lines += [
            "",
            "Ours, evidence-selected, timed side by side (`--evidence-selected`): the "
            f"{len(cfg.get('selected_candidates', []))} candidates of `uci.py`'s "
            f"evidence-selected row {how}",
            "",
            "| data set | splits | BlackJAX test LL | ours evidence-selected test LL "
            "| selected - BlackJAX, paired | BlackJAX s / split (compiled) "
            "| selected s / split (compiled) | selected / BlackJAX time (compiled) "
            f"| selected as good in <= {TIME_SHARE:g} the time? |",
            "|" + "---|" * 9,
        ]
        for name, a in sel_rows:
            bj, se = a["blackjax"], a["ours_selected"]
            lines.append(
                f"| {name} | {uci._splits_text(a['splits'])} "
                f"| {uci._pm(bj['test_log_likelihood'], '.3f')} "
                f"| {uci._pm(se['test_log_likelihood'], '.3f')} "
                f"| {_signed_pm(se['paired_test_ll_difference'])} "
                f"| {uci._pm(bj['wall_seconds'], '.1f')} ({uci._pm(bj['run_seconds'], '.1f')}) "
                f"| {uci._pm(se['wall_seconds'], '.1f')} ({uci._pm(se['run_seconds'], '.1f')}) "
                f"| {se['time_share']:.2f} ({se['time_share_compiled']:.2f}) "
                f"| {'yes' if se['goal_met'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="yacht,energy,boston,concrete,wine", metavar="A,B")
    p.add_argument("--splits", default="0-4", metavar="SPEC",
                   help="K, 0,3,5, 0-4, 'all' or 'first K' (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="yacht split 0 at tiny sizes (checks that the script works)")
    p.add_argument("--seed", type=int, default=0, help="split K uses seed + K")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--uci-results", type=Path, default=uci.DEFAULT_OUT, metavar="FILE.json",
                   help="uci.py's results, for the evidence-selected column")
    p.add_argument("--evidence-selected", action="store_true",
                   help="also run uci.py's evidence-selected row (its six candidates) side by "
                        "side; give its own --out")  # fmt: skip
    p.add_argument("--screen-steps", type=int, default=None, metavar="K",
                   help="with --evidence-selected: fit every candidate first with K moves per "
                        "stage, and again in full only the --keep best by that log evidence")
    p.add_argument("--keep", type=int, default=2, metavar="M",
                   help="candidates fit in full after screening (default: %(default)s)")
    p.add_argument("--no-blackjax", action="store_true",
                   help="ours only, set beside the published numbers instead of BlackJAX "
                        "(e.g. on all splits); give its own --out")  # fmt: skip
    p.add_argument("--no-fixed", action="store_true",
                   help="with --no-blackjax and --evidence-selected: skip the fixed recipe "
                        "(uci.py's results hold it on all splits)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screen_steps is not None:
        problem = None
        if not args.evidence_selected:
            problem = "--screen-steps needs --evidence-selected"
        elif args.screen_steps < 1 or args.keep < 1:
            problem = (f"--screen-steps and --keep must be at least 1, got {args.screen_steps} "
                       f"and {args.keep}")  # fmt: skip
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.no_fixed and not (args.no_blackjax and args.evidence_selected):
        print("error: --no-fixed needs --no-blackjax and --evidence-selected", file=sys.stderr)
        return 2
    import peers
    from common import command_line, machine_info
    from langevin_nets.datasets import find_uci_dir

    quick = QUICK if args.quick else None
    names = [n.strip() for n in (quick["datasets"] if quick else args.datasets).split(",")
             if n.strip()]  # fmt: skip
    try:
        root = find_uci_dir(args.data_dir)
        plan = []
        for name in names:
            if not (root / name / "n_splits.txt").is_file():
                raise uci.UsageError(f"unknown data set {name!r} in {str(root)!r}")
            n_splits = int((root / name / "n_splits.txt").read_text().split()[0])
            plan.append((name, uci.parse_splits(quick["splits"] if quick else args.splits,
                                                n_splits)))  # fmt: skip
    except (ValueError, uci.UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bj = ({"particles": quick["particles"], "moves": quick["moves"],
           "integration_steps": quick["integration_steps"]} if quick else dict(BLACKJAX))
    if args.no_blackjax:
        bj = None
    ours = {"particles": quick["ours_particles"] if quick else uci.DEFAULT_PARTICLES,
            "steps": quick["ours_steps"] if quick else uci.DEFAULT_STEPS,
            "integration_steps": (quick["ours_integration_steps"] if quick
                                  else uci.DEFAULT_INTEGRATION_STEPS)}  # fmt: skip
    config = {"blackjax": bj, "ours": ours, "seed": args.seed}
    if bj is not None:
        config["blackjax_version"] = peers.blackjax.__version__
    if args.no_fixed:
        config["fixed"] = False  # recorded only when skipped, as files before the option
    selected: tuple[tuple[float, float, bool], ...] = ()
    if args.evidence_selected:
        selected = QUICK_SELECTED if quick else SELECTED_CANDIDATES
        # Recorded only when asked for, so that files written before the option still match.
        config["selected_candidates"] = [list(c) for c in selected]
    screen = None
    if args.screen_steps is not None:
        screen = {"steps": args.screen_steps, "keep": min(args.keep, len(selected))}
        config["screen"] = screen
    out = args.out or (QUICK_OUT if quick else DEFAULT_OUT)
    kind = "uci_peers" if bj is not None else "uci_ours"
    data: dict[str, Any] = {"benchmark": kind, "config": config, "runs": {}}
    if out.exists():
        old = json.loads(out.read_text())
        if old.get("config") != config:
            print(f"error: {out} holds results of another configuration; give another --out",
                  file=sys.stderr)  # fmt: skip
            return 2
        data = old
    command = command_line("uci_peers.py", sys.argv[1:] if argv is None else list(argv))
    # Every invocation that added to the file, in order (a run is often continued).
    data.setdefault("commands", [])
    if command not in data["commands"]:
        data["commands"].append(command)
    data["command"] = "; then ".join(data["commands"])
    data["machine"] = machine_info()
    order = 0
    for name, splits in plan:
        for k in splits:
            runs = data["runs"].setdefault(name, {})
            if str(k) in runs:
                print(f"{name} split {k}: done already", flush=True)
                continue
            rec = run_split(name, k, root, args.seed + k, bj, ours,
                            blackjax_first=order % 2 == 0, selected=selected,
                            screen=screen, fixed=not args.no_fixed)  # fmt: skip
            order += 1
            rec["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            runs[str(k)] = rec
            data["aggregate"] = aggregate(data, args.uci_results)
            uci.write_json_atomic(data, out)
            line = [f"{name} split {k}:"]
            if "blackjax" in rec:
                b = rec["blackjax"]
                line.append(f"BlackJAX LL {b['test_log_likelihood']:.3f} in "
                            f"{b['wall_seconds']:.1f} s ({b['run_seconds']:.1f} s compiled);")
            if "ours" in rec:
                o = rec["ours"]
                line.append(f"ours LL {o['test_log_likelihood']:.3f} in {o['wall_seconds']:.1f} s")
            if len(line) > 1:
                print(" ".join(line), flush=True)
            if "ours_selected" in rec:
                o = rec["ours_selected"]
                lead = "  " if len(line) > 1 else f"{name} split {k}: "
                print(f"{lead}evidence-selected ({o['chosen']}): LL "
                      f"{o['test_log_likelihood']:.3f} in {o['wall_seconds']:.1f} s", flush=True)
    data["aggregate"] = aggregate(data, args.uci_results)
    uci.write_json_atomic(data, out)
    print(markdown(data))
    print(f"results: {out}")
    return 0 if all(math.isfinite(r[who]["test_log_likelihood"])
                    for runs in data["runs"].values() for r in runs.values()
                    for who in ("ours", "ours_selected") if who in r) else 1  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
