"""Turn ``benchmarks/results/*.json`` into the README's benchmark tables.

Rewrites only the part of ``README.md`` between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` (the markers and a ``## Benchmarks`` heading are appended at the end
of the README when they are missing). Each results file becomes one subsection that states
the command that produced it and the machine it ran on. Known benchmarks
(``uci``, ``uci_peers``, ``uci_ours``, ``uci_budget``, ``smc_vs_blackjax``,
``smc_network_reference``, ``langevin_overhead``, ``peers``, ``smc_overhead``, ``scaling``)
get their own tables; any
other results file is listed with its command.

Usage::

    .venv/bin/python benchmarks/make_tables.py [--results DIR] [--readme PATH] [--check]

``--check`` writes nothing and exits with status 1 when the README is out of date.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
HEADING = "## Benchmarks"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are shown with 4 significant digits.

    The same format as ``common.markdown_table``, kept here so that this script needs
    neither JAX nor the package.
    """

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _yes(passed: Any) -> str:
    return "yes" if passed else "NO"


def _machine_line(machine: dict[str, Any] | None) -> str:
    if not machine:
        return "machine: not recorded"
    git = machine.get("git") or {}
    commit = (git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")
    load = machine.get("load_average_1_5_15min")
    return (
        f"machine: {machine.get('cpu_model', '?')}, {machine.get('cpu_count_usable', '?')} "
        f"usable cores, load average {load} at the start, {machine.get('backend', '?')} "
        f"backend, JAX {machine.get('jax', '?')}, commit {commit}, "
        f"{machine.get('timestamp_utc', '?')}"
    )


# -- smc_vs_blackjax ------------------------------------------------------------------------------
def _us(seconds: float) -> str:
    return f"{1e6 * seconds:.3g}"


def _fmt_tta(t: dict[str, Any] | None) -> str:
    if t is None:
        return "not reached"
    if t.get("waste_free_chain_length"):
        return f"{t['wall_s']:.3g} s (N={t['num_particles']}, P={t['waste_free_chain_length']})"
    return f"{t['wall_s']:.3g} s (N={t['num_particles']}, M={t['num_mcmc_steps']})"


def _case_name(c: dict[str, Any]) -> str:
    batch = c.get("batch_size")
    return c["name"] + (f" (batch {batch})" if batch else "")


def smc_overhead_table(cases: Sequence[dict[str, Any]]) -> str:
    headers = [
        "case", "particles", "moves x steps", "stages ours / BlackJAX", "ours us/grad",
        "BlackJAX us/grad", "gradient alone us/grad", "ratio", "ratio (CPU time)", "target",
        "pass",
    ]
    rows = []
    for c in cases:
        grad_only = (c.get("gradient_only") or {}).get("seconds_per_gradient_evaluation")
        row = [
            _case_name(c),
            c["num_particles"],
            f"{c['num_mcmc_steps']}x{c['num_integration_steps']}",
            f"{statistics.median(c['ours']['num_stages']):g} / "
            f"{statistics.median(c['blackjax']['num_stages']):g}",
            _us(c["ours"]["seconds_per_gradient_evaluation"]),
            _us(c["blackjax"]["seconds_per_gradient_evaluation"]),
            "-" if grad_only is None else _us(grad_only),
            c["ratio"],
            c.get("ratio_cpu", "-"),
            f"<= {c['target_ratio']}",
            _yes(c["passed"]),
        ]
        rows.append(row)
    return markdown_table(headers, rows)


def smc_accuracy_table(cases: Sequence[dict[str, Any]]) -> str:
    # The waste-free columns appear when some case ran ours as waste-free SMC.
    chains = next((c["waste_free_chains"] for c in cases if c.get("waste_free_chains")), None)
    rows = []
    for c in cases:
        tta = c["time_to_accuracy"]
        wf = [_fmt_tta(tta.get("ours_waste_free")) if c.get("waste_free_chains") else "-"]
        wf_ratio = ["-" if c.get("ratio_waste_free") is None else c["ratio_waste_free"]]
        rows.append(
            [
                _case_name(c),
                f"{c['reference_log_z']:.3f} ({c['reference_kind']})",
                _fmt_tta(tta.get("ours")),
                *(wf if chains else []),
                _fmt_tta(tta.get("blackjax")),
                "-" if c["ratio"] is None else c["ratio"],
                *(wf_ratio if chains else []),
                f"<= {c['target_ratio']}",
                _yes(c["passed"]),
            ]
        )
    tol = cases[0]["error_tolerance"] if cases else 0.1
    wf_head = [f"ours, waste-free ({chains} chains)"] if chains else []
    return markdown_table(
        ["case", "reference log Z", f"ours: time to error < {tol}", *wf_head, "BlackJAX",
         "ratio", *(["ratio (waste-free)"] if chains else []), "target", "pass"],
        rows,
    )


def smc_accuracy_detail(case: dict[str, Any]) -> str:
    by_budget: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in case["rows"]:
        by_budget.setdefault((r["num_particles"], r["num_mcmc_steps"]), {})[r["sampler"]] = r
    names = ("ours", "ours_waste_free", "blackjax")
    samplers = [s for s in names if any(s in v for v in by_budget.values())]
    labels = {"ours": "ours", "ours_waste_free": "ours, waste-free (M = P - 1)",
              "blackjax": "BlackJAX"}

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        se = r.get("mean_abs_error_se")
        err = f"{r['mean_abs_error']:.3f}" + ("" if se is None else f" ± {se:.3f}")
        signed = r.get("mean_error")
        signed = "" if signed is None else f", mean {signed:+.3f}"
        stages = statistics.median(r["num_stages"])
        ess = r.get("mean_ess_fraction")
        ess = "" if not ess else f", ESS {statistics.fmean(ess):.2f} N"
        return f"{r['wall_s_median']:.3g} s, {err}{signed} ({stages:g} stages{ess})"

    rows = [[n, m, *(cell(s.get(name)) for name in samplers)] for (n, m), s in by_budget.items()]
    return markdown_table(
        ["particles", "moves", *(f"{labels[s]}: time, mean abs error" for s in samplers)], rows
    )


def render_smc_vs_blackjax(report: dict[str, Any]) -> str:
    cfg = report.get("config", {})
    parts = [
        "Same log density, particles and HMC moves (momentum redrawn, "
        f"{cfg.get('num_integration_steps', '?')} leapfrog steps, one test per trajectory) for "
        f"both; BlackJAX {cfg.get('blackjax', '?')}. Times are medians of wall time after a "
        "warm-up call that compiles the same program; runs of the two samplers interleaved. "
        "The machine is shared: only the ratios mean anything.",
    ]
    ours_ess = cfg.get("ours_target_ess")
    if ours_ess is not None and ours_ess != cfg.get("target_ess"):
        parts[0] += (
            f" Target ESS: BlackJAX {cfg.get('target_ess')}, ours **{ours_ess}** (set apart "
            "to compare at equal realised ESS: BlackJAX's solver lands above its target)."
        )
    if report.get("overhead"):
        parts += [
            "",
            "**Cost per gradient evaluation** (ratio = ours / BlackJAX, seconds per gradient "
            "evaluation of one particle):",
            "",
            smc_overhead_table(report["overhead"]),
        ]
        exact = [c for c in report["overhead"] if c["ours"].get("log_z_error_mean") is not None]
        if exact:
            parts += [
                "",
                "Mean log-evidence error of those runs (exact answer known): "
                + "; ".join(
                    f"{c['name']}: ours {c['ours']['log_z_error_mean']:+.2f}, BlackJAX "
                    f"{c['blackjax']['log_z_error_mean']:+.2f}"
                    for c in exact
                )
                + " nats.",
            ]
    if report.get("accuracy"):
        tol = report["accuracy"][0]["error_tolerance"]
        parts += [
            "",
            f"**Time to a log-evidence error below {tol} nats** (mean absolute error over "
            "seeds; the time of the cheapest budget that gets there; ratio = ours / "
            "BlackJAX):",
            "",
            smc_accuracy_table(report["accuracy"]),
        ]
        looser = [
            [_case_name(c), tol, _fmt_tta(t.get("ours")), _fmt_tta(t.get("blackjax"))]
            for c in report["accuracy"]
            for tol, t in (c.get("time_to_looser_accuracy") or {}).items()
        ]
        if looser:
            parts += [
                "",
                "At looser tolerances (no target):",
                "",
                markdown_table(["case", "error below (nats)", "ours", "BlackJAX"], looser),
            ]
        ref = cfg.get("network_reference")
        if ref:
            parts += [
                "",
                f"Network reference: {ref['log_z']:.4f} ({ref.get('method', '')}; runs "
                f"{', '.join(f'{z:.3f}' for z in ref.get('runs_log_z', []))}). It is our "
                "own sampler's estimate, so it favours ours, and with a spread of "
                f"{ref.get('runs_std', float('nan')):.2f} nats between its runs it cannot "
                "resolve errors of 0.1 nats.",
            ]
        for c in report["accuracy"]:
            parts += [
                "",
                f"{_case_name(c)}: median time, mean absolute error (± its standard error) "
                f"and mean signed error of log Z over {c['seeds']} seeds per budget:",
                "",
                smc_accuracy_detail(c),
            ]
    return "\n".join(parts)


def render_smc_network_reference(report: dict[str, Any]) -> str:
    runs = ", ".join(f"{z:.4f}" for z in report.get("runs_log_z", []))
    se = report.get("median_se")
    return (
        f"Reference log evidence of the README network: **{report['log_z']:.4f}**"
        + ("" if se is None else f" (standard error of the median about {se:.3f})")
        + f", the median of: {runs}. Method: {report.get('method', '?')}."
    )


# -- langevin_overhead ----------------------------------------------------------------------------
def render_langevin_overhead(report: dict[str, Any]) -> str:
    cases = report.get("cases", [])
    rows = [
        [
            c["name"],
            c["num_chains"],
            c["dim"],
            c["gradient_evaluations"],
            c["baseline_evals_per_second"],
            c["langevin_evals_per_second"],
            c["ratio"],
            f"<= {c['target_ratio']}",
            _yes(c["passed"]),
        ]
        for c in cases
    ]
    table = markdown_table(
        ["case", "chains", "dim", "grad evals", "gradient loop evals/s", "langevin evals/s",
         "ratio", "target", "pass"],
        rows,
    )
    return (
        "`langevin(...)` against a bare `vmap(grad)` scan doing the same gradient evaluations "
        "(ratio = langevin's time / the loop's):\n\n" + table
    )


def _langevin_overhead_command(report: dict[str, Any]) -> str:
    cfg = report.get("config", {})
    args = [".venv/bin/python benchmarks/langevin_overhead.py"]
    if cfg.get("quick"):
        args.append("--quick")
    for flag in ("steps", "repeats", "seed"):
        if flag in cfg:
            args.append(f"--{flag} {cfg[flag]}")
    if cfg.get("cases"):
        args.append("--cases " + ",".join(cfg["cases"]))
    return " ".join(args)


# -- peers (NumPyro NUTS, BlackJAX SMC, ours) -----------------------------------------------------
PEER_LABELS = {
    "nuts_1chain": "NumPyro NUTS, 1 chain",
    "nuts_4chains": "NumPyro NUTS, 4 chains vectorised",
    "ours_smc": "ours: smc",
    "blackjax_hmc": "BlackJAX SMC, HMC",
    "blackjax_mala": "BlackJAX SMC, MALA",
    "ours_langevin": "ours: langevin",
    "ours_fastest": "ours: the faster of smc and langevin",
}


def _peer_budget(r: dict[str, Any]) -> str:
    if r["sampler"] == "ours_langevin":
        return (f"{r['num_chains']} chains x {r['samples_per_chain']} (burn-in {r['burnin']}"
                + (f", MAP {r['map_steps']})" if "map_steps" in r else ")"))
    return f"N={r['num_particles']}, M={r['moves']}"


def _fmt_peer_tta(t: dict[str, Any] | None) -> str:
    if t is None:
        return "not reached"
    which = f"{PEER_LABELS.get(t['sampler'], t['sampler'])}, " if "sampler" in t else ""
    return f"{t['wall_s']:.3g} s ({which}{t['budget']}; LL {t['test_log_likelihood']:.3f})"


def render_peers(report: dict[str, Any]) -> str:
    cfg = report.get("config", {})
    sizes = cfg.get("sizes", {})
    repeated = any("wall_s_calls" in run for prob in report.get("problems", [])
                   for row in prob.get("rows", []) for run in row.get("runs", []))  # fmt: skip
    parts = [
        "The same model for every sampler (" + str(cfg.get("model", "?")) + "); BlackJAX "
        f"{cfg.get('blackjax', '?')}, NumPyro {cfg.get('numpyro', '?')}. Times exclude "
        "compilation unless marked; SMC times are medians over "
        f"{sizes.get('seeds', '?')} seed(s) per budget"
        + (" of each seed's median over repeated calls (until they add up to 0.5 s, at most "
           "9 calls)" if repeated else "")
        + ", test LL a mean over them. "
        "Gradient evaluations count one particle or chain and one gradient each. The machine "
        "is shared: only times measured side by side in one run mean anything.",
    ]
    tol = cfg.get("ll_tolerance", 0.05)
    for prob in report.get("problems", []):
        ref = prob["reference"]["test_log_likelihood"]
        nuts_rows = [[PEER_LABELS.get(r["sampler"], r["sampler"]),
                      f"{r['num_warmup']} + {r['num_samples']}", r["wall_s"],
                      r["wall_s_with_compile"], r["gradient_evaluations"],
                      f"{r['test_log_likelihood']:.3f}", f"{r['test_rmse']:.3f}"]
                     for r in prob["nuts"]]
        rows = []
        for r in prob["rows"]:
            lz = r.get("log_evidence_mean")
            reached = r["test_log_likelihood_mean"] >= ref - tol
            rows.append([PEER_LABELS.get(r["sampler"], r["sampler"]), _peer_budget(r),
                         r["wall_s_median"], r["wall_s_with_compile"],
                         int(r["gradient_evaluations_median"]),
                         f"{r['test_log_likelihood_mean']:.3f}", f"{r['test_rmse_mean']:.3f}",
                         "-" if lz is None else f"{lz:.1f}", "yes" if reached else "no"])
        parts += [
            "",
            f"**{prob['problem']}** ({prob['description']}). NUTS reference "
            f"({PEER_LABELS.get(prob['reference']['sampler'], prob['reference']['sampler'])}) "
            "test "
            f"LL **{ref:.3f}**; a budget reaches it when its mean test LL is at least "
            f"{ref - tol:.3f}.",
            "",
            markdown_table(["sampler", "warm-up + samples", "wall s", "wall s with compile",
                            "gradient evals", "test LL", "test RMSE"], nuts_rows),
        ]
        tta = prob.get("time_to_accuracy", {})
        trow = []
        for s, t in tta.items():
            # ours_fastest: the budget of the sampler it names.
            cheapest = min((r["wall_s_median"] for r in prob["rows"]
                            if r["sampler"] == (t or {}).get("sampler", s)), default=None)
            # Reached by the cheapest budget tried: the time to accuracy is an upper bound.
            note = "cheapest budget tried" if t and t["wall_s"] == cheapest else ""
            trow.append([PEER_LABELS.get(s, s), _fmt_peer_tta(t), note])
        parts += ["", f"Time to a test LL within {tol} of the NUTS reference (the cheapest "
                  "budget of the grid that reaches it):", "",
                  markdown_table(["sampler", "time (budget; test LL)", "note"], trow)]
        comps = prob.get("comparisons", {})
        if comps:
            target = cfg.get("speedup_target", 2.0)
            crow = [[k.replace("_vs_", " vs ").replace("_", " "),
                     "-" if c["speedup"] is None else f"{c['speedup']:.2f}x",
                     f">= {target}x", _yes(c["passed"])] for k, c in comps.items()]
            parts += ["", markdown_table(["comparison", "speedup of ours (their time / ours)",
                                          "target", "pass"], crow)]
        parts += [
            "",
            f"<details><summary>{prob['problem']}: every budget ({len(rows)} rows)</summary>",
            "",
            markdown_table(["sampler", "budget", "wall s", "wall s with compile",
                            "gradient evals", "test LL", "test RMSE", "log evidence",
                            "reaches"], rows),
            "",
            "</details>",
        ]
    return "\n".join(parts)


# -- smc_overhead ---------------------------------------------------------------------------------
def render_smc_overhead(report: dict[str, Any]) -> str:
    rows = []
    for c in report.get("cases", []):
        for v in c["variants"]:
            rows.append([c["name"], c["num_particles"], v["name"], v["num_stages_median"],
                         v["gradient_evaluations"], v["wall_s_median"],
                         v["baseline_wall_s_median"], v["ratio"],
                         f"<= {c['target_ratio']}" if v["name"] == "default" else "-",
                         _yes(v["ratio"] <= c["target_ratio"]) if v["name"] == "default"
                         else "-"])
    table = markdown_table(
        ["case", "particles", "variant", "stages", "grad evals", "smc s", "gradient loop s",
         "ratio", "target", "pass"], rows)
    hmc = [(c["name"], c["hmc_loop"]) for c in report.get("cases", []) if c.get("hmc_loop")]
    if hmc:
        table += "\n\nA bare jitted HMC loop (leapfrog, Metropolis test per trajectory, " \
            "momentum redrawn) with about the default run's gradients, seconds per gradient " \
            "(medians of per-repeat ratios):\n\n" + markdown_table(
                ["case", "smc / HMC loop", "HMC loop / gradient loop"],
                [[name, h["smc_over_hmc_loop"], h["hmc_loop_over_gradient_loop"]]
                 for name, h in hmc])
    return (
        "`smc(...)` against a bare jitted `fori_loop` of `vmap(grad(logdensity))` doing the "
        "same number of gradient evaluations (`SMCResult.num_gradient_evaluations`), same "
        "particles and model; compilation excluded, medians over repeats. The variants take "
        "parts of the stage away to show where the rest of the time goes:\n\n" + table
    )


# -- the dense network's layout ---------------------------------------------------------------
def render_layout(report: dict[str, Any]) -> str:
    rows = [[r["name"], r["n"], " x ".join(str(s) for s in r["layer_sizes"]),
             f"{r['us_per_gradient_row']:.2f}", f"{r['us_per_gradient_ours']:.2f}",
             f"{r['row_over_ours']:.2f}", f"{r['max_relative_gradient_difference']:.1e}"]
            for r in report["rows"]]  # fmt: skip
    cfg = report["config"]
    return (
        "One particle's gradient of the log posterior, microseconds, in a jitted scan of "
        f"`vmap(grad)` over {cfg['particles']} particles ({cfg['steps']} gradients a call, "
        f"median of {cfg['repeats']} interleaved repeats, compilation excluded): the dense "
        "network in the row form `h @ W + b` (the library's until 2026-12-02) against ours "
        "(`W.T @ h + b` with the data along the last axis), same parameters; random data "
        "of the data set's training shape.\n\n"
        + markdown_table(["case", "rows", "layers", "row form us", "ours us", "row / ours",
                          "gradient difference (relative)"], rows)
    )


# -- scaling (devices, particles, data size) ------------------------------------------------------
def _gb(nbytes: Any) -> str:
    return "-" if nbytes is None or nbytes < 0 else f"{nbytes / 1e9:.3g}"


def _rss_gb(r: dict[str, Any]) -> str:
    mark = "" if r.get("rss_isolated", True) else " *"
    return f"{r['max_rss_mb'] / 1024:.3g}{mark}"


def _side_by_side(r: dict[str, Any]) -> str:
    """Median and range of the calls made alternately with the other runs of its process."""
    runs = r.get("interleaved_runs_s")
    if not runs:
        return "-"
    return f"{statistics.median(runs):.3g} ({min(runs):.3g}-{max(runs):.3g})"


def _scaling_rows(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return [r for r in report.get("runs", []) if r.get("section") == section and "error" not in r]


def render_scaling(report: dict[str, Any]) -> str:
    runs = report.get("runs", [])
    summary = report.get("summary", {})
    cores = (report.get("machine") or {}).get("cpu_count_usable", "?")
    first = next((r for r in runs if "error" not in r), None)
    work = (
        "" if first is None else
        f" (boston unless stated: {first['num_stages']} stage(s) of {first['num_mcmc_steps']} "
        f"HMC move(s) x {first['num_integration_steps']} leapfrog steps)"
    )
    parts = [
        "Throughput: particle-gradient evaluations per second of `smc` "
        "(`SMCResult.num_gradient_evaluations` over the run time, compilation excluded) on a "
        f"fixed geometric schedule, so the work of a run is fixed{work}. Each device count runs "
        "in its own process with `XLA_FLAGS=--xla_force_host_platform_device_count=K`. "
        f"**Forced host devices on this machine share the same {cores} cores**: the device "
        "rows show that the sharded program runs and what it costs, not a speed-up. Memory: "
        "max RSS is the process's peak resident memory (`ru_maxrss`: JAX, the compiler and "
        "the data included; `*`: a second run in the same process, its peak includes the "
        "first's); 'gradient program' is XLA's memory analysis (temporary buffers) of the "
        "gradient at all particles, unchunked and with the chunks used. The machine is shared "
        "with other work: throughputs are rough.",
    ]
    dev = _scaling_rows(report, "devices")
    rel = summary.get("relative_throughput", {})
    if dev:
        rows = [
            [r["name"], r["forced_host_devices"], r["num_particles"],
             r.get("data_chunk") or "-", r.get("particle_chunk") or "-",
             f"{r['gradients_per_second']:.4g}", rel.get(r["name"], "-"), f"{r['run_s']:.3g}",
             _side_by_side(r), f"{r['compile_s']:.3g}", _rss_gb(r), f"{r['log_evidence']:.2f}"]
            for r in dev
        ]  # fmt: skip
        parts += [
            "",
            "**Devices:**",
            "",
            markdown_table(
                ["run", "forced host devices", "particles", "data_chunk", "particle_chunk",
                 "grads/s", "relative to unsharded", "run s", "run s side by side",
                 "compile s", "max RSS GB", "log Z"],
                rows,
            ),  # fmt: skip
        ]
        if "one_device_ratio" in summary:
            side = (
                " (medians of calls made alternately in one process)"
                if summary.get("one_device_ratio_from") == "interleaved_run_s" else ""
            )
            parts += [
                "",
                f"One-device overhead (run time of `devices=1` / the unsharded run{side}): "
                f"{summary['one_device_ratio']:.3f}, target <= "
                f"{summary['target_one_device_ratio']}: "
                f"{_yes(summary.get('one_device_passed'))}.",
            ]
    unsharded = next((r for r in dev if r["name"] == "unsharded"), None)
    part = _scaling_rows(report, "particles")
    if part:
        same = [unsharded] if unsharded and unsharded["dataset"] == part[0]["dataset"] else []
        rows = [
            [r["num_particles"], f"{r['gradients_per_second']:.4g}", f"{r['run_s']:.3g}",
             f"{r['compile_s']:.3g}", _rss_gb(r)]
            for r in sorted(part + same, key=lambda r: r["num_particles"])
        ]  # fmt: skip
        parts += [
            "",
            f"**Particles** ({part[0]['dataset']}, one device):",
            "",
            markdown_table(["particles", "grads/s", "run s", "compile s", "max RSS GB"], rows),
        ]
    data = _scaling_rows(report, "data") + _scaling_rows(report, "big")
    if data:
        same = [unsharded] if unsharded else []
        rows = []
        for r in sorted(same + data, key=lambda r: (r["section"] == "big", r["num_data"])):
            mem = r.get("gradient_program_memory") or {}
            rows.append([
                r["dataset"] + (" (all rows)" if r.get("rows") == "all" else ""), r["num_data"],
                r["hidden"], r["num_particles"], r.get("data_chunk") or "-",
                r.get("particle_chunk") or "-", _gb(mem.get("unchunked_temp_bytes")),
                _gb(mem.get("chunked_temp_bytes")), _rss_gb(r),
                f"{r['gradients_per_second']:.4g}", f"{r['datum_gradients_per_second']:.4g}",
                f"{r['run_s']:.3g}", f"{r['compile_s']:.3g}",
            ])  # fmt: skip
        budget = (report.get("config") or {}).get("memory_budget_gb")
        parts += [
            "",
            "**Data size** (chunks used where XLA's memory analysis puts the unchunked "
            f"gradient program above {budget} GB):",
            "",
            markdown_table(
                ["data set", "rows", "width", "particles", "data_chunk", "particle_chunk",
                 "gradient program GB, unchunked", "chunked", "max RSS GB", "grads/s",
                 "rows x grads/s", "run s", "compile s"],
                rows,
            ),  # fmt: skip
        ]
        for r in _scaling_rows(report, "big"):
            mem = r.get("gradient_program_memory") or {}
            parts += [
                "",
                f"Largest run: {r['dataset']}, all {r['num_data']:,} rows, "
                f"{r['num_particles']:,} particles ({r['dim']:,} parameters each), one stage of "
                f"{r['num_mcmc_steps']} move(s) x {r['num_integration_steps']} leapfrog "
                f"step(s), data_chunk={r.get('data_chunk')}, "
                f"particle_chunk={r.get('particle_chunk')}: wall time {r['wall_s']:.4g} s "
                f"(compile {r['compile_s']:.3g} s), peak resident memory "
                f"{r['max_rss_mb'] / 1024:.3g} GB; the unchunked gradient program alone would "
                f"need {_gb(mem.get('unchunked_temp_bytes'))} GB.",
            ]
    failed = [r for r in runs if "error" in r]
    if failed:
        parts += ["", "Failed runs: " + "; ".join(
            f"{r.get('section')}/{r.get('name')}: {str(r['error'])[:200]}" for r in failed
        ) + "."]  # fmt: skip
    return "\n".join(parts)

# -- uci ------------------------------------------------------------------------------------------
def render_uci(report: dict[str, Any]) -> str:
    """The summary tables of ``benchmarks/uci.py`` (its own functions, so the README and
    the results' markdown file say the same); the per-split rows stay in that file."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import uci

    names = list(report.get("aggregate", {}))
    keys = report.get("candidates") or []
    parts = [*uci.describe(report, keys), "", *uci.summary_tables(report, names, keys, level=4)]
    words = _command(report).split()
    if "--md" in words[:-1]:
        parts += ["", f"Per-split rows and every command run: `{words[words.index('--md') + 1]}`."]
    return "\n".join(parts)


def render_uci_peers(report: dict[str, Any]) -> str:
    """The tables of ``benchmarks/uci_peers.py`` (its own function): side by side with
    BlackJAX, or ours alone against the published numbers (``--no-blackjax``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import uci_peers

    return uci_peers.markdown(report)


def render_uci_budget(report: dict[str, Any]) -> str:
    """One table per data set: the budgets, their training log evidence and test metrics."""
    parts = []
    by_set: dict[str, list[dict[str, Any]]] = {}
    for r in report["rows"]:
        by_set.setdefault(f"{r['dataset']} split {r['split']}", []).append(r)
    for title, rows in by_set.items():
        best = max(r["log_evidence"] for r in rows)
        table = [
            [f"{r['particles']} x {r['moves']} x {r['integration_steps']}",
             round(r["gradient_evaluations"] / r["particles"]),
             f"**{r['log_evidence']:.1f}**" if r["log_evidence"] == best
             else f"{r['log_evidence']:.1f}",
             f"{r['test_log_likelihood']:.3f}", f"{r['test_rmse']:.3f}",
             f"{r['wall_seconds']:.1f}", f"{r['compile_seconds']:.1f}"]
            for r in rows
        ]  # fmt: skip
        parts += [f"**{title}** ({rows[0]['n_train']} training rows, prior scale "
                  f"{rows[0]['prior_scale']:g}):", "",
                  markdown_table(["particles x moves x steps", "gradients per particle",
                                  "training log evidence", "test LL", "test RMSE", "wall s",
                                  "of which compile s"], table), ""]  # fmt: skip
    parts.append("The recipe is chosen by the training log evidence (bold: the highest); the "
                 "test columns only check that choice.")
    return "\n".join(parts)


# -- the README section ---------------------------------------------------------------------------
RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "uci": ("UCI regression against the published numbers", render_uci),
    "uci_peers": ("UCI side by side: BlackJAX adaptive tempered SMC and ours",
                  render_uci_peers),
    "uci_ours": ("UCI, ours alone on more splits, against the published numbers",
                 render_uci_peers),
    "uci_budget": ("UCI: the sampler budget (particles x moves x leapfrog steps)",
                   render_uci_budget),
    "smc_vs_blackjax": ("SMC against BlackJAX", render_smc_vs_blackjax),
    "smc_network_reference": ("Reference log evidence of the README network",
                              render_smc_network_reference),
    "langevin_overhead": ("Langevin sampler overhead", render_langevin_overhead),
    "peers": ("Speed against the peers: NumPyro NUTS, BlackJAX SMC, ours", render_peers),
    "smc_overhead": ("SMC sampler overhead", render_smc_overhead),
    "layout": ("The dense network's layout: cost per gradient", render_layout),
    "scaling": ("Scaling: devices, particles, data size", render_scaling),
}
ORDER = ("uci", "uci_peers", "uci_ours", "uci_budget", "smc_vs_blackjax", "smc_network_reference",
         "langevin_overhead", "peers", "smc_overhead", "layout", "scaling")


def _command(report: dict[str, Any]) -> str:
    if report.get("command"):
        return str(report["command"])
    if report.get("benchmark") == "langevin_overhead":
        return _langevin_overhead_command(report)
    invocations = report.get("invocations")
    if isinstance(invocations, list) and invocations and isinstance(invocations[-1], dict):
        return str(invocations[-1].get("command", "not recorded"))
    return "not recorded"


def _render_other(report: dict[str, Any]) -> str:
    """A results file of a kind this script has no tables for: point at its own output."""
    words = _command(report).split()
    if "--md" in words[:-1]:
        return f"Tables: `{words[words.index('--md') + 1]}`."
    return "No tables for this kind of results file; see the JSON."


def render_section(results_dir: Path) -> str:
    """The markdown between the markers, from every ``*.json`` in ``results_dir``."""
    reports = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            print(f"warning: skipping {path.name}: {err}", file=sys.stderr)
            continue
        if isinstance(report, dict):
            reports.append((path, report))

    def rank(item: tuple[Path, dict[str, Any]]) -> tuple[int, str]:
        kind = item[1].get("benchmark", "")
        return (ORDER.index(kind) if kind in ORDER else len(ORDER), item[0].name)

    parts = [
        "_Generated by `benchmarks/make_tables.py` from `benchmarks/results/*.json`; "
        "rerun it after a benchmark instead of editing by hand._"
    ]
    kinds = [r.get("benchmark", p.stem) for p, r in reports]
    for path, report in sorted(reports, key=rank):
        kind = report.get("benchmark", path.stem)
        title, render = RENDERERS.get(kind, (f"Benchmark `{kind}`", _render_other))
        if kinds.count(kind) > 1:
            title += f" (`{path.name}`)"
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        parts += [
            "",
            f"### {title}",
            "",
            f"Produced by `{_command(report)}` (results: `{rel}`); "
            + _machine_line(report.get("machine")) + ".",
        ]
        try:
            parts += ["", render(report)]
        except (KeyError, TypeError, ValueError, IndexError) as err:
            parts += ["", f"(could not render this file: {err!r})"]
    return "\n".join(parts)


def update_readme(text: str, section: str) -> str:
    """``text`` with the marked section replaced (markers appended when missing)."""
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    if START in text or END in text:
        raise ValueError(f"README has only one of {START} / {END}, or them out of order")
    sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}{HEADING}\n\n{block}\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the README's section is out of date")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        p.error(f"no results folder {args.results}")
    if not args.readme.exists():
        p.error(f"no README at {args.readme}")
    text = args.readme.read_text(encoding="utf-8")
    try:
        new = update_readme(text, render_section(args.results))
    except ValueError as err:
        p.error(str(err))
    if args.check:
        if new != text:
            print(f"{args.readme} is out of date; run benchmarks/make_tables.py")
            return 1
        return 0
    if new != text:
        args.readme.write_text(new, encoding="utf-8")
        print(f"updated {args.readme}")
    else:
        print(f"{args.readme} already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
