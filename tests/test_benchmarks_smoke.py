"""Smoke test of benchmarks/langevin_overhead.py: it runs and writes the JSON it promises.

Timings are never asserted on (they depend on the machine and its load); only the
structure of the report and the bookkeeping that must hold on any machine are checked.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "langevin_overhead.py"

MACHINE_FIELDS = {
    "timestamp_utc",
    "cpu_model",
    "cpu_count",
    "python",
    "jax",
    "jaxlib",
    "backend",
    "devices",
}
CASE_FIELDS = {
    "name",
    "num_chains",
    "dim",
    "steps",
    "gradient_evaluations",
    "baseline_seconds",
    "langevin_seconds",
    "baseline_evals_per_second",
    "langevin_evals_per_second",
    "ratio",
    "target_ratio",
    "passed",
    "compile",
    "langevin_call_seconds",
    "breakdown",
    "samples",
}


def _readme_tables(results: Path, tmp_path: Path) -> str:
    """make_tables.py on the JSONs in ``results``, into a fresh README: the README's text."""
    readme = tmp_path / "README.md"
    readme.write_text("# title\n")
    tables = [sys.executable, str(ROOT / "benchmarks" / "make_tables.py"),
              "--results", str(results), "--readme", str(readme)]  # fmt: skip
    proc = subprocess.run(tables, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return readme.read_text()


def test_quick_run_writes_the_report(tmp_path):
    out = tmp_path / "results" / "overhead.json"
    # --quick, narrowed to one small case so the test stays short.
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(out)]
    cmd += ["--cases", "readme-c1", "--steps", "20", "--repeats", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| readme-c1 |" in proc.stdout  # the markdown table

    report = json.loads(out.read_text())
    assert report["benchmark"] == "langevin_overhead"
    assert MACHINE_FIELDS <= set(report["machine"])
    assert report["config"]["steps"] == 20 and report["config"]["quick"] is True
    assert isinstance(report["all_passed"], bool)
    (case,) = report["cases"]
    assert CASE_FIELDS <= set(case)
    assert case["name"] == "readme-c1" and case["num_chains"] == 1
    assert case["dim"] == 1 + (1 * 50 + 50) + (50 * 50 + 50) + (50 * 1 + 1)
    # One gradient at the start and one per step, for baseline and langevin alike.
    assert case["gradient_evaluations"] == 21
    assert case["target_ratio"] == 1.15
    assert case["passed"] == (case["ratio"] <= case["target_ratio"])
    for key in ("baseline_seconds", "langevin_seconds", "ratio"):
        assert math.isfinite(case[key]) and case[key] > 0
    assert set(case["samples"]) == {"baseline", "grad_noise", "kernel", "langevin"}
    assert all(len(s["wall_s"]) == 1 for s in case["samples"].values())


def test_unknown_case_is_rejected(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--cases", "nope", "--out", str(tmp_path / "x.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown case" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_uci_quick_run_writes_results_and_resumes(tmp_path):
    """benchmarks/uci.py --quick on yacht split 0 (8 particles, 1 move): one fit, then a
    rerun with the same --out skips it. Only structure and finiteness are checked."""
    import pytest

    from langevin_nets.datasets import find_uci_dir

    try:
        data_dir = find_uci_dir()
    except ValueError:
        pytest.skip("UCI data folder not found")
    if not (data_dir / "yacht" / "data.txt").is_file():
        pytest.skip("UCI yacht data not found")
    out, md = tmp_path / "uci.json", tmp_path / "uci.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci.py"), "--quick", "--datasets", "yacht",
           "--splits", "0", "--particles", "8", "--steps", "1", "--out", str(out),
           "--md", str(md), "--data-dir", str(data_dir)]  # fmt: skip
    proc = subprocess.run(cmd + ["--progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smc:" in proc.stderr and "stage" in proc.stderr  # the fit's progress bar
    assert "yacht split 0" in proc.stdout  # the per-fit line

    report = json.loads(out.read_text())
    assert report["benchmark"] == "uci"
    assert MACHINE_FIELDS <= set(report["machine"])
    assert report["recipe"]["particles"] == 8 and report["recipe"]["steps"] == 1
    assert report["recipe"]["method"] == "smc-adaptive" and report["recipe"]["activation"] == "relu"
    split = report["runs"]["yacht"]["0"]
    assert split["n_hidden"] == 50 and split["n_train"] + split["n_test"] == 308
    (fit,) = split["candidates"].values()
    for key in ("test_rmse", "test_log_likelihood", "log_evidence", "wall_seconds",
                "train_rmse", "train_log_likelihood", "test_coverage_90"):  # fmt: skip
        assert math.isfinite(fit[key]), key
    assert fit["num_stages"] >= 1 and fit["gradient_evaluations"] > 0
    agg = report["aggregate"]["yacht"]["fixed"]
    assert agg["splits"] == [0]
    assert agg["test_log_likelihood"]["mean"] == fit["test_log_likelihood"]
    assert agg["test_log_likelihood"]["stderr"] is None  # one split: no standard error
    # The published and BlackJAX reference numbers travel with the results and the table.
    assert report["reference"]["published"]["yacht"]["pbp"]["test_log_likelihood"] == -1.63
    assert report["reference"]["blackjax_orientation"]["yacht"]["log_likelihood"] == -0.40
    table = md.read_text()
    assert "| yacht | 0 |" in table and "PBP (2015)" in table and "BlackJAX" in table

    # Rerun: the split is in the JSON already, so nothing is fitted again.
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done already" in proc.stdout
    again = json.loads(out.read_text())
    assert again["runs"]["yacht"]["0"]["candidates"] == split["candidates"]
    assert len(again["invocations"]) == 1  # a run that fitted nothing is not recorded

    # Width and noise-model candidates by evidence: only the new candidates are fitted (25
    # units, half the protocol's 50; heteroscedastic at 25 units only), and the selected row
    # is the candidate of highest log evidence.
    proc = subprocess.run(cmd + ["--select-by-evidence", "--prior-scales", "1",
                                 "--width-factors", "0.5,1",
                                 "--noise-models", "homoscedastic,heteroscedastic",
                                 "--hetero-width-factors", "0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    third = json.loads(out.read_text())
    cands = third["runs"]["yacht"]["0"]["candidates"]
    fixed_key, half_key = "prior_scale=1,noise_shape=1", "prior_scale=1,noise_shape=1,width=0.5x"
    hetero_key = half_key + ",heteroscedastic"
    assert set(cands) == {fixed_key, half_key, hetero_key}
    assert cands[fixed_key] == split["candidates"][fixed_key]
    assert cands[half_key]["hidden_units"] == 25 and cands[half_key]["width_factor"] == 0.5
    assert cands[hetero_key]["hidden_units"] == 25 and cands[hetero_key]["heteroscedastic"]
    # The floor is "auto": none for yacht's continuous target.
    assert cands[hetero_key]["noise_floor"] == 0.0 and cands[half_key]["noise_floor"] == 0.0
    assert not cands[half_key]["heteroscedastic"]
    for key in (half_key, hetero_key):
        assert math.isfinite(cands[key]["log_evidence"])
        assert math.isfinite(cands[key]["test_log_likelihood"])
    best = max(cands, key=lambda k: cands[k]["log_evidence"])
    sel = third["aggregate"]["yacht"]["evidence_selected"]
    assert sel["chosen"] == {"0": best}
    assert third["candidates"] == [fixed_key, half_key, hetero_key]
    assert sel["test_log_likelihood"]["mean"] == cands[best]["test_log_likelihood"]
    assert f"`{half_key}`" in md.read_text() and "*heteroscedastic*" in md.read_text()
    # Beside it, the selection among the homoscedastic candidates alone.
    homo = third["aggregate"]["yacht"]["evidence_selected_homoscedastic"]
    homo_best = max((fixed_key, half_key), key=lambda k: cands[k]["log_evidence"])
    assert homo["chosen"] == {"0": homo_best} and homo["candidates"] == [fixed_key, half_key]
    assert "selected among homoscedastic only" in md.read_text()

    # An unknown noise model is one clear error line.
    proc = subprocess.run(cmd + ["--select-by-evidence", "--noise-models", "hetero"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2
    assert "--noise-models must be a comma-separated list of homoscedastic" in proc.stderr


@pytest.mark.bench_smoke
def test_uci_peers_quick_run_writes_results_and_resumes(tmp_path):
    """benchmarks/uci_peers.py --quick: BlackJAX and ours on yacht split 0 at tiny sizes,
    then a rerun that skips the split, then the README table. Never a timing."""
    pytest.importorskip("blackjax", reason="the bench extra (blackjax) is not installed")
    results = tmp_path / "results"
    out = results / "uci_peers.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci_peers.py"), "--quick",
           "--out", str(out), "--uci-results", str(tmp_path / "none.json")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "uci_peers" and MACHINE_FIELDS <= set(report["machine"])
    rec = report["runs"]["yacht"]["0"]
    assert rec["order"] == "blackjax first"
    bj, ours = rec["blackjax"], rec["ours"]
    assert bj["reached_posterior"] is True
    # BlackJAX: per stage one gradient per particle at the kernel's init, then 1 x 5 steps.
    assert bj["gradient_evaluations"] == bj["num_stages"] * 16 * (1 + 1 * 5)
    for r in (bj, ours):
        for key in ("test_log_likelihood", "test_rmse", "log_evidence", "wall_seconds",
                    "run_seconds"):  # fmt: skip
            assert math.isfinite(r[key]), key
    agg = report["aggregate"]["yacht"]
    assert agg["splits"] == [0] and agg["evidence_selected"] == {}  # no uci.py results given
    assert agg["ours"]["test_log_likelihood"]["mean"] == ours["test_log_likelihood"]
    assert agg["time_share"] == pytest.approx(ours["wall_seconds"] / bj["wall_seconds"])
    assert agg["goal_met"] == (agg["at_least_as_good"] and agg["time_share"] <= 0.5)
    paired = agg["paired_test_ll_difference"]
    assert paired["n"] == 1 and paired["stderr"] is None
    assert paired["mean"] == pytest.approx(ours["test_log_likelihood"] - bj["test_log_likelihood"])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "yacht split 0: done already" in proc.stdout
    assert json.loads(out.read_text())["runs"] == report["runs"]
    text = _readme_tables(results, tmp_path)
    assert "UCI side by side: BlackJAX adaptive tempered SMC and ours" in text
    assert "| yacht | 0 |" in text


@pytest.mark.bench_smoke
def test_uci_peers_evidence_selected_quick_run(tmp_path):
    """uci_peers.py --quick --evidence-selected: the selected row keeps the candidate with the
    highest training log evidence and is timed as all its fits together; a rerun without
    the option is refused (another configuration). Never a timing."""
    pytest.importorskip("blackjax", reason="the bench extra (blackjax) is not installed")
    results = tmp_path / "results"
    out = results / "uci_peers_selected.json"
    base = [sys.executable, str(ROOT / "benchmarks" / "uci_peers.py"), "--quick",
            "--out", str(out), "--uci-results", str(tmp_path / "none.json")]  # fmt: skip
    proc = subprocess.run(base + ["--evidence-selected"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["selected_candidates"] == [[1.0, 1.0, False], [1.0, 0.5, True]]
    rec = report["runs"]["yacht"]["0"]
    sel, cands = rec["ours_selected"], rec["ours_selected"]["candidates"]
    assert set(cands) == {"prior_scale=1,noise_shape=1",
                          "prior_scale=1,noise_shape=1,width=0.5x,heteroscedastic"}
    assert sel["chosen"] == max(cands, key=lambda k: cands[k]["log_evidence"])
    assert sel["test_log_likelihood"] == cands[sel["chosen"]]["test_log_likelihood"]
    assert sel["wall_seconds"] == pytest.approx(sum(c["wall_seconds"] for c in cands.values()))
    agg = report["aggregate"]["yacht"]["ours_selected"]
    assert agg["paired_test_ll_difference"]["mean"] == pytest.approx(
        sel["test_log_likelihood"] - rec["blackjax"]["test_log_likelihood"])
    assert agg["goal_met"] == (agg["at_least_as_good"] and agg["time_share"] <= 0.5)
    proc = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "another configuration" in proc.stderr
    text = _readme_tables(results, tmp_path)
    assert "Ours, evidence-selected, timed side by side" in text


@pytest.mark.bench_smoke
def test_uci_peers_screened_selection_quick_run(tmp_path):
    """uci_peers.py --quick --evidence-selected --screen-steps 1 --keep 1: every candidate is
    screened, only the best by the screening evidence is fit in full and chosen, and the
    time counts every fit. Never a timing."""
    pytest.importorskip("blackjax", reason="the bench extra (blackjax) is not installed")
    results = tmp_path / "results"
    out = results / "uci_peers_screened.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci_peers.py"), "--quick",
           "--evidence-selected", "--screen-steps", "1", "--keep", "1", "--out", str(out),
           "--uci-results", str(tmp_path / "none.json")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["screen"] == {"steps": 1, "keep": 1}
    sel = report["runs"]["yacht"]["0"]["ours_selected"]
    screened, full = sel["screened"], sel["candidates"]
    assert len(screened) == 2
    assert list(full) == [max(screened, key=lambda k: screened[k]["log_evidence"])]
    assert sel["chosen"] == list(full)[0]
    every = [*screened.values(), *full.values()]
    assert sel["wall_seconds"] == pytest.approx(sum(c["wall_seconds"] for c in every))
    text = _readme_tables(results, tmp_path)
    assert "fit first with 1 move(s) per stage, the 1 with the highest" in text


@pytest.mark.bench_smoke
def test_uci_ours_alone_against_the_published_numbers(tmp_path):
    """uci_peers.py --quick --no-blackjax --no-fixed --evidence-selected: ours' screened
    selection alone, its row set beside the best published test LL. Never a timing."""
    results = tmp_path / "results"
    out = results / "uci_screened_all.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci_peers.py"), "--quick",
           "--no-blackjax", "--no-fixed", "--evidence-selected", "--screen-steps", "1",
           "--keep", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "uci_ours" and report["config"]["blackjax"] is None
    rec = report["runs"]["yacht"]["0"]
    assert set(rec) == {"order", "ours_selected", "finished_utc"}
    agg = report["aggregate"]["yacht"]
    assert agg["best_published_log_likelihood"] == -1.18  # deep ensembles
    sel = agg["ours_selected"]
    assert sel["test_log_likelihood"]["mean"] == rec["ours_selected"]["test_log_likelihood"]
    assert sel["beats_every_published_log_likelihood"] == (
        sel["test_log_likelihood"]["mean"] > -1.18)
    assert "ours" not in agg
    text = _readme_tables(results, tmp_path)
    assert "UCI, ours alone on more splits, against the published numbers" in text
    assert "| yacht | 0 | – |" in text


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--screen-steps", "2"], "--screen-steps needs --evidence-selected"),
     (["--evidence-selected", "--screen-steps", "0"], "must be at least 1"),
     (["--no-fixed", "--evidence-selected"], "--no-fixed needs --no-blackjax")],
)  # fmt: skip
def test_uci_peers_screening_options_are_checked(tmp_path, extra, match):
    # Checked before anything is imported or read: no BlackJAX or data needed.
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci_peers.py"), "--datasets", "yacht",
           "--splits", "0", "--out", str(tmp_path / "x.json"), *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and match in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "x.json").exists()


def test_uci_results_of_another_recipe_are_refused(tmp_path, monkeypatch):
    """A results JSON is continued only with the same recipe; one written before
    ``integration_steps`` was recorded counts as the default 20 leapfrog steps, and one
    written before the heteroscedastic noise floor counts as having none if it holds
    heteroscedastic fits (else the floor cannot have mattered)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import uci

    recipe = {"method": "smc-adaptive", "activation": "relu", "prior": "fan_in",
              "fixed_prior_scale": 1.0, "fixed_noise_shape": 1.0, "particles": 64, "steps": 5,
              "integration_steps": 20, "seed": 0,
              "heteroscedastic_noise_floor": uci.HETERO_NOISE_FLOOR}  # fmt: skip
    old = {k: v for k, v in recipe.items()
           if k not in ("integration_steps", "heteroscedastic_noise_floor")}  # fmt: skip
    path = tmp_path / "uci.json"
    path.write_text(json.dumps({"benchmark": "uci", "recipe": old, "runs": {}}))
    assert uci.load_results(path, recipe)["recipe"]["integration_steps"] == 20
    hetero_fit = {"heteroscedastic": True}
    runs = {"wine": {"0": {"candidates": {"x,heteroscedastic": hetero_fit}}}}
    path.write_text(json.dumps({"benchmark": "uci", "recipe": old, "runs": runs}))
    with pytest.raises(uci.UsageError, match=r"heteroscedastic_noise_floor: 0.0 there, 'auto' now"):
        uci.load_results(path, recipe)
    path.write_text(json.dumps({"benchmark": "uci", "recipe": old, "runs": {}}))
    with pytest.raises(uci.UsageError, match=r"integration_steps: 20 there, 50 now"):
        uci.load_results(path, {**recipe, "integration_steps": 50})
    with pytest.raises(uci.UsageError, match=r"particles: 64 there, 32 now"):
        uci.load_results(path, {**recipe, "particles": 32})


@pytest.mark.bench_smoke
def test_smc_vs_blackjax_quick_run_writes_report_and_readme_tables(tmp_path):
    """benchmarks/smc_vs_blackjax.py at tiny sizes, then make_tables.py on its JSON.

    One setting (16 particles, 1 move, tempering, conjugate problem) serves the overhead and
    the accuracy part, so each sampler compiles once. Checks the report's structure, the
    gradient bookkeeping, the exact log evidence against an independent formula, and that
    make_tables.py rewrites only its marked README section.
    """
    import importlib.util

    import numpy as np
    import pytest
    from scipy.stats import multivariate_normal

    pytest.importorskip("blackjax", reason="the bench extra (blackjax) is not installed")
    results = tmp_path / "results"
    out = results / "smc_vs_blackjax.json"
    script = ROOT / "benchmarks" / "smc_vs_blackjax.py"
    cmd = [sys.executable, str(script), "--quick", "--out", str(out)]
    cmd += ["--overhead", "conjugate/tempering", "--particles", "16", "--moves", "1"]
    cmd += ["--accuracy", "conjugate/tempering", "--budgets", "16x1", "--seeds", "1"]
    cmd += ["--repeats", "1", "--no-baseline", "--ours-target-ess", "0.6"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| conjugate/tempering |" in proc.stdout
    assert "Target ESS: BlackJAX 0.5, ours **0.6**" in proc.stdout

    report = json.loads(out.read_text())
    assert report["benchmark"] == "smc_vs_blackjax"
    assert MACHINE_FIELDS <= set(report["machine"])
    assert report["config"]["quick"] is True and "--quick" in report["command"]
    assert isinstance(report["all_passed"], bool)
    (over,) = report["overhead"]
    assert over["name"] == "conjugate/tempering" and over["dim"] == 9
    assert over["num_particles"] == 16 and over["num_mcmc_steps"] == 1
    for sampler in ("ours", "blackjax"):
        s = over[sampler]
        # One gradient per particle at each stage's start, then one per leapfrog step.
        for stages, grads in zip(s["num_stages"], s["gradient_evaluations"], strict=True):
            assert stages >= 1 and grads == stages * 16 * (1 + 1 * 20)
        assert s["reached_posterior"] is True
        assert all(math.isfinite(z) for z in s["log_z"])
        assert len(s["wall_s"]) == 1 and s["seconds_per_gradient_evaluation"] > 0
    assert over["passed"] == (over["ratio"] <= over["target_ratio"] == 1.0)
    assert report["config"]["target_ess"] == 0.5 and report["config"]["ours_target_ess"] == 0.6
    # Ours resamples at every stage and its bisection lands a hair below its target, so each
    # stage before the last leaves ESS = 0.6 N; BlackJAX's realised ESS is only a fraction.
    for stages, ess in zip(over["ours"]["num_stages"], over["ours"]["mean_ess_fraction"],
                           strict=True):
        assert stages > 1 and 0.59 < ess <= 0.6
    assert all(0.0 < e <= 1.0 for e in over["blackjax"]["mean_ess_fraction"])

    # The exact log evidence: y ~ N(0, sigma^2 I + s^2 [X, 1][X, 1]^T), here via scipy.
    spec = importlib.util.spec_from_file_location("smc_vs_blackjax", script)
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(script.parent))
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(script.parent))
        del sys.modules[spec.name]
    X, y = bench.conjugate_data()
    phi = np.c_[X, np.ones(len(X))]
    cov = bench.CONJ_NOISE**2 * np.eye(len(X)) + bench.CONJ_PRIOR_SCALE**2 * phi @ phi.T
    exact = multivariate_normal(np.zeros(len(X)), cov).logpdf(y.ravel())
    (acc,) = report["accuracy"]
    assert acc["reference_kind"] == "exact"
    assert abs(acc["reference_log_z"] - exact) < 1e-8
    assert {r["sampler"] for r in acc["rows"]} == {"ours", "blackjax", "ours_waste_free"}
    for r in acc["rows"]:
        if r["sampler"] == "ours_waste_free":
            # --quick: 256 particles, 32 chains of P = 8 states (7 moves each); per stage one
            # gradient per chain at its start, then 20 per move.
            assert r["num_particles"] == 256 and r["waste_free_chain_length"] == 8
            for stages, grads in zip(r["num_stages"], r["gradient_evaluations"], strict=True):
                assert grads == stages * 32 * (1 + 7 * 20)
        else:
            assert r["num_particles"] == 16 and r["num_mcmc_steps"] == 1
        assert abs(r["mean_abs_error"] - abs(r["log_z"][0] - exact)) < 1e-9
    tta = acc["time_to_accuracy"]
    target = acc["target_ratio"]
    assert target == 0.5
    expected = []
    for ours, ratio in (("ours", acc["ratio"]), ("ours_waste_free", acc["ratio_waste_free"])):
        if tta[ours] and tta["blackjax"]:
            assert ratio == tta[ours]["wall_s"] / tta["blackjax"]["wall_s"]
            expected.append(ratio <= target)
        else:  # a pass only when ours gets there and BlackJAX does not
            assert ratio is None
            expected.append(tta[ours] is not None and tta["blackjax"] is None)
    assert acc["passed"] == any(expected)

    # make_tables.py: appends the section once, then replaces only what is between markers.
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nintro\n")
    tables = [sys.executable, str(ROOT / "benchmarks" / "make_tables.py")]
    tables += ["--results", str(results), "--readme", str(readme)]
    for _ in range(2):
        proc = subprocess.run(tables, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n## Benchmarks\n\n<!-- bench:start -->\n")
    assert text.count("<!-- bench:start -->") == 1 and text.rstrip().endswith("<!-- bench:end -->")
    assert "### SMC against BlackJAX" in text and "| conjugate/tempering |" in text
    assert report["command"] in text
    check = subprocess.run(tables + ["--check"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0


@pytest.mark.bench_smoke
def test_smc_vs_blackjax_refuses_an_impossible_target_ess(tmp_path):
    out = tmp_path / "x.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "smc_vs_blackjax.py"), "--out", str(out)]
    proc = subprocess.run(cmd + ["--ours-target-ess", "1.5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "--ours-target-ess must be between 0 and 1" in proc.stderr
    assert not out.exists()


@pytest.mark.bench_smoke
def test_peers_quick_run_writes_report_and_tables(tmp_path):
    """benchmarks/peers.py --quick on the toy problem, narrowed (one NUTS chain, 8 particles,
    ours and BlackJAX HMC, Langevin), then make_tables.py on its JSON. Checks structure,
    the gradient bookkeeping, that the test metrics are fit's, and the time-to-accuracy
    logic; never a timing."""
    import pytest

    pytest.importorskip("blackjax", reason="the bench extra (blackjax) is not installed")
    pytest.importorskip("numpyro", reason="the bench extra (numpyro) is not installed")
    results = tmp_path / "results"
    out = results / "peers.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--out", str(out),
           "--problems", "toy", "--nuts-chains", "1", "--particles", "8",
           "--samplers", "ours_smc,blackjax_hmc"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| ours: smc | N=8, M=2 |" in proc.stdout

    report = json.loads(out.read_text())
    assert report["benchmark"] == "peers" and "--quick" in report["command"]
    assert MACHINE_FIELDS <= set(report["machine"])
    (prob,) = report["problems"]
    assert prob["problem"] == "toy" and prob["dim"] == 1 + (1 * 50 + 50) + (50 + 1)
    assert prob["num_train"] == 50 and prob["num_test"] == 200
    (nuts,) = prob["nuts"]
    assert nuts["sampler"] == "nuts_1chain" and nuts["num_samples"] == 50
    # At least one leapfrog step per iteration, plus the initial gradient.
    assert nuts["gradient_evaluations"] >= 100 + 1
    ref = prob["reference"]["test_log_likelihood"]
    assert ref == nuts["test_log_likelihood"] and math.isfinite(ref)

    rows = {r["sampler"]: r for r in prob["rows"]}
    assert set(rows) == {"ours_smc", "blackjax_hmc", "ours_langevin"}
    for name in ("ours_smc", "blackjax_hmc"):
        r = rows[name]
        assert r["num_particles"] == 8 and r["moves"] == 2
        (run,) = r["runs"]  # one seed under --quick
        assert run["reached_posterior"] is True
        for key in ("test_log_likelihood", "test_rmse", "log_evidence", "wall_s"):
            assert math.isfinite(run[key]), (name, key)
        # A short call is timed again, and its time is the median of the calls.
        calls = run["wall_s_calls"]
        assert 1 <= len(calls) <= 9 and run["wall_s"] == statistics.median(calls)
        assert len(calls) == 9 or sum(calls) >= 0.5
        assert r["wall_s_with_compile"] == r["wall_s_median"] + r["compile_s"]
    # BlackJAX: per stage one gradient per particle at the kernel's init, then M x L = 2 x 20.
    bj = rows["blackjax_hmc"]["runs"][0]
    assert bj["gradient_evaluations"] == bj["num_stages"] * 8 * (1 + 2 * 20)
    # Langevin's metrics are computed by the script's own code on fit's draws: they must
    # equal fit's (same standardisation, same predictive density).
    lrun = rows["ours_langevin"]["runs"][0]
    assert abs(lrun["test_log_likelihood"] - lrun["fit_test_log_likelihood"]) < 1e-4
    # Its compile time is counted once per budget (the first seed compiles).
    lrow = rows["ours_langevin"]
    assert lrow["map_steps"] == 200 and lrow["compile_s"] == lrun["compile_s"] > 0
    assert lrow["wall_s_with_compile"] == lrow["wall_s_median"] + lrow["compile_s"]

    tol = prob["reference"]["tolerance"]
    assert tol == 0.05
    for name, t in prob["time_to_accuracy"].items():
        if name == "ours_fastest":  # checked below
            continue
        ok = [r for r in prob["rows"] if r["sampler"] == name
              and r["test_log_likelihood_mean"] >= ref - tol]  # fmt: skip
        assert (t is None) == (not ok)
        if t is not None:
            assert t["wall_s"] == min(r["wall_s_median"] for r in ok)
    tta = prob["time_to_accuracy"]
    mine = [dict(tta[s], sampler=s) for s in ("ours_smc", "ours_langevin") if tta[s]]
    assert tta["ours_fastest"] == min(mine, key=lambda t: t["wall_s"], default=None)
    comps = prob["comparisons"]
    assert set(comps) == {f"ours_{s}_vs_blackjax_hmc" for s in ("smc", "langevin", "fastest")}
    for comp in comps.values():
        if comp["speedup"] is not None:
            assert comp["passed"] == (comp["speedup"] >= 2.0)

    text = _readme_tables(results, tmp_path)
    assert "### Speed against the peers" in text and "| ours: smc | N=8, M=2 |" in text


@pytest.mark.bench_smoke
def test_layout_quick_run_writes_report_and_table(tmp_path):
    """benchmarks/layout.py on two small cases (one heteroscedastic), 4 particles, 2
    gradients a call, one repeat: the row form and ours give the same log density and
    gradient, and the report renders; never a timing."""
    out = tmp_path / "results" / "layout.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "layout.py"), "--cases",
           "yacht;boston, heteroscedastic, 25 units", "--particles", "4", "--steps", "2",
           "--repeats", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "layout" and MACHINE_FIELDS <= set(report["machine"])
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"yacht", "boston, heteroscedastic, 25 units"}
    assert rows["boston, heteroscedastic, 25 units"]["heteroscedastic"] is True
    for r in rows.values():
        # float32 rounding of the same sums in another order, nothing more.
        assert r["max_relative_value_difference"] < 1e-5, r
        assert r["max_relative_gradient_difference"] < 1e-4, r
        assert r["us_per_gradient_row"] > 0 and r["us_per_gradient_ours"] > 0
    text = _readme_tables(out.parent, tmp_path)
    assert "### The dense network's layout: cost per gradient" in text
    assert "| yacht | 277 | 6 x 50 x 1 |" in text

    bad = subprocess.run(cmd[:2] + ["--cases", "nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "unknown case(s) ['nope']" in bad.stderr


@pytest.mark.bench_smoke
def test_smc_overhead_quick_run_writes_report(tmp_path):
    """benchmarks/smc_overhead.py --quick on the README network, 8 particles, one move, one
    repeat: structure and gradient bookkeeping; never a timing."""
    out = tmp_path / "smc_overhead.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "smc_overhead.py"), "--quick",
           "--cases", "readme", "--particles", "8", "--moves", "1", "--repeats", "1",
           "--hmc-loop", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| readme | 8 | default |" in proc.stdout

    report = json.loads(out.read_text())
    assert report["benchmark"] == "smc_overhead" and MACHINE_FIELDS <= set(report["machine"])
    (case,) = report["cases"]
    assert case["num_particles"] == 8 and case["num_mcmc_steps"] == 1
    assert case["dim"] == 1 + (1 * 50 + 50) + (50 * 50 + 50) + (50 * 1 + 1)
    variants = {v["name"]: v for v in case["variants"]}
    assert set(variants) == set(report["config"]["variants"])
    for name, v in variants.items():
        (s,) = v["samples"]
        # One gradient per particle at each stage's start, then 20 per move (1 move; none
        # for no_moves).
        per_stage = 1 if name == "no_moves" else 1 + 20
        assert s["gradient_evaluations"] == s["num_stages"] * 8 * per_stage, name
        assert math.isfinite(v["ratio"]) and v["ratio"] > 0
    # The fixed schedule replays the default run's path: the same number of stages.
    assert variants["fixed_schedule"]["num_stages_median"] == case["fixed_path_stages"]
    assert case["ratio"] == variants["default"]["ratio"]
    assert case["passed"] == (case["ratio"] <= case["target_ratio"] == 1.15)
    # The bare HMC loop: 1 + K x 20 gradients per particle, K trajectories filling about
    # the default run's gradient count.
    (h,) = case["hmc_loop"]["samples"]
    default_grads = variants["default"]["samples"][0]["gradient_evaluations"]
    assert h["gradient_evaluations"] == 8 * (1 + h["trajectories"] * 20)
    assert h["trajectories"] == max((default_grads // 8 - 1) // 20, 1)
    assert math.isfinite(case["hmc_loop"]["smc_over_hmc_loop"])


@pytest.mark.bench_smoke
def test_scaling_quick_run_writes_report_plot_and_readme_table(tmp_path):
    """benchmarks/scaling.py --quick: two processes (one device, unsharded; two forced host
    devices with data and particle chunks), then make_tables.py on its JSON.

    Checks the structure, the gradient bookkeeping and that both runs estimate the same log
    evidence. With one stage the estimate is the log mean of exp(log-likelihood) at the
    prior draws, made before any move, so the two runs differ only by float32 rounding of
    the 455-term log-likelihood sums: at most about n * 2**-24 * sum |log p(y_i | theta)|
    ~ 455 * 6e-8 * 1e3 ~ 0.03 nats for log-likelihoods of order -1e3 (-634 here), hence 0.05.
    """
    import pytest

    from langevin_nets.datasets import find_uci_dir

    try:
        data_dir = find_uci_dir()
    except ValueError:
        pytest.skip("UCI data folder not found")
    if not (data_dir / "boston" / "data.txt").is_file():
        pytest.skip("UCI boston data not found")
    results = tmp_path / "results"
    out = results / "scaling.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick", "--out", str(out),
           "--data-dir", str(data_dir)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert out.with_suffix(".png").stat().st_size > 0

    report = json.loads(out.read_text())
    assert report["benchmark"] == "scaling" and "--quick" in report["command"]
    assert MACHINE_FIELDS <= set(report["machine"])
    runs = {r["name"]: r for r in report["runs"]}
    assert set(runs) == {"unsharded", "2 devices, chunked"}
    assert not any("error" in r for r in runs.values())
    one, two = runs["unsharded"], runs["2 devices, chunked"]
    assert one["jax_devices"] == 1 and two["jax_devices"] == 2 and two["devices"] == 2
    assert two["data_chunk"] == 128 and two["particle_chunk"] == 16
    for r in (one, two):
        assert r["num_data"] == 455 and r["dim"] == 1 + 13 * 50 + 50 + 50 + 1
        # One gradient per particle at the stage's start, then one per leapfrog step.
        stages, moves, steps = r["num_stages"], r["num_mcmc_steps"], r["num_integration_steps"]
        assert r["num_stages_run"] == stages
        assert r["gradient_evaluations"] == r["num_particles"] * stages * (1 + moves * steps)
        assert r["gradients_per_second"] == pytest.approx(r["gradient_evaluations"] / r["run_s"])
        assert r["finite"] and r["max_rss_mb"] >= r["rss_before_run_mb"] > 0
    assert abs(one["log_evidence"] - two["log_evidence"]) < 0.05
    memory = two["gradient_program_memory"]
    assert 0 < memory["chunked_temp_bytes"] < memory["unchunked_temp_bytes"]

    text = _readme_tables(results, tmp_path)
    assert "### Scaling: devices, particles, data size" in text
    assert "share the same" in text and "| 2 devices, chunked | 2 | 64 | 128 | 16 |" in text


@pytest.mark.bench_smoke
def test_uci_budget_quick_run_writes_report_and_readme_table(tmp_path):
    """benchmarks/uci_budget.py --quick (yacht split 0, budgets 8x1x5 and 8x1x20), then
    make_tables.py on its JSON: structure and gradient bookkeeping, never a timing."""
    from langevin_nets.datasets import find_uci_dir

    try:
        data_dir = find_uci_dir()
    except ValueError:
        pytest.skip("UCI data folder not found")
    results = tmp_path / "results"
    out = results / "uci_budget.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uci_budget.py"), "--quick",
           "--data-dir", str(data_dir), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "uci_budget" and MACHINE_FIELDS <= set(report["machine"])
    assert [(r["particles"], r["moves"], r["integration_steps"]) for r in report["rows"]] == [
        (8, 1, 5), (8, 1, 20)]  # fmt: skip
    for r in report["rows"]:
        assert r["dataset"] == "yacht" and r["split"] == 0 and r["n_train"] == 277
        for key in ("log_evidence", "test_log_likelihood", "test_rmse", "wall_seconds"):
            assert math.isfinite(r[key]), key
        # Per stage and particle: one gradient at the new target, then M x L.
        per_stage = 1 + r["moves"] * r["integration_steps"]
        assert r["gradient_evaluations"] == r["num_stages"] * 8 * per_stage

    text = _readme_tables(results, tmp_path)
    assert "### UCI: the sampler budget" in text and "| 8 x 1 x 20 |" in text
