"""Langevin overhead: ``langevin(...)`` against a bare ``vmap(grad)`` scan.

Both do the same number of gradient evaluations of the same posterior; the ratio of
their wall times is the sampler's overhead per gradient evaluation (target <= 1.15).

The baseline is a ``jax.lax.scan`` whose body evaluates ``vmap(grad(logdensity))`` at
the carried positions and moves them by ``scale * grad`` (so nothing is dead code).
``langevin`` does one gradient evaluation at the start and one per step, so the
baseline does one evaluation before its scan as well.

Two more loops are timed to say where the overhead goes (``breakdown``):

* ``grad_noise``: the baseline plus one N(0, I) draw per chain and step, drawn the way
  the BAOAB kernel draws its noise (per-step key, split per chain) -- the least extra
  work any Langevin step has to do;
* ``kernel``: a scan over the vmapped BAOAB ``step`` alone, without ``langevin``'s
  recording, counters and post-processing.

Timing: every loop is called once first (compilation, reported separately), then the
loops are called ``--repeats`` times, interleaved, each call waited for with
``block_until_ready``; the medians are reported. Compile time is measured from jax's
own compile events, so a callee that compiles inside every call (as ``langevin`` does
when it cannot reuse a compiled sampler) is timed without it; its per-call compile time
and the end-to-end call time are reported too.

On CPU most of a Langevin step's extra cost is its N(0, I) draw: jax lowers the threefry
hash there as a 5-trip loop. ``--threefry-unrolled`` (diagnostic, patches a private jax
lowering rule) lowers it unrolled as on GPU: the same random bits, so the same samples.

Usage::

    .venv/bin/python benchmarks/langevin_overhead.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import langevin_nets.kernels.baoab as baoab  # noqa: E402
from common import machine_info, markdown_table, timed_call, write_json  # noqa: E402
from langevin_nets import BayesianMLP, Posterior, langevin  # noqa: E402

TARGET_RATIO = 1.15
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "langevin_overhead.json"
# Baseline moves: small enough that positions stay where they started (the gradient's
# cost does not depend on where it is taken), not zero so XLA cannot drop the work.
UPDATE_SCALE = 1e-8
FRICTION = 1.0


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    name: str
    data: str
    layer_sizes: tuple[int, ...]
    num_chains: int
    step_size: float


CASES = (
    Case("readme-c1", "readme", (1, 50, 50, 1), 1, 1e-4),
    Case("readme-c8", "readme", (1, 50, 50, 1), 8, 1e-4),
    Case("boston-c1", "boston", (13, 50, 1), 1, 1e-4),
    Case("boston-c8", "boston", (13, 50, 1), 8, 1e-4),
)


def readme_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The README's 1-D regression problem: 50 points on [0, 1]."""
    rng = np.random.default_rng(seed)
    X = np.linspace(0.0, 1.0, 50)[:, None]
    y = 4 * np.sin(X - 2) + np.sin(8 * X - 2) - 4 * X**2 + 0.5 * rng.standard_normal(X.shape)
    return X, y


def boston_sized_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random data the size of the Boston housing training split (455 x 13), standardised."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((455, 13))
    w = rng.standard_normal((13, 1)) / np.sqrt(13)
    y = np.tanh(X @ w) + 0.3 * (X[:, :1] * X[:, 1:2]) + 0.3 * rng.standard_normal((455, 1))
    y = (y - y.mean()) / y.std()
    return X, y


def use_unrolled_threefry_on_cpu() -> None:
    """Lower threefry on CPU as jax does on GPU: unrolled, instead of a 5-trip loop.

    Same bits (the hash is the same function), so samples are unchanged; only speed
    and compile time change. Diagnostic only: it patches a private jax lowering rule.
    """
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as tf
    except ImportError as e:  # jax moved its internals
        raise SystemExit(f"--threefry-unrolled is not supported by this jax: {e}") from e
    mlir.register_lowering(tf.threefry2x32_p, tf._threefry2x32_lowering_rule, platform="cpu")


def make_posterior(case: Case, seed: int) -> Posterior:
    X, y = readme_data(seed) if case.data == "readme" else boston_sized_data(seed)
    model = BayesianMLP(case.layer_sizes, activation="tanh")
    return model.posterior(X, y)


def initial_positions(post: Posterior, num_chains: int, seed: int) -> jax.Array:
    """Prior draws, ``(dim,)`` for one chain, ``(num_chains, dim)`` otherwise."""
    x = post.sample_prior(jax.random.PRNGKey(seed + 1), num_chains)
    return x[0] if num_chains == 1 else x


