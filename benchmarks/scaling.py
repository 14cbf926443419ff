"""How the SMC sampler scales: devices, particles and data size, with peak memory.

Throughput is particle-gradient evaluations per second of ``smc(...)``
(``SMCResult.num_gradient_evaluations`` over the run time, compilation excluded) on a fixed
geometric schedule with a fixed number of moves and leapfrog steps, so that the work of a
run is fixed whatever happens inside it. Three sweeps and one large run:

* **devices**: 1, 2 and 4 devices. Each device count runs in its own process with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=K`` and ``smc(..., devices=K)``; the
  one-device process also runs ``smc`` without a device choice (the unsharded program),
  and the ratio of the two is the overhead of asking for one device. Forced host devices
  share the machine's cores: this shows that the sharded program runs and what it costs,
  not a speed-up.
* **particles**: 256 to 16384 particles on one device.
* **data**: data sets from boston (455 training rows) to protein (41,157). When XLA's
  memory analysis of the gradient program says the unchunked run would need more than
  ``--memory-budget-gb``, the run uses ``data_chunk`` and ``particle_chunk``.
* **big**: all 45,730 protein rows with 10,000 particles, one stage of few moves, chunked:
  its wall time and peak memory.

Every run is a separate process (its peak resident memory, ``ru_maxrss``, is its own; the
one-device process of the device sweep holds two runs, the second's peak includes the
first's). The program's own temporary memory comes from
``jax.jit(...).lower(...).compile().memory_analysis()`` of the gradient over all particles
(the moves' main cost), for the unchunked and the chunked posterior.

Usage::

    nice .venv/bin/python benchmarks/scaling.py            # full run, < 15 min on 2 cores
    .venv/bin/python benchmarks/scaling.py --quick         # smoke run, < 1 min

Writes ``benchmarks/results/scaling.json`` and ``benchmarks/results/scaling.png``; the
README table comes from ``benchmarks/make_tables.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT_TAG = "SCALING-RESULT "
#: The model of the UCI protocol: one hidden layer (width from the data set's
#: ``n_hidden.txt``), ReLU, Neal's fan-in prior.
ACTIVATION = "relu"
PRIOR = "fan_in"


# -- the runs -------------------------------------------------------------------------------
def base_point(quick: bool) -> dict[str, Any]:
    """The settings every point starts from (boston, one device, a fixed schedule)."""
    return {
        "section": "",
        "name": "",
        "dataset": "boston",
        "rows": "train",  # split 0's training rows; "all": every row of the data set
        "num_particles": 64 if quick else 1024,
        "num_stages": 1 if quick else 2,
        "num_mcmc_steps": 1,
        "num_integration_steps": 2 if quick else 5,
        "devices": None,  # None: smc without a device choice
        "forced_host_devices": 1,
        "data_chunk": None,
        "particle_chunk": None,
        "auto_chunk": False,  # choose the chunks from the memory analysis
        "memory_analysis": not quick,
        "seed": 0,
    }


def plan(args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """The runs, grouped by process: each inner list runs in one subprocess, in order."""
    base = base_point(args.quick)
    groups: list[list[dict[str, Any]]] = []

    def point(**kw: Any) -> dict[str, Any]:
        return {**base, **kw}

    sections = set(args.sections)
    if args.quick:
        # Two processes, one compilation each: the unsharded program, and the sharded one
        # with both kinds of chunks (every code path of the full run, at toy sizes).
        if "devices" in sections:
            groups.append([point(section="devices", name="unsharded", devices=None)])
            groups.append([
                point(section="devices", name="2 devices, chunked", devices=2,
                      forced_host_devices=2, data_chunk=128, particle_chunk=16,
                      memory_analysis=True)
            ])  # fmt: skip
        return groups

    if "devices" in sections:
        groups.append([
            point(section="devices", name="unsharded", devices=None),
            point(section="devices", name="devices=1", devices=1),
        ])  # fmt: skip
        for k in (2, 4):
            groups.append(
                [point(section="devices", name=f"{k} devices", devices=k, forced_host_devices=k)]
            )
    if "particles" in sections:
        # 1024 particles is the device sweep's unsharded run (the same settings).
        for n in args.particles:
            if n == base["num_particles"] and "devices" in sections:
                continue
            groups.append([point(section="particles", name=f"N={n}", num_particles=n)])
    if "data" in sections:
        for name in args.datasets:
            if name == base["dataset"] and "devices" in sections:
                continue  # the device sweep's unsharded run
            groups.append([
                point(section="data", name=name, dataset=name,
                      num_particles=args.data_particles, auto_chunk=True)
            ])  # fmt: skip
    if "big" in sections:
        groups.append([
            point(section="big", name=f"protein, all rows, N={args.big_particles}",
                  dataset="protein", rows="all", num_particles=args.big_particles,
                  num_stages=1, num_mcmc_steps=args.big_moves,
                  num_integration_steps=args.big_steps, auto_chunk=True)
        ])  # fmt: skip
    return groups


# -- the worker (one subprocess) --------------------------------------------------------------
def _max_rss_mb() -> float:
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(dataset: str, rows: str, data_dir: str | None) -> tuple[Any, Any, int]:
    import numpy as np

    from langevin_nets.datasets import Standardizer, load_uci

    split = load_uci(dataset, 0, data_dir)
    X, y = split.X_train, split.y_train
    if rows == "all":
        X = np.concatenate([split.X_train, split.X_test])
        y = np.concatenate([split.y_train, split.y_test])
    # Standardised as in the protocol; a constant feature keeps scale 1.
    return Standardizer.fit(X).transform(X), Standardizer.fit(y).transform(y), split.n_hidden


def gradient_program_temp_bytes(post: Any, num_particles: int, particle_chunk: int | None) -> int:
    """XLA's temporary memory for the gradient of the log density at ``num_particles``
    particles (``lax.map`` over ``particle_chunk`` of them at a time, as ``smc`` does), from
    the compiled program's memory analysis. Nothing is allocated: the particles are abstract.
    """
    import jax
    import jax.numpy as jnp

    theta = jax.ShapeDtypeStruct((num_particles, post.dim), jnp.result_type(float))

    def grads(p: Any, th: Any) -> Any:
        g = jax.grad(p.logdensity)
        if particle_chunk is None or particle_chunk >= num_particles:
            return jax.vmap(g)(th)
        return jax.lax.map(g, th, batch_size=particle_chunk)

    analysis = jax.jit(grads).lower(post, theta).compile().memory_analysis()
    return -1 if analysis is None else int(analysis.temp_size_in_bytes)


def run_point(spec: dict[str, Any], cfg: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """One ``smc`` run as the spec says; returns the row of the results and a function
    that runs it again (compiled)."""
    import jax

    sys.path.insert(0, str(HERE))
    from common import timed_call
    from langevin_nets import BayesianMLP
    from langevin_nets.smc import smc

    X, y, hidden = _load(spec["dataset"], spec["rows"], cfg.get("data_dir"))
    model = BayesianMLP((X.shape[1], hidden, 1), activation=ACTIVATION, prior=PRIOR)
    post = model.posterior(X, y)
    N = spec["num_particles"]
    row: dict[str, Any] = {
        **spec,
        "num_data": int(X.shape[0]),
        "num_features": int(X.shape[1]),
        "hidden": int(hidden),
        "dim": int(model.dim),
        "jax_devices": len(jax.devices()),
    }

    # Memory analysis first (compiling only): it decides the chunks of an auto_chunk run.
    budget = cfg["memory_budget_gb"] * 1e9
    memory: dict[str, Any] = {}
    if spec["memory_analysis"] or spec["auto_chunk"]:
        memory["unchunked_temp_bytes"] = gradient_program_temp_bytes(post, N, None)
        if spec["auto_chunk"] and memory["unchunked_temp_bytes"] > budget:
            spec = {**spec, "data_chunk": cfg["data_chunk"]}
            spec["particle_chunk"] = cfg["particle_chunk"] if N > cfg["particle_chunk"] else None
            row.update(data_chunk=spec["data_chunk"], particle_chunk=spec["particle_chunk"])
        if spec["data_chunk"] is not None or spec["particle_chunk"] is not None:
            chunked = post.with_data_chunk(spec["data_chunk"])
            memory["chunked_temp_bytes"] = gradient_program_temp_bytes(
                chunked, N, spec["particle_chunk"]
            )
    row["gradient_program_memory"] = memory or None

    kwargs: dict[str, Any] = {
        "num_particles": N,
        "schedule": "geometric",
        "num_stages": spec["num_stages"],
        "max_stages": spec["num_stages"],
        "num_mcmc_steps": spec["num_mcmc_steps"],
        "num_integration_steps": spec["num_integration_steps"],
    }
    for name in ("devices", "data_chunk", "particle_chunk"):
        if spec[name] is not None:
            kwargs[name] = spec[name]
    key = jax.random.PRNGKey(spec["seed"])

    def call() -> Any:
        return smc(post, key, **kwargs)

    row["rss_before_run_mb"] = _max_rss_mb()
    first = timed_call(call)
    result = first.pop("result")
    runs = [first["run_s"]]
    timing = "first call minus jax-reported compile time"
    if first["run_s"] < cfg["min_seconds"] and cfg["repeats"] > 0:
        # A short run: time it again, compiled, and take the median.
        runs = []
        for _ in range(cfg["repeats"]):
            t = timed_call(call)
            runs.append(t["wall_s"])
        timing = f"median of {len(runs)} calls after the compiling one"
    run_s = statistics.median(runs)
    grads = int(result.num_gradient_evaluations)
    row.update(
        wall_s=first["wall_s"],
        compile_s=first["compile_s"],
        run_s=run_s,
        runs_s=runs,
        timing=timing,
        gradient_evaluations=grads,
        gradients_per_second=grads / run_s,
        datum_gradients_per_second=grads * row["num_data"] / run_s,
        num_stages_run=int(result.num_stages),
        log_evidence=float(result.log_evidence),
        finite=bool(jax.numpy.isfinite(result.log_evidence))
        and bool(jax.numpy.all(jax.numpy.isfinite(result.particles))),
        max_rss_mb=_max_rss_mb(),
    )
    return row, call


def worker(specs: list[dict[str, Any]], cfg: dict[str, Any]) -> int:
    """Run the specs of one process in order. With two or more and ``cfg["interleave"]``
    rounds, time them once more alternately, compiled: their ratio then compares runs
    made side by side, under the same load."""
    import jax

    rows, calls = [], []
    for spec in specs:
        try:
            row, call = run_point(spec, cfg)
        except Exception as err:  # reported in the results, the next run goes on
            row, call = {**spec, "error": f"{type(err).__name__}: {err}"}, None
        rows.append(row)
        calls.append(call)
    live = [(row, call) for row, call in zip(rows, calls, strict=True) if call is not None]
    if len(live) >= 2 and cfg.get("interleave", 0) > 0:
        for row, _ in live:
            row["interleaved_runs_s"] = []
        for _ in range(cfg["interleave"]):
            for row, call in live:
                t0 = time.perf_counter()
                jax.block_until_ready(call())
                row["interleaved_runs_s"].append(time.perf_counter() - t0)
        for row, _ in live:
            row["interleaved_run_s"] = statistics.median(row["interleaved_runs_s"])
    for row in rows:
        print(RESULT_TAG + json.dumps(row), flush=True)
    return 0


# -- the orchestrator ---------------------------------------------------------------------------
def run_group(specs: list[dict[str, Any]], cfg: dict[str, Any], timeout: float) -> list[dict]:
    """Run ``specs`` in one fresh process with the forced host device count they share."""
    k = specs[0]["forced_host_devices"]
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={k}"])
    env.setdefault("JAX_PLATFORMS", "cpu")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
           json.dumps({"specs": specs, "cfg": cfg})]  # fmt: skip
    names = ", ".join(s["name"] for s in specs)
    print(f"[{specs[0]['section']}] {names} (forced host devices: {k}) ...", file=sys.stderr,
          flush=True)  # fmt: skip
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {timeout:.0f} s", -1
    rows = [json.loads(line[len(RESULT_TAG):]) for line in out.splitlines()
            if line.startswith(RESULT_TAG)]  # fmt: skip
    done = {r["name"] for r in rows}
    for s in specs:
        if s["name"] not in done:
            rows.append({**s, "error": f"process exited with {rc}: {err.strip()[-2000:]}"})
    for r in rows:
        r["rss_isolated"] = r["name"] == specs[0]["name"]
        r["process_wall_s"] = time.perf_counter() - t0
        r["forced_host_devices"] = k
        msg = r.get("error") or (
            f"{r['gradients_per_second']:.4g} grads/s, run {r['run_s']:.3g} s, "
            f"compile {r['compile_s']:.3g} s, max RSS {r['max_rss_mb']:.0f} MB"
        )
        print(f"    {r['name']}: {msg}", file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios between runs: the one-device overhead and each device count's throughput
    relative to the unsharded run."""
    ok = {(r["section"], r["name"]): r for r in rows if "error" not in r}
    unsharded = ok.get(("devices", "unsharded"))
    out: dict[str, Any] = {"target_one_device_ratio": 1.05}
    if unsharded:
        one = ok.get(("devices", "devices=1"))
        if one:
            # Prefer the side-by-side (interleaved) timings of the two.
            key = "interleaved_run_s" if "interleaved_run_s" in one else "run_s"
            ratio = one[key] / unsharded[key]
            out["one_device_ratio"] = ratio
            out["one_device_ratio_from"] = key
            out["one_device_passed"] = ratio <= out["target_one_device_ratio"]
        out["relative_throughput"] = {
            r["name"]: r["gradients_per_second"] / unsharded["gradients_per_second"]
            for r in rows
            if r["section"] == "devices" and "error" not in r
        }
    return out


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Throughput against devices, particles and data size; memory against data size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["runs"] if "error" not in r]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))

    dev = [r for r in rows if r["section"] == "devices"]
    ax = axes[0]
    if dev:
        labels = [r["name"] for r in dev]
        ax.bar(range(len(dev)), [r["gradients_per_second"] for r in dev], color="C0")
        ax.set_xticks(range(len(dev)), labels, rotation=20)
    ax.set_ylabel("particle-gradient evaluations / s")
    ax.set_title("devices (forced host devices share the cores)")

    ax = axes[1]
    base = next((r for r in dev if r["name"] == "unsharded"), None)
    parts = sorted([r for r in rows if r["section"] == "particles"]
                   + ([base] if base else []), key=lambda r: r["num_particles"])  # fmt: skip
    if parts:
        ax.plot([r["num_particles"] for r in parts], [r["gradients_per_second"] for r in parts],
                "o-", color="C1")  # fmt: skip
        ax.set_xscale("log", base=2)
    ax.set_xlabel("particles")
    ax.set_ylabel("particle-gradient evaluations / s")
    ax.set_title(f"particles ({parts[0]['dataset'] if parts else ''})")

    ax = axes[2]
    data = sorted([r for r in rows if r["section"] in ("data", "big")]
                  + ([base] if base else []), key=lambda r: r["num_data"])  # fmt: skip
    if data:
        ax.plot([r["num_data"] for r in data], [r["datum_gradients_per_second"] for r in data],
                "o-", color="C2", label="datum-gradients / s")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.plot([r["num_data"] for r in data], [r["max_rss_mb"] / 1024 for r in data], "s--",
                 color="C3", label="max RSS (GiB)")  # fmt: skip
        ax2.set_ylabel("max RSS (GiB)")
        for r in data:
            ax.annotate(f"N={r['num_particles']}", (r["num_data"], r["datum_gradients_per_second"]),
                        fontsize=7, textcoords="offset points", xytext=(3, 3))  # fmt: skip
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower left")
    ax.set_xlabel("training rows")
    ax.set_ylabel("particle-gradients x rows / s")
    ax.set_title("data size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


SECTIONS = ("devices", "particles", "data", "big")


def _sections(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {bad or text!r}; choose from {', '.join(SECTIONS)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run at toy sizes (< 1 min)")
    p.add_argument("--sections", type=_sections, default=list(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--particles", type=_int_list, default=[256, 1024, 4096, 16384],
                   help="particle counts of the particle sweep (boston)")
    p.add_argument("--datasets", default="boston,concrete,power,protein",
                   help="data sets of the data-size sweep, in shared/data/uci")
    p.add_argument("--data-particles", type=int, default=128,
                   help="particles of the data-size sweep")
    p.add_argument("--big-particles", type=int, default=10_000)
    p.add_argument("--big-moves", type=int, default=1, help="moves of the big run's one stage")
    p.add_argument("--big-steps", type=int, default=1, help="leapfrog steps per move there")
    p.add_argument("--memory-budget-gb", type=float, default=4.0,
                   help="chunk a data-size run when the unchunked gradient program needs more")
    p.add_argument("--data-chunk", type=int, default=1024, help="rows per chunk when chunking")
    p.add_argument("--particle-chunk", type=int, default=256,
                   help="particles per chunk when chunking")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed calls of a run shorter than --min-seconds")
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--interleave", type=int, default=5,
                   help="alternating timed calls of the runs sharing a process (the "
                        "unsharded and devices=1 runs), for their ratio")
    p.add_argument("--jobs", type=int, default=None,
                   help="processes at a time (default 1; 2 with --quick, whose times mean "
                        "nothing anyway)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    p.add_argument("--data-dir", default=None, help="the UCI folder (default: found)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "scaling.json")
    p.add_argument("--plot", type=Path, default=None,
                   help="the figure (default: the --out path with .png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for name in ("data_particles", "big_particles", "data_chunk", "particle_chunk"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.big_moves < 0 or args.big_steps < 1:
        p.error("--big-moves must be >= 0 and --big-steps >= 1")
    if args.jobs is None:
        args.jobs = 2 if args.quick else 1
    if args.quick:
        args.repeats = min(args.repeats, 1)
        args.interleave = min(args.interleave, 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        payload = json.loads(args.worker)
        return worker(payload["specs"], payload["cfg"])

    sys.path.insert(0, str(HERE))
    from common import machine_info, write_json

    if args.data_dir is None:
        from langevin_nets.datasets import find_uci_dir

        args.data_dir = str(find_uci_dir())
    cfg = {
        "memory_budget_gb": args.memory_budget_gb,
        "data_chunk": args.data_chunk,
        "particle_chunk": args.particle_chunk,
        "repeats": args.repeats,
        "min_seconds": args.min_seconds,
        "interleave": args.interleave,
        "data_dir": args.data_dir,
    }
    groups = plan(args)
    machine = machine_info()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(lambda g: run_group(g, cfg, args.timeout), groups))
    rows = [r for group in done for r in group]
    report = {
        "benchmark": "scaling",
        "command": " ".join(
            [".venv/bin/python benchmarks/scaling.py", *map(shlex.quote, argv or sys.argv[1:])]
        ),
        "machine": machine,
        "config": {
            "quick": args.quick,
            "sections": args.sections,
            "model": f"one hidden layer (n_hidden of the data set), {ACTIVATION}, {PRIOR} prior, "
            "learned noise",
            "schedule": "geometric, fixed number of stages; HMC moves with a fixed number of "
            "leapfrog steps (step size adapted: it does not change the work)",
            "throughput": "SMCResult.num_gradient_evaluations / run time (one particle, one "
            "gradient); the reweighting's log-likelihood evaluations are not counted",
            **{k: v for k, v in cfg.items() if k != "data_dir"},
            "jobs": args.jobs,
        },
        "runs": rows,
        "summary": summarise(rows),
        "total_wall_s": time.perf_counter() - t0,
        "load_average_after": machine_info()["load_average_1_5_15min"],
    }
    path = write_json(report, args.out)
    if not args.no_plot:
        fig = plot(report, args.plot or args.out.with_suffix(".png"))
        print(f"wrote {fig}")
    try:
        from make_tables import render_scaling

        print(render_scaling(report))
    except ImportError:
        pass
    print(f"wrote {path}")
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"error in {r['section']}/{r['name']}: {r['error'][-500:]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
