"""Merge-recipe search over trained anchors against the λ-sweep, on BiasBios (head genome).

    .venv/bin/python studies/search_vs_sweep/search_vs_sweep.py --seeds 5 --json studies/search_vs_sweep/results/biasbios.json

Per seed, on the same data, selection rule (validate-non-dominated) and reference point (0.25, 0.25):
- pipeline: K anchors trained from the shared base θ₀ with CE + λ_k·(soft TPR gap), then a `merge`
  run (NSGA-II over linear merge recipes, no training); its front as selected on validate;
- sweep at equal budget: the λ-sweep as the baselines train it (8 weights, each head from its own
  noisy θ₀, every epoch a candidate) with as many training examples as the anchors cost;
- sweep at twice the budget: the same with twice the epochs.
Test HV of each, the ratios, and a paired bootstrap interval of HV(pipeline) − HV(sweep, equal) over
test examples (the models' test predictions resampled together). Budgets are training examples
(epochs × train rows × heads); the merge search itself trains nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import evofair
from evofair.core.indicators import hypervolume
from evofair.core.plugins import registry
from evofair.problems.common.baselines import train_heads

REF = (0.25, 0.25)
ANCHOR_LAMBDAS = [0.0, 2.0, 8.0, 32.0]
SWEEP_LAMBDAS = [0.1, 0.3, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices of the rows no other row dominates (minimised)."""
    keep = [i for i in range(len(F)) if not any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(len(F)))]
    return np.asarray(keep, dtype=int)


def objectives(problem, P: np.ndarray, split: str) -> np.ndarray:
    m = problem.metrics_of_predictions(P, split)
    return np.column_stack([m["error"], m["dtpr"]])


def sweep(problem, seed: int, epochs: int) -> np.ndarray:
    """Test predictions of the validate-non-dominated candidates of a λ-sweep (every epoch a candidate)."""
    P = {"val": [], "test": []}

    def on_epoch(epoch, heads):
        for split in P:
            P[split].append(problem.head_predictions(heads, split))

    inits = [problem.head_init_weights(seed * 1000 + k) for k in range(len(SWEEP_LAMBDAS))]
    train_heads(
        problem,
        inits,
        SWEEP_LAMBDAS,
        [seed * 1000 + k for k in range(len(SWEEP_LAMBDAS))],
        epochs=epochs,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.01,
        on_epoch=on_epoch,
    )
    val, test = np.concatenate(P["val"]), np.concatenate(P["test"])
    return test[nondominated(objectives(problem, val, "val"))]


def pipeline(seed: int, args, out: Path):
    """The merge run; returns (its problem, the test predictions of its validate-selected front)."""
    recipe = {
        "name": f"merge-seed{seed}",
        "seed": seed,
        "problem": {
            "name": "merge",
            "args": {
                "inner": {"name": "biasbios"},
                "train_anchors": {"lambdas": args.lambdas, "epochs": args.epochs, "seed": seed},
                "method": args.method,
                "scale_max": args.scale_max,
                "selection": args.selection,
                "threshold": args.threshold,
            },
        },
        "algorithm": {"pop_size": args.pop, "generations": args.gens},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": list(REF),
    }
    result = evofair.run(recipe, out, progress=False)
    problem = result.problem
    X = np.array([ind.x for ind in result.front])
    return problem, problem.predictions(problem.anchors, X, "test")


def paired_interval(problem, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """90% percentile interval of HV(a) − HV(b) over test examples resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        diffs.append(hypervolume(_resampled(problem, a, idx), REF) - hypervolume(_resampled(problem, b, idx), REF))
    return float(np.percentile(diffs, 5)), float(np.percentile(diffs, 95))


def _resampled(problem, P: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from evofair.analysis.metrics import fairness_metrics

    data = problem.splits["test"]
    m = fairness_metrics(
        P[:, idx],
        np.asarray(data.y)[idx],
        np.asarray(data.g)[idx],
        classes=np.arange(problem.n_classes),
        pos_label=problem.pos_label,
    )
    return np.column_stack([m["error"], m["dtpr"]])


def one_seed(seed: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        problem, front = pipeline(seed, args, Path(tmp) / "run")
    inner = problem.inner
    n_train = len(inner.splits["train"])
    budget = problem.training_examples  # every anchor trained, per fold too under cross-fitting
    equal_epochs = max(1, round(budget / (len(SWEEP_LAMBDAS) * n_train)))
    equal, double = sweep(inner, seed, equal_epochs), sweep(inner, seed, 2 * equal_epochs)
    hv = {
        k: hypervolume(objectives(inner, P, "test"), REF)
        for k, P in (("pipeline", front), ("equal", equal), ("double", double))
    }
    lo, hi = paired_interval(inner, front, equal, args.n_boot, seed)
    return {
        "task": "biasbios_head",
        "seed": seed,
        "hv_pipeline": hv["pipeline"],
        "hv_sweep_equal": hv["equal"],
        "hv_sweep_double": hv["double"],
        "ratio_equal": hv["pipeline"] / hv["equal"] if hv["equal"] else None,
        "ratio_double": hv["pipeline"] / hv["double"] if hv["double"] else None,
        "diff_lo": lo,
        "diff_hi": hi,
        "budget_pipeline": budget,
        "budget_sweep_equal": equal_epochs * len(SWEEP_LAMBDAS) * n_train,
        "n_front": len(front),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30, help="epochs per anchor")
    ap.add_argument("--pop", type=int, default=16)
    ap.add_argument("--gens", type=int, default=8)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--method", default="linear", help="merge method (problem.args.method)")
    ap.add_argument("--scale-max", type=float, default=1.0)
    ap.add_argument("--selection", default="validate", choices=["validate", "cross_fit"])
    ap.add_argument("--threshold", default="off", choices=["off", "global", "per_group"])
    ap.add_argument("--lambdas", type=float, nargs="+", default=ANCHOR_LAMBDAS, help="the anchors' fairness weights")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    registry("problem").get("merge")  # fail early if the family is not installed
    rows = []
    print(f"{'seed':>4} {'pipeline':>9} {'sweep=':>9} {'sweep×2':>9} {'ratio=':>7} {'ratio×2':>7}  90% diff vs sweep=")
    for seed in range(1, args.seeds + 1):
        r = one_seed(seed, args)
        rows.append(r)
        print(
            f"{seed:>4} {r['hv_pipeline']:>9.5f} {r['hv_sweep_equal']:>9.5f} {r['hv_sweep_double']:>9.5f} "
            f"{r['ratio_equal']:>7.3f} {r['ratio_double']:>7.3f}  [{r['diff_lo']:+.5f}, {r['diff_hi']:+.5f}]",
            flush=True,
        )
    print(
        f"mean ratio at equal budget {np.mean([r['ratio_equal'] for r in rows]):.3f}, "
        f"at twice the budget {np.mean([r['ratio_double'] for r in rows]):.3f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
