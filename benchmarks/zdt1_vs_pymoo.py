"""What evofair costs over plain pymoo on a cheap problem: ZDT1, NSGA-II, 100 × 200 evaluations.

A pymoo user trying evofair on a benchmark problem compares it with `pymoo.optimize.minimize`; the
engine, the store and the report should add little to that. Both run alternately in one process
(so load changes hit both), `--repeats` times each after `--warmup` untimed runs of each (a
process's first run pays matplotlib's first figure and other one-off costs, ~0.4 s, that a median
of three would count whenever one warm run is slowed by the machine); printed: the warm-up times,
each timed run, the medians, their ratio (goal ≤ 1.5) and evofair's final HV (seed 1: 0.867882, the
same as plain pymoo's).

    .venv/bin/python benchmarks/zdt1_vs_pymoo.py [--repeats 3] [--warmup 1] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize
from pymoo.problems import get_problem

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evofair  # noqa: E402
from evofair.lifecycle.recipe import read_recipe_file  # noqa: E402

RECIPE = ROOT / "runs" / "zdt1.yaml"
REF = np.array([1.1, 1.1])


def plain_pymoo() -> float:
    """runs/zdt1.yaml's settings: NSGA-II pop 100 (pymoo's SBX eta 15 prob 0.9, PM eta 20), 200 gens, seed 1."""
    res = minimize(get_problem("zdt1", n_var=30), NSGA2(pop_size=100), ("n_gen", 200), seed=1)
    return float(HV(ref_point=REF)(res.F))


def evofair_run(out: Path) -> float:
    """`evofair.run` of runs/zdt1.yaml, report included (what `evofair run` does)."""
    res = evofair.run(read_recipe_file(RECIPE), out, progress=False)
    return float(res.history["hv_val"].iloc[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each before the timed ones")
    ap.add_argument("--profile", help="also write a cProfile of one more evofair run to this file")
    args = ap.parse_args()
    times: dict[str, list[float]] = {"pymoo": [], "evofair": []}
    warm: dict[str, list[float]] = {"pymoo": [], "evofair": []}
    hv = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.warmup + args.repeats):
            for label in ("pymoo", "evofair"):
                t = time.perf_counter()
                hv[label] = plain_pymoo() if label == "pymoo" else evofair_run(Path(tmp) / f"run{rep}")
                (warm if rep < args.warmup else times)[label].append(time.perf_counter() - t)
        if args.profile:
            cProfile.runctx(
                "evofair_run(out)", globals(), {"evofair_run": evofair_run, "out": Path(tmp) / "prof"}, args.profile
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    if args.warmup:
        print("warm-up (untimed): " + "; ".join(f"{k} {', '.join(f'{t:.2f}' for t in v)} s" for k, v in warm.items()))
    for label, ts in times.items():
        print(f"{label:>8}: {', '.join(f'{t:.2f}' for t in ts)} s; median {med[label]:.2f} s; HV {hv[label]:.6f}")
    print(f"ratio evofair/pymoo (medians): {med['evofair'] / med['pymoo']:.2f}")


if __name__ == "__main__":
    main()
