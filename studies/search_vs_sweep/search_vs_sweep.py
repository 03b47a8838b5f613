"""Merge-recipe search (the hybrid schedule) against the λ-sweep, per task, at equal and twice the budget.

    .venv/bin/python studies/search_vs_sweep/search_vs_sweep.py --seeds 5 --json studies/search_vs_sweep/results/all.json

Per task and seed, on the same data, selection rule (validate-non-dominated; the pipeline's
validate scores are out of fold under `--selection cross_fit`) and reference point:
- pipeline: K anchors trained from the shared base θ₀ with CE + λ_k·(soft TPR gap), a `merge` run
  (NSGA-II over merge recipes, no training), then `--rounds` hybrid rounds (the front merges that
  add most validate HV fine-tuned further, joining the anchors, and a new search);
- the λ-sweep as the baselines train it (8 weights, each head from its own noisy θ₀, every epoch a
  candidate) with as many training examples as the pipeline spent, and with twice as many (one
  training run: it has no schedule, so its first half is the equal-budget sweep);
Test HV of each, ratios, a paired bootstrap 90% interval of HV(pipeline) − HV(sweep, equal) over
test examples, and the sweep's HV after every epoch against the pipeline's after every round (the
anytime curve, `--plot DIR`). Budgets are training examples.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anytime import plot_anytime  # noqa: E402
from fairpo_task import one_seed_fairpo  # noqa: E402
from selection import parse_rule  # noqa: E402
from tasks import Task, objectives, resampled_objectives, result_row, tasks  # noqa: E402

from evofair.api import run as evofair_run  # noqa: E402
from evofair.core.indicators import hypervolume  # noqa: E402
from evofair.problems.common.baselines import train_heads  # noqa: E402
from evofair.problems.merging.hybrid import refined_anchors  # noqa: E402

SWEEP_LAMBDAS = [0.1, 0.3, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices of the rows no other row dominates (minimised)."""
    keep = [i for i in range(len(F)) if not any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(len(F)))]
    return np.asarray(keep, dtype=int)


def sweep(problem, task: Task, seed: int, epochs: int, keep: dict | None = None) -> list[tuple[int, np.ndarray]]:
    """After every epoch e: (training examples so far, test predictions of the validate-selected
    candidates of epochs 1..e). `keep`, a dict, receives every epoch's predictions ("val", "test")."""
    P: dict[str, list[np.ndarray]] = {"val": [], "test": []} if keep is None else keep
    P.update({"val": [], "test": []})
    curve: list[tuple[int, np.ndarray]] = []
    per_epoch = len(SWEEP_LAMBDAS) * len(problem.splits["train"])

    def on_epoch(epoch, heads):
        for split in P:
            P[split].append(problem.head_predictions(heads, split))
        val, test = np.concatenate(P["val"]), np.concatenate(P["test"])
        curve.append((epoch * per_epoch, test[nondominated(objectives(problem, task, val, "val"))]))

    seeds = [seed * 1000 + k for k in range(len(SWEEP_LAMBDAS))]
    inits = [problem.head_init_weights(s) for s in seeds]
    train_heads(
        problem,
        inits,
        SWEEP_LAMBDAS,
        seeds,
        epochs=epochs,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.01,
        on_epoch=on_epoch,
    )
    return curve


def sweep_at_budget(problem, task: Task, seed: int, budget: int):
    """(the sweep's anytime curve up to twice `budget`, the examples of its epochs nearest `budget`,
    its front's test predictions there and at twice it)."""
    per_epoch = len(SWEEP_LAMBDAS) * len(problem.splits["train"])
    equal_epochs = max(1, round(budget / per_epoch))
    curve = sweep(problem, task, seed, 2 * equal_epochs)
    return curve, equal_epochs * per_epoch, curve[equal_epochs - 1][1], curve[-1][1]


def merge_recipe(task: Task, seed: int, args) -> dict:
    return {
        "name": f"merge-{task.name}-seed{seed}",
        "seed": seed,
        "problem": {
            "name": "merge",
            "args": {
                "inner": copy.deepcopy(task.inner),
                "train_anchors": {
                    "lambdas": args.lambdas or "auto",
                    "epochs": args.epochs,
                    "seed": seed,
                    "scalarisation": args.scalarisation,
                    "lr": args.anchor_lr,
                },
                "method": args.method,
                "blocks": args.blocks,
                "scale_max": args.scale_max,
                "selection": args.selection,
                "threshold": args.threshold,
            },
        },
        "algorithm": {"pop_size": args.pop, "generations": args.gens},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": list(task.ref),
    }


