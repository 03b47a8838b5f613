"""The per-generation shortcuts of a cheap ZDT1 run, each timed against the long way it replaces.

`zdt1_vs_pymoo.py` times whole runs; this prints the parts its README section names, each the
best of `--repeats` timings (so another job on the machine inflates neither side):
- evaluating a generation of 100 in `eval_chunk` batches per split vs once (`rowwise`,
  `splits_coincide`);
- NSGA-II's `_set_optimum`, pymoo's vs `FastNSGA2`'s, on a population after 20 generations;
- NSGA-II's binary tournament of a generation's 100 pairs, pymoo's loop vs `FastNSGA2`'s arrays
  (pymoo runs two a generation);
- seconds the cyclic collector spent inside one run (`gc.callbacks`), under `heap.steps_unscanned`
  as the engine uses it and with CPython's threshold and no freezing of survivors;
- the report's read of 200 generations: `generations()` vs `generation_stats()`;
- where a whole run's time goes: each part timed by a wrapper (pymoo's ask and tell, making and
  evaluating the individuals, committing them, the report), the median over `--repeats` runs, with
  plain pymoo's whole run beside it.

    .venv/bin/python benchmarks/zdt1_parts.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga2 import binary_tournament as pymoo_tournament
from pymoo.optimize import minimize
from pymoo.problems import get_problem

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evofair  # noqa: E402
import evofair.engine.loop as loop  # noqa: E402
from evofair.engine.pymoo_nsga2 import FastNSGA2, binary_tournament  # noqa: E402
from evofair.executors.base import chunks, evaluate_all_splits, merge_metrics  # noqa: E402
from evofair.lifecycle.recipe import read_recipe_file  # noqa: E402
from evofair.store.run_store import RunStore  # noqa: E402
from problems.classic.benchmarks import ZDT1, ZDTParams  # noqa: E402

RECIPE = ROOT / "runs" / "zdt1.yaml"


def best_ms(fn, repeats: int, number: int = 200) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e3


def evaluation(repeats: int) -> tuple[float, float]:
    problem, X = ZDT1(ZDTParams()), np.random.default_rng(1).random((100, 30))

    def chunked():
        per = [{s: problem.evaluate(X[c], s) for s in ("val", "test")} for c in chunks(len(X), 32)]
        return merge_metrics(per)

    return best_ms(chunked, repeats), best_ms(lambda: merge_metrics([evaluate_all_splits(problem, X)]), repeats)


def optimum(repeats: int) -> tuple[float, float]:
    alg = minimize(get_problem("zdt1"), NSGA2(pop_size=100), ("n_gen", 20), seed=1).algorithm
    fast = FastNSGA2(pop_size=100)
    fast.pop = alg.pop
    return best_ms(alg._set_optimum, repeats), best_ms(fast._set_optimum, repeats)


def tournament(repeats: int) -> tuple[float, float]:
    """One mating round's tournaments (50 matings x 2 parents) on a population after 20 generations."""
    alg = minimize(get_problem("zdt1"), NSGA2(pop_size=100), ("n_gen", 20), seed=1).algorithm
    P = np.random.default_rng(1).integers(0, 100, (100, 2))
    return (
        best_ms(lambda: pymoo_tournament(alg.pop, P, alg), repeats),
        best_ms(lambda: binary_tournament(alg.pop, P, alg), repeats),
    )


@contextlib.contextmanager
def default_collector(young_threshold=None):
    """What the engine did before `steps_unscanned`: CPython's threshold, the heap frozen per step."""
    gc.freeze()
    try:
        yield lambda seconds: (gc.unfreeze(), gc.freeze())
    finally:
        gc.unfreeze()


