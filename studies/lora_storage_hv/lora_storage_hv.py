"""BiasBios test HV of the LoRA genome stored as dense deltas vs as low-rank factors: do
the factor storage's re-factorised merges cost front quality?

For each seed and each `lora.storage` (dense, factors) this runs
`evofair run runs/fapareto_biasbios_lora.yaml --seed S --set problem.args.lora.storage=X ...` in a fresh
process with the SAME reduced setting for both storages (LoRA local learning on 2 CPU cores takes hours
at the recipe's size), and reads back:

- `hv_front_test` from summary.json (test HV of the final population's val-non-dominated models,
  under the recipe's hv_ref);
- for `factors`, the relative Frobenius error of every re-factorised merge the run recorded
  (`operator.log.crossover.refactor_max_rel_error` of each stored individual: ‖ΔW_merged − B·A‖_F /
  ‖ΔW_merged‖_F, maximum over the matrices of that merge);
- wall seconds per run.

    .venv/bin/python studies/lora_storage_hv/lora_storage_hv.py --seeds 3 --json studies/lora_storage_hv/results/lora_storage_hv.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "runs" / "fapareto_biasbios_lora.yaml"
# The reduction, identical for both storages (what a few minutes per run on 2 CPU cores allows):
REDUCED = [
    "problem.args.limit=32",  # first 32 bios of each split (train/val/test) instead of all
    "problem.args.max_length=32",  # tokens per bio (recipe: 256)
    "problem.args.torch_threads=1",  # recipe: every core; one thread on a shared, loaded machine
    "problem.args.baselines.enabled=false",  # the storages are compared with each other, not baselines
    "algorithm.pop_size=4",  # recipe: 16
    "algorithm.generations=2",  # recipe: 10 (generation 0 + one generation of merges)
    "hv_ref=[1.0, 1.0]",  # recipe: (0.25, 0.25), which no model of so small a run reaches
]


def run_one(storage: str, seed: int, tmp: Path, extra: list[str]) -> dict:
    out = tmp / f"{storage}-seed{seed}"
    sets = REDUCED + [f"problem.args.lora.storage={storage}"] + extra
    cmd = [
        sys.executable,
        "-m",
        "evofair.cli",
        "run",
        str(RECIPE),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--quiet",
        *[x for kv in sets for x in ("--set", kv)],
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    summary = json.loads((out / "summary.json").read_text())
    return {
        "storage": storage,
        "seed": seed,
        "hv_front_test": summary["hv_front_test"],
        "hv_front_val": summary.get("hv_front_val"),
        "wall_s": wall,
        **refactor_errors(out),
    }


def refactor_errors(out: Path) -> dict:
    """The relative Frobenius errors of re-factorised merges, as the factor genome logged them."""
    from evofair.store.run_store import RunStore

    store = RunStore(out, readonly=True)
    try:
        errors = [
            ind.operator.get("log", {}).get("crossover", {}).get("refactor_max_rel_error")
            for ind in store.individuals()
        ]
    finally:
        store.close()
    errors = [e for e in errors if e is not None]
    return {
        "refactored_merges": len(errors),
        "refactor_rel_error_max": max(errors) if errors else None,
        "refactor_rel_error_mean": statistics.mean(errors) if errors else None,
    }


def _ms(xs) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more override, both storages")
    ap.add_argument("--json", help="write every run's row here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lora-storage-hv-") as tmp:
        for seed in range(1, args.seeds + 1):
            for storage in ("dense", "factors"):
                row = run_one(storage, seed, Path(tmp), args.set)
                rows.append(row)
                err = row["refactor_rel_error_max"]
                print(
                    f"seed {seed} {storage:7s}: test HV {row['hv_front_test']:.4f}  ({row['wall_s']:.0f} s"
                    + (
                        f"; {row['refactored_merges']} re-factorised merges, rel. Frobenius error max {err:.2e}, "
                        f"mean {row['refactor_rel_error_mean']:.2e}"
                        if err is not None
                        else ""
                    )
                    + ")",
                    flush=True,
                )
    print("\nreduced setting (both storages):", " ".join(REDUCED + args.set))
    print("| storage | test HV per seed | mean ± std | wall s per run |\n|---|---|---|---|")
    for storage in ("dense", "factors"):
        mine = [r for r in rows if r["storage"] == storage]
        per_seed = ", ".join(f"{r['hv_front_test']:.4f}" for r in mine)
        print(
            f"| {storage} | {per_seed} | "
            f"{_ms([r['hv_front_test'] for r in mine])} | {statistics.mean(r['wall_s'] for r in mine):.0f} |"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"reduced": REDUCED + args.set, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
