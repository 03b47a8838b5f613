"""fair_classification on real tables: the evolved front against the fairlearn baselines, test HV.

For each dataset and seed this runs `evofair run runs/<dataset>.yaml --seed S --out TMP --quiet` as a
user would (a fresh process: evolution, baselines and report in one run) and reads its summary.json:

- `front`: test HV of the evolved front (the final population's val-non-dominated models);
- `fairlearn union`: test HV of the val-non-dominated union of every ExponentiatedGradient and
  GridSearch model (the baselines that do not read the sensitive attribute at prediction time);
- their ratio (goal: ≥ 1.0 on both datasets), and the wall and CPU time of the whole run (goal:
  ≤ 180 s on 2 cores), then mean ± std over seeds.

    .venv/bin/python studies/fair_tabular/fair_tabular.py --seeds 1                       # one seed, both sets
    .venv/bin/python studies/fair_tabular/fair_tabular.py --datasets adult compas --seeds 5 --json out/fair_tabular.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_one(dataset: str, seed: int, tmp: Path, overrides: list[str]) -> dict:
    """One `evofair run` in a child process; its summary.json plus wall and CPU seconds."""
    out = tmp / f"{dataset}-seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "evofair.cli",
        "run",
        str(ROOT / "runs" / f"{dataset}.yaml"),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--quiet",
        *[x for kv in overrides for x in ("--set", kv)],
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out / "summary.json").read_text())
    base = json.loads((out / "baselines.json").read_text())
    summary.update(
        dataset=dataset,
        seed=seed,
        wall_s=wall,
        cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        baseline_seconds=base["budget"].get("seconds", {}),
    )
    return summary


def _ms(xs: list[float], digits: int = 4) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return (
        f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"
        if len(xs) > 1
        else f"{xs[0]:.{digits}f}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["adult", "compas"])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 1..N")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (all runs)")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for seed in range(1, args.seeds + 1):
                s = run_one(dataset, seed, Path(tmp), args.set)
                rows.append(s)
                r = s.get("ratio_front_vs_fairlearn_union")
                print(
                    f"{dataset} seed {seed}: front {s['hv_front_test']:.4f}  fairlearn union "
                    f"{s.get('hv_fairlearn_union_test', float('nan')):.4f}  ratio "
                    f"{'n/a' if r is None else f'{r:.3f}'}  (all-baselines union {s.get('hv_all_union_test', 0):.4f}; "
                    f"wall {s['wall_s']:.0f} s, cpu {s['cpu_s']:.0f} s)",
                    flush=True,
                )
    print(f"\nTest-split hypervolume (reference point per recipe), {args.seeds} seed(s), mean ± std:")
    print(
        "| dataset | front | fairlearn union | ratio front / fairlearn union | no-sensitive union | ratio | "
        "wall s | cpu s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        mine = [s for s in rows if s["dataset"] == dataset]
        col = lambda k: [s.get(k) for s in mine]
        print(
            f"| {dataset} | {_ms(col('hv_front_test'))} | {_ms(col('hv_fairlearn_union_test'))} | "
            f"{_ms(col('ratio_front_vs_fairlearn_union'))} | {_ms(col('hv_no_sensitive_union_test'))} | "
            f"{_ms(col('ratio_front_vs_no_sensitive_union'))} | {_ms(col('wall_s'), 0)} | {_ms(col('cpu_s'), 0)} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