def collector_seconds(out: Path, unscanned: bool) -> tuple[float, int]:
    """Seconds the collector ran inside one evofair run of ZDT1, and the objects it freed."""
    spent, started, freed = [0.0], [0.0], [0]

    def watch(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            freed[0] += info["collected"]

    engine_way = loop.steps_unscanned
    loop.steps_unscanned = engine_way if unscanned else default_collector
    gc.callbacks.append(watch)
    try:
        evofair.run(read_recipe_file(RECIPE), out, progress=False)
    finally:
        gc.callbacks.remove(watch)
        loop.steps_unscanned = engine_way
    return spent[0], freed[0]


#: (label, object, attribute) of the parts `run_split` times
SPLIT = (
    ("pymoo ask + tell", "backend", "ask"),
    ("pymoo ask + tell", "backend", "tell"),
    ("make and evaluate individuals", "loop", "realise_generation"),
    ("commit_generation", "store", "commit_generation"),
    ("report", "api", "write_report"),
)


@contextlib.contextmanager
def timed_parts(totals: dict[str, float]):
    """Wrap each part of SPLIT so its seconds add up in `totals` under its label."""
    import evofair.api as api
    from evofair.engine.pymoo_backend import PymooBackend

    owners = {"backend": PymooBackend, "loop": loop, "store": RunStore, "api": api}
    saved = []
    for label, owner, attr in SPLIT:
        obj = owners[owner]
        fn = getattr(obj, attr)
        saved.append((obj, attr, fn))

        def wrapper(*a, _fn=fn, _label=label, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                totals[_label] = totals.get(_label, 0.0) + time.perf_counter() - t

        setattr(obj, attr, wrapper)
    try:
        yield
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)


def run_split(tmp: Path, repeats: int) -> dict[str, float]:
    """Median seconds per part of an evofair run of ZDT1, of the whole run, and of plain pymoo's."""
    per: dict[str, list[float]] = {}
    for rep in range(repeats):
        t = time.perf_counter()
        minimize(get_problem("zdt1", n_var=30), NSGA2(pop_size=100), ("n_gen", 200), seed=1)
        per.setdefault("plain pymoo (whole run)", []).append(time.perf_counter() - t)
        totals: dict[str, float] = {}
        with timed_parts(totals):
            t = time.perf_counter()
            evofair.run(read_recipe_file(RECIPE), tmp / f"split{rep}", progress=False)
            totals["evofair.run (whole run)"] = time.perf_counter() - t
        for label, seconds in totals.items():
            per.setdefault(label, []).append(seconds)
    return {label: statistics.median(v) for label, v in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    long, short = evaluation(args.repeats)
    print(f"evaluate a generation of 100: 4 chunks x 2 splits {long:.3f} ms, once {short:.3f} ms")
    long, short = optimum(args.repeats)
    print(f"NSGA-II _set_optimum: pymoo {long:.3f} ms, FastNSGA2 {short:.3f} ms")
    long, short = tournament(args.repeats)
    print(f"NSGA-II binary tournament of 100 pairs: pymoo {long:.3f} ms, FastNSGA2 {short:.3f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        evofair.run(read_recipe_file(RECIPE), Path(tmp) / "warm", progress=False)
        runs: dict[str, list[tuple[float, int]]] = {way: [] for way in ("default", "unscanned")}
        for rep in range(args.repeats):
            for way in runs:
                runs[way].append(collector_seconds(Path(tmp) / f"{way}{rep}", way == "unscanned"))
        print(
            f"collector inside a run: CPython's way {min(runs['default'])[0]:.3f} s, "
            f"steps_unscanned {min(runs['unscanned'])[0]:.3f} s (best of {args.repeats}); "
            f"cyclic garbage freed in a run the first way: {runs['default'][0][1]} objects"
        )
        store = RunStore(Path(tmp) / "warm", readonly=True)
        try:
            full, stats = best_ms(store.generations, args.repeats, 5), best_ms(store.generation_stats, args.repeats, 5)
        finally:
            store.close()
        print(f"read 200 generations: generations() {full:.1f} ms, generation_stats() {stats:.1f} ms")
        split = run_split(Path(tmp), args.repeats)
        print(
            f"a run's parts (median of {args.repeats} runs): " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items())
        )


if __name__ == "__main__":
    main()
