"""Memetic FairPO vs the same engine with SFT local search vs standalone FairPO/baselines: test-split HV.

Three sets of heads on MULAN yeast, all scored on the *test* split as (1 − mAP_P, 1 − mAP_N), with one
hypervolume reference point — the constant predictor's point on test (a constant score has AP equal
to the label's prevalence), so a trivial model earns nothing:

  (i)   NSGA-II over heads with FairPO local search (runs/fairpo_memetic_yeast.yaml): final front;
  (ii)  the same engine, seed and budget, with SFT (BCE, AdamW) local search instead;
  (iii) the standalone FairPO table methods (variants, baselines, ablations), same seed, each
        trained for E epochs with E chosen so that their total step count matches (i).

Training steps are counted, not assumed: (i) = refinements × steps + the BCE-SFT reference the
initial population is refined against; (ii) gets round((i) / refinements) steps per refinement.

    .venv/bin/python studies/fairpo_memetic/fairpo_memetic.py --seeds 0 1 2   # full size (minutes per seed)
    .venv/bin/python studies/fairpo_memetic/fairpo_memetic.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import evofair  # noqa: E402
from evofair.analysis.report import final_front  # noqa: E402
from evofair.core.indicators import hypervolume, non_dominated  # noqa: E402
from evofair.lifecycle.recipe import load_recipe  # noqa: E402
from evofair.store.run_store import RunStore  # noqa: E402


def _test_points(out: Path, problem) -> tuple[np.ndarray, np.ndarray]:
    store = RunStore(out, readonly=True)
    try:
        front = final_front(store, problem)
        everything = store.individuals()
    finally:
        store.close()
    pts = lambda inds: np.array([[i.metrics["test"]["err_map_P"], i.metrics["test"]["err_map_N"]] for i in inds])
    return pts(front), pts(everything)


ARMS = (
    ("(i) memetic FairPO", "memetic_fairpo"),
    ("(ii) memetic SFT", "memetic_sft"),
    ("(iii) standalone methods", "standalone"),
)


def sft_recipe(recipe, steps: int):
    """Arm (ii)'s recipe: the memetic recipe with SFT (BCE, AdamW, the FairPO refiner's lr) as the
    local search, `steps` per refinement, so only the local learner differs from arm (i)."""
    rargs = recipe.operators.refine.args
    sft = recipe.model_copy(deep=True)
    sft.operators.refine.name = "sft"
    sft.operators.refine.args = {
        "steps": steps,
        "optimizer": "adamw",
        "lr": rargs.get("lr", 1e-3),
        "weight_decay": 0.01,
        "grad_clip": 1.0,
        "batch_size": 32,
    }
    return sft


def standalone_points(problem, seed: int, keys: list[str], epochs: int, lr: float) -> tuple[list[list[float]], int]:
    """Arm (iii): each FairPO table method trained alone for `epochs` against the problem's BCE-SFT
    reference, its selected checkpoint scored on test. Returns the (1 − mAP_P, 1 − mAP_N) points
    and the training steps they took (the reference's own steps not included)."""
    from evofair.core.torch_utils import torch_threads
    from evofair.problems.fairpo.mulan import privileged_labels
    from evofair.problems.fairpo.train import METHODS, train_selected

    pts, steps = [], 0
    alt = privileged_labels(problem.y["train"], problem.label_names, fraction=0.5)  # as the table's default
    with torch_threads(1):
        reference = problem.reference_weights()
        for key in keys:
            cfg = METHODS[key].config.model_copy(update={"lr": lr})
            res = train_selected(
                problem,
                cfg,
                seed=seed,
                epochs=epochs,
                reference=reference,
                privileged=alt if METHODS[key].alt_partition else None,
            )
            m = problem.evaluate([res.weights], "test")
            pts.append([float(m["err_map_P"][0]), float(m["err_map_N"][0])])
            steps += res.steps
    return pts, steps


def one_seed(recipe, out: Path, tag: str) -> dict:
    """The three arms for one recipe seed; returns HVs, step counts and seconds."""
    from evofair.api import build_problem
    from evofair.core.torch_utils import torch_threads
    from evofair.problems.fairpo.train import METHODS

    problem = build_problem(recipe).ensure_setup()
    steps_per_epoch = math.ceil(len(problem.y["train"]) / 32)
    pop, gens = recipe.algorithm.pop_size, recipe.algorithm.generations
    refinements = pop * gens  # n_offsprings = pop_size; the initial population is refined too
    k = recipe.operators.refine.args.get("steps", 50)
    ref_steps = problem.params.sft_epochs * steps_per_epoch
    budget = refinements * k + ref_steps
    prev = problem.y["test"].mean(axis=0)
    ref = (float(1 - prev[problem.priv].mean()), float(1 - prev[problem.nonpriv].mean()))
    timings = {}

    # (i) memetic FairPO. Every arm runs with one torch thread (the fairpo refiner's default; the sft
    # refiner would otherwise use torch's default and, on a busy machine, run many times slower).
    t = time.perf_counter()
    with torch_threads(1):
        evofair.run(recipe, out / f"{tag}-memetic-fairpo", progress=False)
    timings["memetic_fairpo"] = time.perf_counter() - t
    front_i, all_i = _test_points(out / f"{tag}-memetic-fairpo", problem)

    # (ii) memetic SFT (BCE, AdamW, same lr), same total steps
    k_sft = round(budget / refinements)
    sft = sft_recipe(recipe, k_sft)
    t = time.perf_counter()
    with torch_threads(1):
        evofair.run(sft, out / f"{tag}-memetic-sft", progress=False)
    timings["memetic_sft"] = time.perf_counter() - t
    front_ii, all_ii = _test_points(out / f"{tag}-memetic-sft", problem)

    # (iii) the standalone table methods, this seed, E epochs each so the total matches (i)
    keys = list(METHODS)
    epochs = max(1, round((budget - ref_steps) / (len(keys) * steps_per_epoch)))
    t = time.perf_counter()
    lr = recipe.operators.refine.args.get("lr", 1e-3)
    pts, standalone_steps = standalone_points(problem, recipe.seed, keys, epochs, lr)
    steps_iii = ref_steps + standalone_steps
    timings["standalone"] = time.perf_counter() - t
    pts_iii = np.array(pts)

    def entry(front, everything, steps, sec):
        nd = everything[non_dominated(everything)]
        return {
            "hv_front": hypervolume(front, ref),
            "hv_all_evaluated_nd": hypervolume(nd, ref),
            "n_front": int(len(front)),
            "training_steps": int(steps),
            "seconds": timings[sec],
        }

    return {
        "seed": recipe.seed,
        "reference_point_test": ref,
        "budget_steps": budget,
        "(i) memetic FairPO": entry(front_i, all_i, budget, "memetic_fairpo"),
        "(ii) memetic SFT": entry(front_ii, all_ii, refinements * k_sft, "memetic_sft"),
        "(iii) standalone methods": {
            **entry(pts_iii, pts_iii, steps_iii, "standalone"),
            "epochs_each": epochs,
            "points": dict(zip(keys, pts)),
        },
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "runs/fairpo_memetic_yeast.yaml"))
    ap.add_argument("--out", default=str(ROOT / "out/bench_fairpo_memetic"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="recipe seeds (one full comparison each)")
    ap.add_argument("--quick", action="store_true", help="tiny population and budget (smoke test)")
    ap.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    overrides = list(a.set)
    if a.quick:
        overrides += [
            "algorithm.pop_size=4",
            "algorithm.generations=2",
            "operators.refine.args.steps=4",
            "problem.args.sft_epochs=2",
        ]
    per_seed = [one_seed(load_recipe(a.recipe, overrides + [f"seed={s}"]), out, f"{stamp}-seed{s}") for s in a.seeds]
    ref = per_seed[0]["reference_point_test"]
    print(
        f"test-split HV of the final front, reference point {tuple(round(r, 4) for r in ref)} "
        f"(constant predictor on test); ratio = HV / HV of (ii) in the same seed"
    )
    print(f"{'seed':>4s} {'set':26s} {'HV':>9s} {'ratio':>6s} {'steps':>6s} {'seconds':>8s}")
    for r in per_seed:
        base = r["(ii) memetic SFT"]["hv_front"]
        for key, _ in ARMS:
            e = r[key]
            print(
                f"{r['seed']:4d} {key:26s} {e['hv_front']:9.6f} {e['hv_front'] / base:6.3f} "
                f"{e['training_steps']:6d} {e['seconds']:8.1f}"
            )
    summary = {key: float(np.mean([r[key]["hv_front"] for r in per_seed])) for key, _ in ARMS}
    base = summary["(ii) memetic SFT"]
    for key, _ in ARMS:
        print(f"mean {key:26s} {summary[key]:9.6f} {summary[key] / base:6.3f}")
    path = out / f"{stamp}-results.json"
    path.write_text(
        json.dumps(
            {"per_seed": per_seed, "mean_hv_front": summary, "recipe": a.recipe, "overrides": overrides}, indent=1
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
