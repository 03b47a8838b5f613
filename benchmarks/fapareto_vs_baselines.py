"""FaPareto (evofair's default recipe) against its baselines, test-split hypervolume, several seeds.

For each seed this runs `runs/fapareto_biasbios.yaml` exactly as `evofair run` does (evolution and
the baselines trained in the same run, same budget) and reads the run's summary.json:

- `front`: HV on test of the evolved front (the final population's val-non-dominated models);
- `union(a)+(b)`: HV on test of the val-non-dominated union of the vanilla and scalarisation
  baselines' candidates (every epoch of every head);
- their ratio; then the means over seeds and the ratio of the means (the acceptance figure).

`--ablation` also runs FaPareto with plain cross-entropy local learning (the paper's SFT,
`problem.args.local_loss=ce`) on the same seeds. Features come from the cache after the first run.

    .venv/bin/python benchmarks/fapareto_vs_baselines.py                 # seeds 1 2 3
    .venv/bin/python benchmarks/fapareto_vs_baselines.py --ablation --out out/bench_fapareto
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(recipe_path: Path, seed: int, out: Path, overrides: list[str]) -> dict:
    import evofair
    from evofair.recipe import load_recipe

    recipe = load_recipe(recipe_path, [f"seed={seed}", *overrides])
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    evofair.run(recipe, out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_s"] = time.perf_counter() - t
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--recipe", default=str(ROOT / "runs" / "fapareto_biasbios.yaml"))
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_fapareto"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    ap.add_argument("--ablation", action="store_true", help="also run CE-only local learning")
    args = ap.parse_args(argv)
    variants = {"fapareto": list(args.set)}
    if args.ablation:
        variants["fapareto-ce-only"] = [*args.set, "problem.args.local_loss=ce"]
    rows = []
    for name, overrides in variants.items():
        for seed in args.seeds:
            s = run_one(Path(args.recipe), seed, Path(args.out) / f"{name}-seed{seed}", overrides)
            rows.append((name, seed, s))
            print(f"{name} seed {seed}: front {s['hv_front_test']:.6f}  union(a)+(b) {s['hv_union_ab_test']:.6f}  "
                  f"ratio {s['hv_front_test'] / s['hv_union_ab_test']:.3f}  (vanilla {s['hv_vanilla_test']:.6f}, "
                  f"scalarisation {s['hv_scalarisation_test']:.6f}, threshold {s['hv_threshold_test']:.6f}; "
                  f"corr {s['corr_test'] if s['corr_test'] is None else round(s['corr_test'], 3)}; "
                  f"{s['wall_s']:.0f} s)", flush=True)
    ref = rows[0][2]["hv_ref"]
    print(f"\nTest-split hypervolume, reference point {tuple(ref)}, minimised (error, dtpr):")
    print("| variant | seed | evolved front | union (a)+(b) | ratio | (c) threshold | front corr |")
    print("|---|---|---|---|---|---|---|")
    for name, seed, s in rows:
        corr = "n/a" if s["corr_test"] is None else f"{s['corr_test']:+.2f}"
        print(f"| {name} | {seed} | {s['hv_front_test']:.6f} | {s['hv_union_ab_test']:.6f} | "
              f"{s['hv_front_test'] / s['hv_union_ab_test']:.3f} | {s['hv_threshold_test']:.6f} | {corr} |")
    for name in variants:
        mine = [s for n, _, s in rows if n == name]
        front = sum(s["hv_front_test"] for s in mine) / len(mine)
        union = sum(s["hv_union_ab_test"] for s in mine) / len(mine)
        print(f"| {name} | mean | {front:.6f} | {union:.6f} | **{front / union:.3f}** | "
              f"{sum(s['hv_threshold_test'] for s in mine) / len(mine):.6f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
