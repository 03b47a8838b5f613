"""Does ranking the evolution on the validate split over-fit it, and does ranking on train help?

NSGA-II ranks every generation on the validate split, and the front is then chosen on the same
split. Twelve generations of selection on 1,277 BiasBios bios could fit that split's noise. This
study measures it from the run's own store: for every generation, the mean test − validate error
of its offspring, and the test error of its most accurate member on validate. The variant
`--rank-on train` ranks the evolution on the training split instead (the front is still chosen on
validate from the final population), by wrapping the engine's generation step in this process
only: the product does not offer it (it lost here; studies/fair_tabular/README.md).

    .venv/bin/python studies/fair_tabular/rank_split.py --seed-list 1 2 3 4 5 --json OUT.json
    .venv/bin/python studies/fair_tabular/rank_split.py --rank-on train --seed-list 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "runs" / "biasbios_fair_classification.yaml"


def rank_on_train() -> None:
    """Evaluate the training split too, and hand NSGA-II its metrics in place of validate's.

    Only the engine reads the swapped split (its ranking, and so the per-generation `hv_val` it
    records): the individuals keep their true validate and test metrics, so the stored models, the
    front's choice on validate and the report's tables are the product's own."""
    import evofair.engine.loop as loop
    import evofair.executors.base as base

    base.SPLITS = (*base.SPLITS, "train")
    realise = loop.realise_generation

    def swapped(*args, **kwargs):
        made = realise(*args, **kwargs)
        metrics = dict(made.metrics)
        metrics["val"] = metrics.pop("train")
        for ind in made.individuals:
            ind.metrics.pop("train", None)
        return made._replace(metrics=metrics, batch=None)  # array genomes: the store rebuilds it from them

    loop.realise_generation = swapped


def generation_gaps(run: Path) -> list[dict]:
    """`gaps_by_generation` of every model the run folder's store holds."""
    from evofair.store.run_store import RunStore

    store = RunStore(run, readonly=True)
    try:
        models = store.individuals()
    finally:
        store.close()
    models.sort(key=lambda m: m.id)  # ties on validate go to the first id, as the JSON rows were made
    return gaps_by_generation([(m.generation, m.metrics["val"]["error"], m.metrics["test"]["error"]) for m in models])


def gaps_by_generation(models: list[tuple[int, float, float]]) -> list[dict]:
    """Per generation of (generation, validate error, test error) triples: how many, their mean
    test − validate error, and the validate and test error of the most accurate on validate (the
    first listed among equals)."""
    out: dict[int, dict] = {}
    for gen, val, test in sorted(models, key=lambda m: (m[0], m[1])):
        g = out.setdefault(gen, {"generation": gen, "n": 0, "gap_sum": 0.0, "best_val": val, "best_val_test": test})
        g["n"] += 1
        g["gap_sum"] += test - val
    return [{**g, "mean_gap": g.pop("gap_sum") / g["n"]} for g in out.values()]


def one_run(seed: int, out: Path, recipe: Path = RECIPE, overrides: tuple[str, ...] = ()) -> dict:
    """One run of `recipe` (with `overrides`) at `seed` into `out`; its front and per-generation gaps."""
    import evofair

    evofair.run(evofair.load_recipe(recipe, overrides=[*overrides, f"seed={seed}"]), out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    with (out / "front.csv").open() as f:
        front = list(csv.DictReader(f))
    return {
        "seed": seed,
        "hv_test": summary["hv_front_test"],
        "best_test_error": min(float(r["error_test"]) for r in front),
        "logistic_regression_test_error": summary.get("error_test_logistic_regression"),
        "n_front": len(front),
        "generations": generation_gaps(out),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rank-on", choices=["val", "train"], default="val")
    ap.add_argument("--seed-list", type=int, nargs="+", default=[1])
    ap.add_argument("--recipe", type=Path, default=RECIPE)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (every run)")
    ap.add_argument("--json", type=Path, help="write one row per seed here")
    args = ap.parse_args(argv)
    if args.rank_on == "train":
        rank_on_train()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seed_list:
            row = {"rank_on": args.rank_on, **one_run(seed, Path(tmp) / f"seed{seed}", args.recipe, tuple(args.set))}
            rows.append(row)
            gens = row["generations"]
            lr = row["logistic_regression_test_error"]
            print(
                f"seed {seed} (ranked on {args.rank_on}): test HV {row['hv_test']:.4f}, front best test error "
                f"{row['best_test_error']:.4f} (LogisticRegression {'n/a' if lr is None else f'{lr:.4f}'}), "
                f"{row['n_front']} on the front",
                flush=True,
            )
            print("  generation: mean test − validate error | most accurate on validate: validate, test error")
            for g in gens:
                print(f"  {g['generation']:>2}: {g['mean_gap']:+.4f} | {g['best_val']:.4f}, {g['best_val_test']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
