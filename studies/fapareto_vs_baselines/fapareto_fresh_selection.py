"""Would re-selecting the evolved models on validate data the evolution never saw beat the baselines?

Re-selecting the archive on a split the evolution never saw is one remedy for a fitness that overfits
a small validate split. This measures it without changing the core: per seed,

1. the default recipe as shipped (evolution + baselines; the union (a)+(b) selected on the whole
   validate split, exactly as `fapareto_vs_baselines.py`);
2. the default recipe on a copy of the data whose validate split keeps only half of its bios
   (A, stratified by gender × class, seeded): the evolution's fitness sees A only;
3. every model that evolution evaluated, re-scored on the other half (B) and on all of validate,
   then reduced to its non-dominated set on B (or on all of validate); test HV of each set.

Prints test HV and its ratio to the union of step 1 for: the run's own front (selected on A),
the archive re-selected on B (fresh), and on all of validate.

    .venv/bin/python studies/fapareto_vs_baselines/fapareto_fresh_selection.py --seeds 1 2 3     # ~1.5 min per seed, warm cache
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"


def split_validate(out: Path, seed: int = 0) -> np.ndarray:
    """Write DATA without half of its validate rows (B); return B's positions inside validate."""
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:  # not splitlines(): bios contain U+2028
        rows = [json.loads(line) for line in fh if line.strip()]
    val = [i for i, r in enumerate(rows) if r["split"] == "validate"]
    rng, held = np.random.default_rng(seed), set()
    cells: dict[tuple, list[int]] = {}
    for i in val:
        cells.setdefault((rows[i]["gender"], rows[i]["label_id"]), []).append(i)
    for key in sorted(cells):
        idx = np.array(cells[key])
        held |= set(rng.permutation(idx)[: len(idx) // 2].tolist())
    out.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i not in held))
    return np.array([k for k, i in enumerate(val) if i in held])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_fresh_selection"))
    args = ap.parse_args(argv)

    import evofair
    from evofair.analysis.metrics import fairness_metrics
    from evofair.core.indicators import hypervolume, non_dominated
    from evofair.lifecycle.recipe import load_recipe
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
    from evofair.store.run_store import RunStore

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        file_a = Path(tmp) / "biasbios_validate_half.jsonl"
        pos_b = split_validate(file_a)
        full = BiasBios(BiasBiosParams()).ensure_setup()  # the shipped data: scores models on B and on all of validate
        recipe_path = ROOT / "runs" / "fapareto_biasbios.yaml"
        print(
            "| seed | union (a)+(b), whole validate | front, fitness and selection on A | archive re-selected on B "
            "(fresh) | archive re-selected on all of validate |\n|---|---:|---:|---:|---:|"
        )
        ratios = []
        for seed in args.seeds:
            runs, results = {}, {}
            for name, extra in (
                ("shipped", []),
                ("half", [f"problem.args.data_file={file_a}", "problem.args.baselines.enabled=false"]),
            ):
                runs[name] = out / f"{name}-seed{seed}"
                shutil.rmtree(runs[name], ignore_errors=True)
                results[name] = evofair.run(
                    load_recipe(recipe_path, [f"seed={seed}", "intervals.enabled=false", *extra]),
                    runs[name],
                    progress=False,
                )
            summary = json.loads((runs["shipped"] / "summary.json").read_text())
            union, ref = summary["hv_union_ab_test"], summary["hv_ref"]
            store = RunStore(runs["half"], readonly=True)
            try:
                inds = store.individuals()
                weights = [store.get_weights(i.weights_hash) for i in inds]
            finally:
                store.close()
            o = full.example_outputs(weights, "val")

            def scored(idx):
                m = fairness_metrics(
                    o["y_pred"][:, idx],
                    o["y_true"][idx],
                    o["groups"][idx],
                    classes=o["classes"],
                    pos_label=o["pos_label"],
                )
                return np.stack([m["error"], m["dtpr"]], 1)

            test = np.array([[i.metrics["test"]["error"], i.metrics["test"]["dtpr"]] for i in inds])
            front_ids = set(results["half"].ids)
            front = [k for k, i in enumerate(inds) if i.id in front_ids]
            hv = {
                "front_A": hypervolume(test[front], ref),
                "fresh_B": hypervolume(test[non_dominated(scored(pos_b))], ref),
                "all_val": hypervolume(test[non_dominated(scored(np.arange(len(o["y_true"]))))], ref),
            }
            print(
                f"| {seed} | {union:.6f} | " + " | ".join(f"{v:.6f} ({v / union:.3f})" for v in hv.values()) + " |",
                flush=True,
            )
            ratios.append([v / union for v in hv.values()])
        print(f"| mean ratio, {len(ratios)} seeds | | " + " | ".join(f"**{m:.3f}**" for m in np.mean(ratios, 0)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
