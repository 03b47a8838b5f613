"""What the bootstrap intervals (evofair/analysis/uncertainty.py) add to a finished run's report.

Times, on an existing run directory (e.g. the default main job's), the two pieces the report runs
for a problem with per-example outputs: `evofair.analysis.report.run_intervals` (every metric of every front
model and baseline head, intervals.json) and FaPareto's paired HV-difference / correlation bootstrap
(`front_vs_union_interval`). The problem's own setup (feature cache) is not counted: the run has it.

    .venv/bin/python -m evofair.cli run fapareto_biasbios --out /tmp/main --quiet
    .venv/bin/python benchmarks/intervals_cost.py /tmp/main
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from evofair.analysis.report import run_intervals, sorted_front
    from evofair.api import build_problem
    from evofair.explorer.data import open_store
    from evofair.lifecycle.recipe import Recipe, read_recipe_file
    from evofair.problems.common.baselines import read_baselines
    from evofair.problems.fapareto.report import front_vs_union_interval

    recipe = Recipe.model_validate(read_recipe_file(args.run_dir / "config.yaml"))
    problem = build_problem(recipe).ensure_setup()
    ref = tuple(recipe.hv_ref or problem.default_hv_ref)
    with open_store(args.run_dir) as store, tempfile.TemporaryDirectory() as tmp:
        front = sorted_front(store, problem, recipe.parsed_constraints)
        base = read_baselines(args.run_dir)
        (Path(tmp) / "baselines.json").write_bytes((args.run_dir / "baselines.json").read_bytes())
        for k in range(args.repeat):
            t = time.perf_counter()
            doc = run_intervals(store, problem, recipe, Path(tmp), front)
            t1 = time.perf_counter()
            paired = front_vs_union_interval(problem, store, front, base, ref, recipe)
            t2 = time.perf_counter()
            print(
                f"run {k}: intervals of {len(doc['models'])} front models + {len(doc['baselines'])} baseline heads "
                f"({recipe.intervals.n_boot} resamples): {t1 - t:.2f} s; paired HV difference + correlation: "
                f"{t2 - t1:.2f} s; total {t2 - t:.2f} s  (diff {paired['diff']:+.6f} "
                f"[{paired['lo']:+.6f}, {paired['hi']:+.6f}])",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
