"""The shipped recipe's evolved front against the λ-sweep, and against the merge pipeline, at its budget.

    .venv/bin/python studies/search_vs_sweep/recipe_vs_sweep.py --tasks adult compas biasbios_head --seeds 5 \\
        --json studies/search_vs_sweep/results/recipe_vs_sweep.json

search_vs_sweep.py asks whether the merge pipeline earns its keep; this asks the same of the
default a user gets on each task's data: `evofair run runs/<task's recipe>` (fair_classification's
or FaPareto's NSGA-II over weights, with their local fine-tuning). Per task and seed:

- *recipe*: the shipped recipe at that seed, its in-run baselines off (the sweep here is the
  comparison) and the task's reference point; its budget counted from the run itself: every
  offspring's refine steps × batch size (the store's refine logs) plus the warm start of θ₀;
- *sweep*: search_vs_sweep.py's λ-sweep on the run's own problem (same model, split and data) at
  that budget and at twice it;
- *merge*: search_vs_sweep.py's pipeline with `selection: validate` (no folds) and the anchors'
  epochs cut so its budget is at most the recipe's, so the two defaults meet at one budget.

Every front is chosen on validate (the recipe's and the merge's: the final population's
validate-non-dominated members; the sweep's: every epoch of every head), scored on test.
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
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_vs_sweep import paired_interval, pipeline, sweep_at_budget  # noqa: E402
from search_vs_sweep import parse as pipeline_args  # noqa: E402
from tasks import ROOT, Task, objectives, tasks  # noqa: E402

from evofair.api import run as evofair_run  # noqa: E402
from evofair.core.indicators import hypervolume  # noqa: E402
from evofair.lifecycle.recipe_file import apply_overrides  # noqa: E402
from evofair.problems.common.baselines import evolution_budget  # noqa: E402

MERGE_ANCHORS = 5  # the ε ladder's bounds (problems/merging/anchors.py): one fit each under validate selection


def recipe_of(task: Task, seed: int, overrides: list[str] | None = None) -> dict:
    """The shipped recipe as a user runs it on the task's data, at `seed`, without in-run baselines,
    with `overrides` (`KEY=VALUE`, as `evofair run --set` takes them)."""
    recipe = yaml.safe_load((ROOT / "runs" / task.recipe).read_text())  # an absolute path stays itself
    args = recipe["problem"]["args"]
    if recipe["problem"]["name"] == task.inner["name"] and "data" in task.inner.get("args", {}):
        args = copy.deepcopy(task.inner["args"])  # the data path made absolute, baselines off
    recipe["problem"]["args"] = {**args, "baselines": {"enabled": False}}
    return apply_overrides({**recipe, "seed": seed, "hv_ref": list(task.ref)}, overrides or [])


def recipe_front(task: Task, seed: int, out: Path, overrides: list[str]) -> tuple[object, np.ndarray, int]:
    """(problem, test predictions of the run's front, training examples the run spent)."""
    result = evofair_run(recipe_of(task, seed, overrides), out, progress=False)
    problem = result.problem
    with result.store() as store:
        examples = int(evolution_budget(store)["examples"])
    warm = getattr(problem, "warm_start_examples", None)
    examples += int(warm()) if callable(warm) else 0
    P = problem.predictions([result.weights(i) for i in result.ids], "test")
    return problem, P, examples


def merge_front(
    task: Task, seed: int, budget: int, n_train: int, out: Path, argv: list[str] | None = None
) -> tuple[np.ndarray, int]:
    """The merge pipeline at no more than `budget` training examples: validate selection, and as many
    epochs per anchor as the budget pays for (at least one). `argv`: search_vs_sweep.py's options."""
    args = pipeline_args(argv or [])
    args.selection, args.epochs = "validate", max(1, budget // (MERGE_ANCHORS * n_train))
    _, examples, _, P = pipeline(task, seed, args, out)[-1]
    return P, int(examples)


def one_seed(
    task: Task, seed: int, n_boot: int, merge_argv: list[str] | None = None, overrides: list[str] | None = None
) -> dict:
    """One row; `merge_argv` None: no merge pipeline (its columns are None)."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        problem, front, budget = recipe_front(task, seed, Path(tmp) / "recipe", overrides or [])
        seconds = time.perf_counter() - started
        n_train = len(problem.splits["train"])
        merged, merge_budget = (
            merge_front(task, seed, budget, n_train, Path(tmp) / "merge", merge_argv)
            if merge_argv is not None
            else (None, None)
        )
    _, budget_sweep, equal, double = sweep_at_budget(problem, task, seed, budget)

    def hv(P):
        return hypervolume(objectives(problem, task, P, "test"), task.ref)

    hv_r, hv_e, hv_d = hv(front), hv(equal), hv(double)
    hv_m = None if merged is None else hv(merged)
    lo, hi = paired_interval(problem, task, front, equal, n_boot, seed)
    m_lo, m_hi = (None, None) if merged is None else paired_interval(problem, task, front, merged, n_boot, seed)
    return {
        "task": task.name,
        "recipe": task.recipe,
        "seed": seed,
        "hv_recipe": hv_r,
        "hv_sweep_equal": hv_e,
        "hv_sweep_double": hv_d,
        "hv_merge_equal": hv_m,
        "ratio_equal": hv_r / hv_e if hv_e else None,
        "ratio_double": hv_r / hv_d if hv_d else None,
        "ratio_vs_merge": hv_r / hv_m if hv_m else None,
        "overrides": list(overrides or []),
        "diff_lo": lo,
        "diff_hi": hi,
        "diff_merge_lo": m_lo,
        "diff_merge_hi": m_hi,
        "budget_recipe": budget,
        "budget_sweep_equal": budget_sweep,
        "budget_merge": merge_budget,
        "n_front": len(front),
        "seconds_recipe": round(seconds, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(tasks()), choices=list(tasks()))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 1..--seeds")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override of the shipped recipe")
    ap.add_argument("--no-merge", action="store_true", help="leave out the merge pipeline")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows: list[dict] = []
    print(
        f"{'task':>14} {'seed':>4} {'recipe':>9} {'sweep=':>9} {'sweep×2':>9} {'merge=':>9} {'ratio=':>7} "
        f"{'ratio×2':>7} {'/merge':>7}  90% diff vs sweep=   budget (recipe, merge)"
    )
    for name in args.tasks:
        for seed in args.seed_list or range(1, args.seeds + 1):
            r = one_seed(tasks()[name], seed, args.n_boot, None if args.no_merge else [], args.set)
            rows.append(r)
            print(
                f"{name:>14} {seed:>4} {r['hv_recipe']:>9.5f} {r['hv_sweep_equal']:>9.5f} {r['hv_sweep_double']:>9.5f} "
                f"{r['hv_merge_equal'] or 0:>9.5f} {_ratio(r['ratio_equal'])} {_ratio(r['ratio_double'])} "
                f"{_ratio(r['ratio_vs_merge']) if r['hv_merge_equal'] is not None else '      —'}  [{r['diff_lo']:+.5f}, {r['diff_hi']:+.5f}]   "
                f"{r['budget_recipe']}, {r['budget_merge']}",
                flush=True,
            )
            if args.json:  # after every seed: an interrupted run keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
        mine = [r for r in rows if r["task"] == name]
        means = {
            k: float(np.mean([np.inf if r[k] is None else r[k] for r in mine])) for k in _RATIOS[: 3 - args.no_merge]
        }
        print(f"{name:>14} mean ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()), flush=True)
    return 0


_RATIOS = ("ratio_equal", "ratio_double", "ratio_vs_merge")


def _ratio(value) -> str:
    return f"{float('inf') if value is None else value:>7.3f}"


if __name__ == "__main__":
    sys.exit(main())