def pipeline(task: Task, seed: int, args, out: Path, on_result=None):
    """Each round's (problem, training examples, evaluations, test predictions of its validate-selected
    front); `on_result(result)` sees each round's run while its folder exists."""
    recipe, rounds, evaluations = merge_recipe(task, seed, args), [], 0
    result = None
    for k in range(args.rounds + 1):
        if result is not None:
            refined = refined_anchors(result, recipe, args.refine, max(1, args.epochs // 3))
            recipe["problem"]["args"]["train_anchors"].setdefault("refined", []).extend(refined)
        result = evofair_run(recipe, out / f"round{k}", progress=False)
        if on_result is not None:
            on_result(result)
        problem = result.problem
        evaluations += int(result.history["evaluations"].iloc[-1])
        X = np.array([result.x(i) for i in result.ids])
        P = problem.predictions(problem.anchors, X, "test")
        rounds.append((problem, problem.training_examples, evaluations, P))
    return rounds


def paired_interval(problem, task: Task, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """90% percentile interval of HV(a) − HV(b) over test examples resampled with replacement."""
    rng = np.random.default_rng(seed)
    n, diffs = a.shape[1], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        hv_a = hypervolume(resampled_objectives(problem, task, a, idx), task.ref)
        diffs.append(hv_a - hypervolume(resampled_objectives(problem, task, b, idx), task.ref))
    return float(np.percentile(diffs, 5)), float(np.percentile(diffs, 95))


def one_seed(task: Task, seed: int, args) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rounds = pipeline(task, seed, args, Path(tmp))
    seconds_pipeline = time.perf_counter() - started
    problem, budget, evaluations, front = rounds[-1]
    inner = problem.inner
    curve, budget_sweep, equal, double = sweep_at_budget(inner, task, seed, budget)

    def hv(P):
        return hypervolume(objectives(inner, task, P, "test"), task.ref)

    hv_p, hv_e, hv_d = hv(front), hv(equal), hv(double)
    lo, hi = paired_interval(inner, task, front, equal, args.n_boot, seed)
    return {
        **result_row(task.name, seed, hv_p, hv_e, hv_d, lo, hi),
        "budget_pipeline": budget,
        "budget_sweep_equal": budget_sweep,
        "evaluations_pipeline": evaluations,
        "n_front": len(front),
        "seconds_pipeline": round(seconds_pipeline, 1),
        "anytime_sweep": [[n, hv(P)] for n, P in curve],
        "anytime_pipeline": [[b, e, hv(P)] for _, b, e, P in rounds],
    }


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 1..--seeds")
    names = [*tasks(), "fairpo_yeast"]
    ap.add_argument("--tasks", nargs="+", default=names, choices=names)
    ap.add_argument("--fairpo-epochs", type=int, default=20, help="epochs of each FairPO anchor (fairpo_yeast)")
    ap.add_argument("--epochs", type=int, default=15, help="epochs per anchor (per fit under cross_fit)")
    ap.add_argument(
        "--anchor-lr", type=float, default=1e-3, help="AdamW learning rate of the anchors (the sweep's: 1e-3)"
    )
    ap.add_argument("--pop", type=int, default=32)
    ap.add_argument("--gens", type=int, default=16)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--method", default="task_arithmetic", help="merge method (problem.args.method)")
    ap.add_argument("--scale-max", type=float, default=2.0)
    ap.add_argument("--blocks", nargs="*", default=[], help="coefficients per layer block: tensor-name prefixes")
    ap.add_argument("--selection", default="cross_fit", choices=["validate", "cross_fit"])
    ap.add_argument("--threshold", default="off", choices=["off", "global", "per_group"])
    ap.add_argument(
        "--lambdas", type=float, nargs="+", help="the anchors' fairness weights or gap bounds (default: auto)"
    )
    ap.add_argument("--scalarisation", default="epsilon", choices=["linear", "tchebycheff", "epsilon"])
    ap.add_argument("--rounds", type=int, default=0, help="hybrid rounds after the first search")
    ap.add_argument("--refine", type=int, default=2, help="front merges fine-tuned per hybrid round")
    ap.add_argument(
        "--front-rule",
        default="plain",
        help="how both sides choose their fronts (selection.py): plain (the study's), stability[:t], shrunk[:k], "
        "thin[:K]; a suffix @all picks the pipeline's from every evaluated recipe (tabular tasks; fairpo_yeast "
        "keeps its own rule)",
    )
    ap.add_argument("--pool-cache", type=Path, help="folder keeping each seed's candidate pools (--front-rule)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="folder for the anytime plots (one PNG per task)")
    args = ap.parse_args(argv)
    rule, _, where = args.front_rule.partition("@")
    try:
        parse_rule(rule)
    except ValueError as exc:
        ap.error(str(exc))
    if where not in ("", "all"):
        ap.error(f"--front-rule: expected the suffix @all or none, got @{where}")
    return args


def _ratio(value) -> str:
    """A ratio column; None (the sweep's HV is 0, possible under a --front-rule) prints as inf."""
    return f"{float('inf') if value is None else value:>7.3f}"


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([np.inf if r[key] is None else r[key] for r in rows]))


def main(argv=None) -> int:
    args = parse(argv)
    rows = []
    print(
        f"{'task':>14} {'seed':>4} {'pipeline':>9} {'sweep=':>9} {'sweep×2':>9} {'ratio=':>7} {'ratio×2':>7}  90% diff vs sweep="
    )
    for name in args.tasks:
        for seed in args.seed_list or range(1, args.seeds + 1):
            if name == "fairpo_yeast":
                r = one_seed_fairpo(seed, args, nondominated, args.n_boot)
            elif args.front_rule != "plain":
                from rule_seed import cached_pools, rule_row  # noqa: PLC0415 (only this option needs it)

                r = rule_row(
                    tasks()[name],
                    *cached_pools(tasks()[name], seed, args, args.pool_cache),
                    args.front_rule,
                    args.n_boot,
                )
            else:
                r = one_seed(tasks()[name], seed, args)
            rows.append(r)
            print(
                f"{name:>14} {seed:>4} {r['hv_pipeline']:>9.5f} {r['hv_sweep_equal']:>9.5f} {r['hv_sweep_double']:>9.5f} "
                f"{_ratio(r['ratio_equal'])} {_ratio(r['ratio_double'])}  [{r['diff_lo']:+.5f}, {r['diff_hi']:+.5f}]",
                flush=True,
            )
            if args.json:  # after every seed: a long run interrupted keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
        mine = [r for r in rows if r["task"] == name]
        print(
            f"{name:>14} mean ratio at equal budget {_mean(mine, 'ratio_equal'):.3f}, "
            f"at twice the budget {_mean(mine, 'ratio_double'):.3f}",
            flush=True,
        )
        if args.plot and args.front_rule == "plain":
            plot_anytime(mine, args.plot / f"anytime_{name}.png", title=name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
