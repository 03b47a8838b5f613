"""`evofair export` of a LoRA-genome model on the real all-MiniLM-L6-v2: adapter ranks, truncation
error, folder sizes and seconds, for the genomes the LoRA recipe makes.

Genomes (runs/fapareto_biasbios_lora.yaml's settings: r 8, alpha 16, query/value of the top 2 layers):
- `sft`: an initial genome after one SFT epoch (local learning only: ΔW has rank ≤ r = 8);
- `sft+ties`: TIES (density 0.5) of two such genomes (a merge: rank above r);
- `sft+gauss`: `sft` + the recipe's Gaussian mutation (σ 0.05 relative) on the dense deltas (full rank).
Each is exported through the problem's hook (`export_lora`, as `evofair export` calls it) on CPU;
the per-group numbers need the test split's predictions, so `--limit` bios per split are used.

    .venv/bin/python benchmarks/lora_export.py [--limit 64]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=64, help="bios per split (training and the per-group numbers)")
    a = ap.parse_args()
    import torch
    from safetensors.torch import save

    from evofair.core.plugins import registry
    from evofair.lifecycle.recipe import load_recipe
    from evofair.problems.common.hf_export import export_lora
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    recipe = load_recipe(REPO / "runs" / "fapareto_biasbios_lora.yaml")
    args = dict(recipe.problem.args, limit=a.limit)
    problem = BiasBios(BiasBiosParams(**args)).ensure_setup()
    sft, ties, gauss = (
        registry(k).get(n) for k, n in (("refine", "sft"), ("crossover", "ties"), ("mutation", "gaussian"))
    )
    sft_args = sft.args(**dict(recipe.operators.refine.args))
    one = sft.fn(problem.init_weights(1), sft_args, seed=11, problem=problem).weights
    two = sft.fn(problem.init_weights(2), sft_args, seed=12, problem=problem).weights
    genomes = {
        "sft": one,
        "sft+ties": ties.fn([one, two], ties.args(density=0.5), seed=3, base=problem.base_weights())[0],
        "sft+gauss": gauss.fn(one, gauss.args(sigma=0.05, relative=True), seed=4),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, w in genomes.items():
            out = Path(tmp) / name
            out.mkdir()
            t = time.perf_counter()
            info = export_lora(problem, w, out)
            seconds = time.perf_counter() - t
            ranks = info["adapter_ranks"].values()
            rows.append(
                {
                    "genome": name,
                    "seconds": round(seconds, 2),
                    "numerical_rank": sorted({i["numerical_rank"] for i in ranks}),
                    "adapter_rank": sorted({i["rank"] for i in ranks}),
                    "max_rel_error": info["adapter_max_rel_error"],
                    "genome_mb": round(len(save(w)) / 1e6, 3),
                    "adapter_mb": round(_size_mb(out / "adapter"), 3),
                    "merged_mb": round(_size_mb(out / "merged"), 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, limit {a.limit} bios per split")


if __name__ == "__main__":
    main()
