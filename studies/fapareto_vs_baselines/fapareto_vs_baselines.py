"""FaPareto (evofair's default recipe) against its baselines, test-split hypervolume, several seeds.

For each seed (and each `--variant`, a set of recipe overrides: selection options and recipe variants)
this runs `runs/fapareto_biasbios.yaml` exactly as `evofair run` does (evolution and the baselines
trained in the same run, same budget, same selection rule) and reads the run's summary.json:

- `front`: HV on test of the evolved front (the final population's val-non-dominated models);
- `union`: HV on test of the val-non-dominated union of the vanilla (a) and scalarisation (b)
  baselines' candidates (every epoch of every head);
- their ratio and the paired-bootstrap 90% interval of the difference front − union
  (`evofair.analysis.uncertainty.hv_difference_interval`); then the means over seeds.

`--against lora` compares with the union of the LoRA fine-tune baselines instead (a run of the LoRA
genome, `--recipe runs/fapareto_biasbios_lora.yaml`: hours on 2 CPU cores, meant for a GPU).

    .venv/bin/python studies/fapareto_vs_baselines/fapareto_vs_baselines.py                       # seeds 1 2 3, default recipe
    .venv/bin/python studies/fapareto_vs_baselines/fapareto_vs_baselines.py --seeds 5 --json out/fp.json   # seeds 1..5
    .venv/bin/python studies/fapareto_vs_baselines/fapareto_vs_baselines.py --seeds 1 4 --variant val50 --variant upper
    .venv/bin/python studies/fapareto_vs_baselines/fapareto_vs_baselines.py --list-variants
    .venv/bin/python studies/fapareto_vs_baselines/fapareto_vs_baselines.py --recipe runs/fapareto_biasbios_lora.yaml --against lora --seeds 1

`--seeds N` (one number) means seeds 1..N; several numbers are the seeds themselves. Features
come from the cache after the first run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

from evofair.analysis.uncertainty import hv_difference_interval

HERE = Path(__file__).resolve().parent  # fapareto_variant_ops lives beside this script
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

#: recipe overrides of each variant (results: README.md beside this script); "default" is the recipe as shipped
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "smsemoa": ["algorithm.name=smsemoa"],
    "val50": ["problem.args.selection.val_fraction=0.5"],
    "shrunk": ["problem.args.selection.dtpr=shrunk"],
    "upper": ["problem.args.selection.dtpr=upper"],
    "val50-upper": ["problem.args.selection.val_fraction=0.5", "problem.args.selection.dtpr=upper"],
    "gen6": ["algorithm.generations=6"],
    "pop48-gen6": ["algorithm.pop_size=48", "algorithm.generations=6"],
    "sft2": ["operators.refine.args.epochs=2"],
    "lr3e-3": ["operators.refine.args.lr=0.003"],
    "ce-only": ["problem.args.local_loss=ce"],
    # recipe variants: none beats the default
    "bs64": ["operators.refine.args.batch_size=64"],
    "bs128": ["operators.refine.args.batch_size=128"],
    "noise0.1": ["problem.args.init_noise=0.1"],
    "noise0.3": ["problem.args.init_noise=0.3"],
    "init8": ["operators.refine_initial={name: sft, args: {epochs: 8, optimizer: adamw, lr: 0.001, batch_size: 256}}"],
    "gen24": ["algorithm.generations=24"],
    "cx0.5": ["operators.crossover_prob=0.5"],
    "cx0.2": ["operators.crossover_prob=0.2"],
    "no-merge": ["operators.crossover_prob=0.0"],  # ablation: mutation + local learning only
    "pop12-gen24": ["algorithm.pop_size=12", "algorithm.generations=24"],  # the default's budget, deeper lineages
    "lr3e-4": ["operators.refine.args.lr=0.0003"],
    "sgd0.05": ["operators.refine.args.optimizer=sgd", "operators.refine.args.lr=0.05"],  # momentum 0.9
    "base30": [
        f"paths=[{HERE}]",
        "problem.name=fapareto_variant_ops:BiasBiosTrainedBase",
        "problem.args.base_epochs=30",
        "problem.args.init_noise=0.3",
    ],
    "sft-decay": [
        f"paths=[{HERE}]",
        'operators.refine={name: "fapareto_variant_ops:sft_scheduled", '
        "args: {epochs: 1, optimizer: adamw, lr: 0.001, batch_size: 256, schedule: linear}}",
    ],
    "sft-decay2e-3": [
        f"paths=[{HERE}]",
        'operators.refine={name: "fapareto_variant_ops:sft_scheduled", '
        "args: {epochs: 1, optimizer: adamw, lr: 0.002, batch_size: 256, schedule: linear}}",
    ],
    "sft-swa": [
        f"paths=[{HERE}]",
        'operators.refine={name: "fapareto_variant_ops:sft_scheduled", '
        "args: {epochs: 1, optimizer: adamw, lr: 0.001, batch_size: 256, schedule: constant, average_tail: 0.5}}",
    ],
    "pooled-val": [f"paths=[{HERE}]", "problem.name=fapareto_variant_ops:BiasBiosPooledVal"],
    "pooled-dtpr": [f"paths=[{HERE}]", "problem.name=fapareto_variant_ops:BiasBiosPooledMetrics"],
    "soft-val": [f"paths=[{HERE}]", "problem.name=fapareto_variant_ops:BiasBiosSoftVal"],
    "half-epoch-gen24": [
        "operators.refine.args.steps=8",
        "algorithm.generations=24",
    ],  # early-stopped local learning, same budget
    "linear-head": ["problem.args.hidden=[]"],  # evolution and baselines alike
    "hidden128": ["problem.args.hidden=[128]"],
    "dtpr-max-train": [
        f"paths=[{HERE}]",
        "problem.name=fapareto_variant_ops:BiasBiosPooledMetrics",
        "problem.args.combine=max",
    ],
    "dtpr-floor0.03": [
        f"paths=[{HERE}]",
        "problem.name=fapareto_variant_ops:BiasBiosDtprFloor",
        "problem.args.dtpr_floor=0.03",
    ],
    "dtpr-floor0.015": [
        f"paths=[{HERE}]",
        "problem.name=fapareto_variant_ops:BiasBiosDtprFloor",
        "problem.args.dtpr_floor=0.015",
    ],
    "linear-merge": [
        "operators.crossover=[{name: linear}]"
    ],  # one c ~ U(0,1) for the whole model: children on the segment
    "w0.1-10": ["problem.args.fair_weight_init=[0.1, 10.0]"],
    "w0.1-32": ["problem.args.fair_weight_init=[0.1, 32.0]"],  # the baselines' λ range
    "logw": [
        f"paths=[{HERE}]",
        'operators.crossover=[{name: "fapareto_variant_ops:uniform_logw"}, '
        '{name: "fapareto_variant_ops:ties_logw", args: {density: 0.5}}]',
        'operators.mutation={name: "fapareto_variant_ops:gaussian_logw", args: {sigma: 0.01, relative: true, tau: 0.3}}',
    ],
}


#: --against: the summary.json key of each union's test HV and the baseline methods it unites
AGAINST = {
    "ab": ("hv_union_ab_test", ("vanilla", "scalarisation")),
    "lora": ("hv_lora_union_test", ("lora_vanilla", "lora_scalarisation")),
}


def run_one(recipe_path: Path, seed: int, out: Path, overrides: list[str]) -> dict:
    import evofair
    from evofair.lifecycle.recipe import load_recipe

    recipe = load_recipe(recipe_path, [f"seed={seed}", *overrides])
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    evofair.run(recipe, out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_s"] = time.perf_counter() - t
    return summary


def seeds_of(values: list[int]) -> list[int]:
    return list(range(1, values[0] + 1)) if len(values) == 1 else values


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="N (seeds 1..N) or a list of seeds")
    ap.add_argument(
        "--variant",
        action="append",
        choices=sorted(VARIANTS),
        help="selection option(s) to run (repeatable; default: default)",
    )
    ap.add_argument("--ablation", action="store_true", help="also run the ce-only variant (the paper's SFT)")
    ap.add_argument("--list-variants", action="store_true", help="print each variant's overrides and exit")
    ap.add_argument("--recipe", default=str(ROOT / "runs" / "fapareto_biasbios.yaml"))
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_fapareto"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe override")
    ap.add_argument("--json", metavar="FILE", help="write one row per (variant, seed)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the HV difference")
    ap.add_argument(
        "--against",
        choices=sorted(AGAINST),
        default="ab",
        help="ab: the union of the head baselines "
        "(a)+(b); lora: the union of the LoRA fine-tunes (with --recipe runs/fapareto_biasbios_lora.yaml, a GPU)",
    )
    return ap.parse_args(argv)


def compare_one(args: argparse.Namespace, name: str, seed: int) -> dict:
    """One run of variant `name` at `seed` and its row: front and union HV on test, their ratio and
    the bootstrap interval of their difference (a ratio alone hides how much is seed noise)."""
    run_dir = Path(args.out) / f"{name}-seed{seed}"
    s = run_one(Path(args.recipe), seed, run_dir, [*VARIANTS[name], *args.set])
    key, methods = AGAINST[args.against]
    if key not in s:
        raise SystemExit(f"{run_dir}: summary.json has no {key} (--against {args.against} needs those baselines)")
    iv = hv_difference_interval(run_dir, level=0.9, n_boot=args.n_boot, seed=0, methods=methods)
    row = {
        "variant": name,
        "seed": seed,
        "against": args.against,
        "hv_front": s["hv_front_test"],
        "hv_union": s[key],
        "ratio": s["hv_front_test"] / s[key] if s[key] > 0 else math.nan,
        "diff_lo": iv["lo"],
        "diff_hi": iv["hi"],
        "hv_threshold": s["hv_threshold_test"],
        "hv_front_val": s["hv_front_val"],
        "hv_archive": s["hv_archive_test"],
        "corr_test": s["corr_test"],
        "wall_s": s["wall_s"],
    }
    print(
        f"{name} seed {seed}: front {row['hv_front']:.6f}  union({args.against}) {row['hv_union']:.6f}  "
        f"ratio {row['ratio']:.3f}  diff 90% [{row['diff_lo']:.6f}, {row['diff_hi']:.6f}]  "
        f"(threshold {row['hv_threshold']:.6f}, archive {row['hv_archive']:.6f}; {row['wall_s']:.0f} s)",
        flush=True,
    )
    return row


def print_table(args: argparse.Namespace, rows: list[dict]) -> None:
    """The markdown table of every row, then per variant the means over seeds and how many seeds'
    intervals exclude 0: a mean ratio above 1 means little if most intervals contain 0."""
    ref = tuple(
        json.loads((Path(args.out) / f"{rows[0]['variant']}-seed{rows[0]['seed']}" / "summary.json").read_text())[
            "hv_ref"
        ]
    )
    print(f"\nTest-split hypervolume, reference point {ref}, minimised (error, dtpr):")
    union_label = {"ab": "union (a)+(b)", "lora": "union of the LoRA fine-tunes"}[args.against]
    print(f"| variant | seed | evolved front | {union_label} | ratio | diff 90% interval | (c) threshold |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seed']} | {r['hv_front']:.6f} | {r['hv_union']:.6f} | {r['ratio']:.3f} | "
            f"[{r['diff_lo']:+.6f}, {r['diff_hi']:+.6f}] | {r['hv_threshold']:.6f} |"
        )
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        mean = lambda k: sum(r[k] for r in mine) / len(mine)
        print(
            f"| {name} | mean of {len(mine)} | {mean('hv_front'):.6f} | {mean('hv_union'):.6f} | "
            f"**{mean('ratio'):.3f}** (ratio of means {mean('hv_front') / mean('hv_union') if mean('hv_union') > 0 else math.nan:.3f}) | "
            f"{sum(r['diff_hi'] < 0 or r['diff_lo'] > 0 for r in mine)} of {len(mine)} exclude 0 | "
            f"{mean('hv_threshold'):.6f} |"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_variants:
        for name, overrides in VARIANTS.items():
            print(f"{name}: {' '.join(overrides) or '(recipe as shipped)'}")
        return 0
    names = list(dict.fromkeys([*(args.variant or ["default"]), *(["ce-only"] if args.ablation else [])]))
    rows = [compare_one(args, name, seed) for name in names for seed in seeds_of(args.seeds)]
    print_table(args, rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        finite = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]
        Path(args.json).write_text(json.dumps(finite, indent=1))  # NaN (no interval yet) as null: strict JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
