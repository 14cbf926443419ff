"""Smoke test of benchmarks/langevin_overhead.py: it runs and writes the JSON it promises.

Timings are never asserted on (they depend on the machine and its load); only the
structure of the report and the bookkeeping that must hold on any machine are checked.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

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
           "--md", str(md), "--data-dir", str(data_dir), "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

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
    proc = subprocess.run(cmd[:-1], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done already" in proc.stdout
    again = json.loads(out.read_text())
    assert again["runs"]["yacht"]["0"]["candidates"] == split["candidates"]
    assert len(again["invocations"]) == 2


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
    cmd += ["--repeats", "1", "--no-baseline"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| conjugate/tempering |" in proc.stdout

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
    assert {r["sampler"] for r in acc["rows"]} == {"ours", "blackjax"}
    for r in acc["rows"]:
        assert r["num_particles"] == 16 and r["num_mcmc_steps"] == 1
        assert abs(r["mean_abs_error"] - abs(r["log_z"][0] - exact)) < 1e-9
    tta = acc["time_to_accuracy"]
    if tta["ours"] and tta["blackjax"]:
        assert acc["passed"] == (acc["ratio"] <= acc["target_ratio"] == 0.5)
    else:  # a pass only when ours gets there and BlackJAX does not
        assert acc["ratio"] is None and acc["passed"] == (tta["ours"] is not None)

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
