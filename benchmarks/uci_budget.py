"""How the UCI fit depends on the sampler budget: particles x moves x leapfrog steps.

The study behind the UCI recipe (``benchmarks/uci.py``). On one split per data set it runs
the same model (the UCI protocol's one-hidden-layer ReLU network, ``fan_in`` prior, seed +
split) with several SMC budgets ``N x M x L``: ``N`` particles, ``M`` HMC moves per stage,
``L`` leapfrog steps per move. For each it records the training log evidence, the test
log-likelihood and RMSE, the wall time and the gradient evaluations.

The recipe is chosen on the training log evidence only: an under-mixed SMC run
underestimates ``log p(y_train)``, so among budgets of similar cost the one with the highest
log evidence is the one closest to the posterior. The test columns are shown to check that
choice, never to make it.

Usage::

    nice .venv/bin/python benchmarks/uci_budget.py                  # yacht, concrete: split 0
    .venv/bin/python benchmarks/uci_budget.py --quick               # yacht, two tiny budgets
    nice .venv/bin/python benchmarks/uci_budget.py --datasets wine --budgets 64x5x20,32x5x100
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, machine_info, write_json  # noqa: E402

DEFAULT_DATASETS = ("yacht", "concrete")
#: particles x moves per stage x leapfrog steps per move. The first is the old recipe, the
#: last the current one (``langevin-nets uci``'s defaults).
DEFAULT_BUDGETS = ("64x5x20", "64x5x50", "128x10x20", "256x10x20", "64x10x50", "64x5x100",
                   "32x5x100")  # fmt: skip
QUICK = {"datasets": ("yacht",), "budgets": ("8x1x5", "8x1x20")}
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "uci_budget.json"


def parse_budget(text: str) -> tuple[int, int, int]:
    """``"NxMxL"`` -> ``(N, M, L)``: particles (>= 2), moves, leapfrog steps (>= 1)."""
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"budget {text!r}: expected particles x moves x steps, e.g. 32x5x100")
    n, moves, steps = (int(g) for g in m.groups())
    if n < 2 or moves < 1 or steps < 1:
        raise ValueError(f"budget {text!r}: needs at least 2 particles, 1 move and 1 step")
    return n, moves, steps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="yacht only, budgets " + ", ".join(QUICK["budgets"]))
    p.add_argument("--datasets", default=None,
                   help="comma-separated (default: " + ",".join(DEFAULT_DATASETS) + ")")
    p.add_argument("--split", type=int, default=0, help="the split of every data set (0)")
    p.add_argument("--budgets", default=None,
                   help="comma-separated NxMxL (default: " + ",".join(DEFAULT_BUDGETS) + ")")
    p.add_argument("--prior-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="base seed; the fit uses seed + split")
    p.add_argument("--data-dir", default=None, help="UCI folder (default: shared/data/uci)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    names = args.datasets or ",".join(QUICK["datasets"] if args.quick else DEFAULT_DATASETS)
    args.names = [s.strip() for s in names.split(",") if s.strip()]
    budgets = args.budgets or ",".join(QUICK["budgets"] if args.quick else DEFAULT_BUDGETS)
    try:
        args.budget_list = [parse_budget(b) for b in budgets.split(",") if b.strip()]
    except ValueError as e:
        p.error(str(e))
    if not args.names or not args.budget_list:
        p.error("--datasets and --budgets must not be empty")
    if args.split < 0 or not args.prior_scale > 0:
        p.error("--split must be >= 0 and --prior-scale > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uci
    from langevin_nets.datasets import find_uci_dir, load_uci

    try:
        root = find_uci_dir(args.data_dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    for name in args.names:
        try:
            X, y, Xt, yt, n_hidden = load_uci(name, args.split, root)
        except (ValueError, OSError) as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            return 2
        for n, moves, steps in args.budget_list:
            r = uci.run_fit(X, y.ravel(), Xt, yt.ravel(), n_hidden, args.prior_scale, 1.0, n,
                            moves, args.seed + args.split, steps)  # fmt: skip
            row = {"dataset": name, "split": args.split, "n_train": int(X.shape[0]),
                   "particles": n, "moves": moves, "integration_steps": steps,
                   "prior_scale": args.prior_scale, **r}  # fmt: skip
            rows.append(row)
            print(f"{name} split {args.split} {n}x{moves}x{steps}: log Z "
                  f"{r['log_evidence']:.1f}, test LL {r['test_log_likelihood']:.3f}, RMSE "
                  f"{r['test_rmse']:.3f}, {r['wall_seconds']:.1f} s", flush=True)  # fmt: skip
    report = {
        "benchmark": "uci_budget",
        "command": "nice .venv/bin/python benchmarks/uci_budget.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "config": {
            "method": uci.METHOD, "activation": uci.ACTIVATION, "prior": uci.PRIOR,
            "noise_shape": 1.0, "seed_rule": "seed + split",
            "budget": "particles x HMC moves per stage x leapfrog steps per move",
            "wall_seconds": "one fit, compilation included (compile_seconds); a fit "
                            "compiles only when its particle count is new to the run",
        },  # fmt: skip
        "rows": rows,
    }
    path = write_json(report, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
