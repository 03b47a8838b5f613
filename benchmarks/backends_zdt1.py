"""Same problem, either backend: final hypervolume of NSGA-II on ZDT1 (n_var 30, pop 100, 200 gens).

Prints, for each seed, the HV (ref (1.1, 1.1)) of plain pymoo NSGA-II (the baseline, measured in
this run), of evofair with `algorithm.backend: pymoo` (runs/zdt1.yaml) and with
`algorithm.backend: deap` (runs/zdt1_deap.yaml), their differences from the baseline, and wall
times. evofair-pymoo should equal plain pymoo exactly; evofair-deap is a different random stream
of the same algorithm, so it should agree within seed-to-seed noise.

    .venv/bin/python benchmarks/backends_zdt1.py [--seeds 1 2 3] [--generations 200]
"""

from __future__ import annotations

import argparse
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

REF = np.array([1.1, 1.1])


def plain_pymoo(seed: int, generations: int, pop: int) -> float:
    res = minimize(get_problem("zdt1", n_var=30), NSGA2(pop_size=pop), ("n_gen", generations), seed=seed)
    return float(HV(ref_point=REF)(res.F))


def evofair_run(recipe_file: str, seed: int, generations: int, pop: int, tmp: Path) -> float:
    raw = read_recipe_file(ROOT / recipe_file)
    raw["seed"] = seed
    raw["algorithm"].update(generations=generations, pop_size=pop)
    out = tmp / f"{Path(recipe_file).stem}-{seed}"
    res = evofair.run(raw, out, progress=False)
    return float(res.history["hv_val"].iloc[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--pop", type=int, default=100)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            row = {"seed": seed}
            for label, fn in (
                ("pymoo-plain", lambda: plain_pymoo(seed, args.generations, args.pop)),
                ("evofair-pymoo", lambda: evofair_run("runs/zdt1.yaml", seed, args.generations, args.pop, Path(tmp))),
                (
                    "evofair-deap",
                    lambda: evofair_run("runs/zdt1_deap.yaml", seed, args.generations, args.pop, Path(tmp)),
                ),
            ):
                t = time.perf_counter()
                row[label] = fn()
                row[label + " s"] = time.perf_counter() - t
            rows.append(row)
    print(f"ZDT1 n_var=30, NSGA-II pop {args.pop}, {args.generations} generations, HV ref (1.1, 1.1)")
    print(
        f"{'seed':>4} {'pymoo-plain':>12} {'evofair-pymoo':>14} {'evofair-deap':>13} "
        f"{'pymoo-diff':>11} {'deap-diff':>10} {'t plain/evo-pymoo/evo-deap (s)':>32}"
    )
    for r in rows:
        print(
            f"{r['seed']:>4} {r['pymoo-plain']:>12.6f} {r['evofair-pymoo']:>14.6f} {r['evofair-deap']:>13.6f} "
            f"{r['evofair-pymoo'] - r['pymoo-plain']:>+11.2e} {r['evofair-deap'] - r['pymoo-plain']:>+10.4f} "
            f"{r['pymoo-plain s']:>12.1f}/{r['evofair-pymoo s']:.1f}/{r['evofair-deap s']:.1f}"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("pymoo-plain", "evofair-pymoo", "evofair-deap")}
    print(
        f"mean {mean['pymoo-plain']:>12.6f} {mean['evofair-pymoo']:>14.6f} {mean['evofair-deap']:>13.6f} "
        f"{mean['evofair-pymoo'] - mean['pymoo-plain']:>+11.2e} {mean['evofair-deap'] - mean['pymoo-plain']:>+10.4f}"
    )
    print(f"max |deap - plain| = {max(abs(r['evofair-deap'] - r['pymoo-plain']) for r in rows):.4f}")


if __name__ == "__main__":
    main()
