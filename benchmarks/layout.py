"""The dense network's memory layout: the cost of one particle's gradient, row form against ours.

``networks.mlp`` keeps the data along the last axis inside the network (each layer computes
``W.T @ h + b`` on ``h`` of shape ``(units, n)``) and returns ``(n, d_out)`` as before. The
row form, ``h @ W + b`` on ``h`` of shape ``(n, units)``, is the same function with the
same parameters; it was the library's form until 2026-12-02. This script times both, side
by side in one process, as a jitted ``scan`` of ``vmap(grad(logdensity))`` over ``P``
particles (the SMC and HMC inner loop), on models of the UCI benchmark's shapes with
random data of those shapes (the cost does not depend on the values), and checks that the
two give the same log density and gradient.

Reported per case: microseconds per gradient per particle for each form (median of
interleaved repeats, compilation excluded) and the ratio row / ours.

Usage::

    .venv/bin/python benchmarks/layout.py [--quick] [--cases boston,concrete,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_info, write_json  # noqa: E402
from langevin_nets.activations import get_activation  # noqa: E402
from langevin_nets.model import BayesianMLP  # noqa: E402
from langevin_nets.networks import Network, mlp  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "layout.json"


@dataclass(frozen=True)
class Case:
    """One model: data rows ``n``, layer sizes, activation, prior, noise model."""

    name: str
    n: int
    layer_sizes: tuple[int, ...]
    activation: str = "relu"
    prior: str = "fan_in"
    heteroscedastic: bool = False


# The UCI protocol's shapes (training rows of a 90% split, inputs, 50 hidden units), the
# evidence-selected row's heteroscedastic candidate (25 units), and the README network.
CASES = (
    Case("readme", 50, (1, 50, 50, 1), activation="tanh", prior="normal"),
    Case("yacht", 277, (6, 50, 1)),
    Case("boston", 455, (13, 50, 1)),
    Case("boston, heteroscedastic, 25 units", 455, (13, 25, 1), heteroscedastic=True),
    Case("concrete", 927, (8, 50, 1)),
    Case("wine", 1439, (11, 50, 1)),
    Case("kin8nm", 7372, (8, 50, 1)),
)


def row_mlp(layer_sizes: tuple[int, ...], activation: str) -> Network:
    """The dense MLP in the row form ``h @ W + b``: the library's network before the change,
    with the library's ``init`` (the same parameter pytree)."""
    act = get_activation(activation)

    def apply(params: Any, X: jax.Array) -> jax.Array:
        h = X
        for W, b in params[:-1]:
            h = act(h @ W + b)
        W, b = params[-1]
        return h @ W + b

    return Network(mlp(layer_sizes, activation).init, apply)


def gradient_loop(post: Any, steps: int) -> Callable[[jax.Array], jax.Array]:
    """A jitted scan of ``steps`` vmapped gradients of the posterior's log density; the
    posterior (its data) is an argument, as in the engine."""
    grad = jax.vmap(jax.grad(lambda p, post: post.logdensity(p)), in_axes=(0, None))

    @jax.jit
    def run(positions: jax.Array, post: Any) -> jax.Array:
        def body(x: jax.Array, _: None) -> tuple[jax.Array, None]:
            return x + 1e-7 * grad(x, post), None

        return jax.lax.scan(body, positions, None, length=steps)[0]

    return lambda positions: run(positions, post)