# -- the timed loops ---------------------------------------------------------------------
def build_loops(
    post: Posterior, case: Case, steps: int, key: jax.Array, x0: jax.Array
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per timed loop; each does ``chains * (steps + 1)``
    gradient evaluations."""
    chains = case.num_chains
    xs = jnp.broadcast_to(x0, (chains, post.dim))
    grad = jax.vmap(jax.grad(post.logdensity))

    @jax.jit
    def baseline(x: jax.Array) -> jax.Array:
        def body(x, _):
            return x + UPDATE_SCALE * grad(x), None

        x = x + UPDATE_SCALE * grad(x)
        return jax.lax.scan(body, x, None, length=steps)[0]

    def chain_normals(k: jax.Array) -> jax.Array:
        # As the kernel draws its noise: one key per step, split per chain.
        keys = jax.random.split(k, chains)
        return jax.vmap(lambda kk: jax.random.normal(kk, (post.dim,), xs.dtype))(keys)

    @jax.jit
    def grad_noise(key: jax.Array, x: jax.Array) -> jax.Array:
        def body(x, k):
            q = x + UPDATE_SCALE * chain_normals(k)
            return q + UPDATE_SCALE * grad(q), None

        x = x + UPDATE_SCALE * grad(x)
        return jax.lax.scan(body, x, jax.random.split(key, steps))[0]

    @jax.jit
    def kernel(key: jax.Array, x: jax.Array) -> jax.Array:
        step = jax.vmap(lambda k, s: baoab.step(k, s, post.logdensity, case.step_size, FRICTION))

        def body(s, k):
            s, _ = step(jax.random.split(k, chains), s)
            return s, None

        state = jax.vmap(lambda q: baoab.init(q, post.logdensity))(x)
        return jax.lax.scan(body, state, jax.random.split(key, steps))[0].position

    def run_langevin() -> Any:
        return langevin(
            post.logdensity, key, x0, steps, step_size=case.step_size, friction=FRICTION,
            num_chains=chains,
        )  # fmt: skip

    return {
        "baseline": lambda: baseline(xs),
        "grad_noise": lambda: grad_noise(key, xs),
        "kernel": lambda: kernel(key, xs),
        "langevin": run_langevin,
    }


def run_case(case: Case, steps: int, repeats: int, seed: int) -> dict[str, Any]:
    post = make_posterior(case, seed)
    x0 = initial_positions(post, case.num_chains, seed)
    key = jax.random.PRNGKey(seed)
    loops = build_loops(post, case, steps, key, x0)
    names = list(loops)

    first = {name: timed_call(loops[name]) for name in names}
    evals = case.num_chains * (steps + 1)
    trace = first["langevin"].pop("result")
    if trace.num_gradient_evaluations != evals:
        raise RuntimeError(
            f"langevin reports {trace.num_gradient_evaluations} gradient evaluations, "
            f"the baseline does {evals}"
        )
    if not bool(jnp.all(jnp.isfinite(trace.positions))):
        raise RuntimeError(f"{case.name}: langevin produced non-finite positions")
    del trace
    for out in first.values():
        out.pop("result", None)

    samples: dict[str, dict[str, list[float]]] = {
        n: {"wall_s": [], "run_s": [], "compile_s": [], "cpu_s": []} for n in names
    }
    for r in range(repeats):
        # Rotate the order so no loop always runs right after the same other one.
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            out = timed_call(loops[name])
            del out["result"]  # free the samples before the next call
            for field in samples[name]:
                samples[name][field].append(out[field])

    med = {n: {f: statistics.median(v) for f, v in s.items()} for n, s in samples.items()}
    base_s = med["baseline"]["run_s"]
    lang_s = med["langevin"]["run_s"]
    ratio = lang_s / base_s
    return {
        "name": case.name,
        "data": case.data,
        "num_data": post.num_data,
        "layer_sizes": list(case.layer_sizes),
        "dim": post.dim,
        "num_chains": case.num_chains,
        "steps": steps,
        "step_size": case.step_size,
        "gradient_evaluations": evals,
        "baseline_seconds": base_s,
        "langevin_seconds": lang_s,
        "baseline_evals_per_second": evals / base_s,
        "langevin_evals_per_second": evals / lang_s,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "passed": bool(ratio <= TARGET_RATIO),
        "compile": {
            "baseline_first_call_s": first["baseline"]["compile_s"],
            "langevin_first_call_s": first["langevin"]["compile_s"],
            "langevin_per_call_s": med["langevin"]["compile_s"],
            "langevin_recompiles_every_call": bool(min(samples["langevin"]["compile_s"]) > 0),
        },
        "langevin_call_seconds": med["langevin"]["wall_s"],
        "ratio_end_to_end": med["langevin"]["wall_s"] / base_s,
        "breakdown": {
            "grad_noise_seconds": med["grad_noise"]["run_s"],
            "kernel_seconds": med["kernel"]["run_s"],
            "ratio_grad_noise_to_baseline": med["grad_noise"]["run_s"] / base_s,
            "ratio_kernel_to_baseline": med["kernel"]["run_s"] / base_s,
            "ratio_langevin_to_kernel": lang_s / med["kernel"]["run_s"],
            "ratio_langevin_to_grad_noise": lang_s / med["grad_noise"]["run_s"],
            # Process CPU time (all threads; compile time included): less sensitive than
            # wall time to other processes competing for the cores.
            "cpu_seconds": {n: med[n]["cpu_s"] for n in names},
            "ratio_cpu": med["langevin"]["cpu_s"] / med["baseline"]["cpu_s"],
        },
        "samples": samples,
    }


def summary_tables(cases: list[dict[str, Any]]) -> str:
    main = markdown_table(
        [
            "case",
            "chains",
            "dim",
            "grad evals",
            "baseline s",
            "langevin s",
            "baseline evals/s",
            "langevin evals/s",
            "ratio",
            "target",
            "pass",
        ],
        [
            [
                c["name"],
                c["num_chains"],
                c["dim"],
                c["gradient_evaluations"],
                c["baseline_seconds"],
                c["langevin_seconds"],
                c["baseline_evals_per_second"],
                c["langevin_evals_per_second"],
                c["ratio"],
                c["target_ratio"],
                "yes" if c["passed"] else "NO",
            ]
            for c in cases
        ],
    )
    detail = markdown_table(
        [
            "case",
            "grad+noise / baseline",
            "kernel / baseline",
            "langevin / kernel",
            "langevin compile s (first, per call)",
            "langevin call s (with compile)",
        ],
        [
            [
                c["name"],
                c["breakdown"]["ratio_grad_noise_to_baseline"],
                c["breakdown"]["ratio_kernel_to_baseline"],
                c["breakdown"]["ratio_langevin_to_kernel"],
                f"{c['compile']['langevin_first_call_s']:.3g}, "
                f"{c['compile']['langevin_per_call_s']:.3g}",
                c["langevin_call_seconds"],
            ]
            for c in cases
        ],
    )
    return main + "\n\n" + detail


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="500 steps, 3 repeats")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 5000)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per loop (default 5)")
    p.add_argument(
        "--cases",
        default=",".join(c.name for c in CASES),
        help="comma-separated subset of: " + ", ".join(c.name for c in CASES),
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--check", action="store_true", help="exit with status 1 if a case misses the target"
    )
    p.add_argument(
        "--threefry-unrolled",
        action="store_true",
        help="diagnostic: lower the threefry PRNG unrolled on CPU (patches private jax code; "
        "same random bits, faster noise)",
    )
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 500 if args.quick else 5000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be positive")
    known = {c.name: c for c in CASES}
    wanted = [s.strip() for s in args.cases.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in known]
    if unknown or not wanted:
        p.error(f"unknown case(s) {unknown}; choose from {list(known)}")
    args.case_list = [known[s] for s in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threefry_unrolled:
        use_unrolled_threefry_on_cpu()
    machine = machine_info()
    results = []
    for case in args.case_list:
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        results.append(run_case(case, args.steps, args.repeats, args.seed))
    report = {
        "benchmark": "langevin_overhead",
        "machine": machine,
        "config": {
            "quick": args.quick,
            "steps": args.steps,
            "repeats": args.repeats,
            "seed": args.seed,
            "thin": 1,
            "friction": FRICTION,
            "metropolis": False,
            "baseline_update_scale": UPDATE_SCALE,
            "target_ratio": TARGET_RATIO,
            "prng": str(jax.config.jax_default_prng_impl),
            "threefry_cpu_lowering": "unrolled (patched)"
            if args.threefry_unrolled
            else "jax default",
            "statistic": "median over repeats of wall time minus jax-reported compile time",
            "ratio": "langevin_seconds / baseline_seconds",
            "cases": [c.name for c in args.case_list],
        },
        "cases": results,
        "all_passed": all(c["passed"] for c in results),
        "load_average_after": machine_info()["load_average_1_5_15min"],
    }
    path = write_json(report, args.out)
    print(summary_tables(results))
    print(f"\nwrote {path}")
    return 1 if args.check and not report["all_passed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