def measure(case: Case, particles: int, steps: int, repeats: int, seed: int) -> dict[str, Any]:
    """Time the row form and ours on one case; check they agree."""
    rng = np.random.default_rng(seed)
    d_in, d_out = case.layer_sizes[0], case.layer_sizes[-1]
    X = rng.normal(size=(case.n, d_in)).astype(np.float32)
    y = rng.normal(size=(case.n, d_out)).astype(np.float32)
    kw = dict(activation=case.activation, prior=case.prior, heteroscedastic=case.heteroscedastic)
    ours = BayesianMLP(case.layer_sizes, **kw)
    sizes = (*case.layer_sizes[:-1], 2 * d_out if case.heteroscedastic else d_out)
    row = BayesianMLP(case.layer_sizes, network=row_mlp(sizes, case.activation), **kw)
    posts = {"row": row.posterior(X, y), "ours": ours.posterior(X, y)}
    positions = ours.sample_prior(jax.random.key(seed), particles)

    # The same function: log density and gradient agree to float32 rounding.
    vg = {k: jax.jit(jax.vmap(jax.value_and_grad(p.logdensity)))(positions)
          for k, p in posts.items()}  # fmt: skip
    value_err = float(jnp.max(jnp.abs(vg["row"][0] - vg["ours"][0])
                              / (1.0 + jnp.abs(vg["row"][0]))))  # fmt: skip
    grad_err = float(jnp.max(jnp.abs(vg["row"][1] - vg["ours"][1]))
                     / (1.0 + jnp.max(jnp.abs(vg["row"][1]))))  # fmt: skip

    loops = {k: gradient_loop(p, steps) for k, p in posts.items()}
    for f in loops.values():  # compile and warm up
        f(positions).block_until_ready()
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(repeats):
        for k, f in loops.items():  # interleaved: a busy moment hits both forms
            t0 = time.perf_counter()
            f(positions).block_until_ready()
            times[k].append(time.perf_counter() - t0)
    per_grad = {k: statistics.median(v) / (steps * particles) * 1e6 for k, v in times.items()}
    return {
        "name": case.name, "n": case.n, "layer_sizes": list(case.layer_sizes),
        "activation": case.activation, "heteroscedastic": case.heteroscedastic,
        "particles": particles, "steps": steps, "repeats": repeats,
        "us_per_gradient_row": per_grad["row"], "us_per_gradient_ours": per_grad["ours"],
        "row_over_ours": per_grad["row"] / per_grad["ours"],
        "max_relative_value_difference": value_err,
        "max_relative_gradient_difference": grad_err,
    }  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="the readme and boston cases, 20 gradients a call, 3 repeats")  # fmt: skip
    p.add_argument("--cases", default=None,
                   help="case names, separated by ',' (by ';' when a name holds a comma); "
                        "default: all: " + "; ".join(c.name for c in CASES))  # fmt: skip
    p.add_argument("--particles", type=int, default=32, help="particles (default 32)")
    p.add_argument("--steps", type=int, default=None, help="gradients per call (100; quick 20)")
    p.add_argument("--repeats", type=int, default=None, help="repeats (9; quick 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    names = {c.name: c for c in CASES}
    if args.cases is None:
        chosen = ["readme", "boston"] if args.quick else list(names)
    else:
        chosen = [s.strip() for s in args.cases.split(";" if ";" in args.cases else ",")]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {sorted(names)} "
                "(separate names with ';' when one holds a comma)")  # fmt: skip
    args.cases = [names[s] for s in chosen]
    for opt in ("particles", "steps", "repeats"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            p.error(f"--{opt} must be a positive integer, got {v}")
    args.steps = args.steps or (20 if args.quick else 100)
    args.repeats = args.repeats or (3 if args.quick else 9)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    for case in args.cases:
        r = measure(case, args.particles, args.steps, args.repeats, args.seed)
        print(f"{r['name']:>34}: row {r['us_per_gradient_row']:8.2f} us, ours "
              f"{r['us_per_gradient_ours']:8.2f} us per gradient -> {r['row_over_ours']:.2f}x",
              flush=True)  # fmt: skip
        rows.append(r)
    report = {
        "benchmark": "layout",
        "config": {"quick": args.quick, "particles": args.particles, "steps": args.steps,
                   "repeats": args.repeats, "seed": args.seed},  # fmt: skip
        "command": command_line("layout.py", sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "rows": rows,
    }
    print(f"wrote {write_json(report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
