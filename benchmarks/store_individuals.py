"""`RunStore.individuals(ids)`: reading only the requested rows vs loading the table and filtering.

The baseline is the previous implementation (full scan of individuals, metrics and lineage, then
a dict lookup per id), kept here verbatim. Both run in the same process on the same run
directory, alternating, best of `--repeats`. Measured: one population lookup (the last
generation's ids, as report.py and resume do) and the whole `write_report` (which asks for the
population once and for every individual twice).

    .venv/bin/python benchmarks/store_individuals.py [--run DIR | --recipe runs/zdt1.yaml] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from evofair.core.individual import Individual
from evofair.store.run_store import RunStore


def full_scan_individuals(store: RunStore, ids=None) -> list[Individual]:
    """The baseline: the pre-change implementation."""
    rows = store._db.execute(
        "SELECT id, generation, seed, operator, weights_hash, x FROM individuals ORDER BY id"
    ).fetchall()
    metrics: dict = {}
    for ind, split, name, value in store._db.execute("SELECT individual, split, name, value FROM metrics"):
        metrics.setdefault(ind, {}).setdefault(split, {})[name] = float("nan") if value is None else value
    parents: dict = {}
    for child, parent in store._db.execute("SELECT child, parent FROM lineage ORDER BY child, position"):
        parents.setdefault(child, []).append(parent)
    out = {
        r[0]: Individual(
            id=r[0],
            generation=r[1],
            seed=r[2],
            operator=json.loads(r[3]),
            weights_hash=r[4],
            x=None if r[5] is None else tuple(json.loads(r[5])),
            parents=tuple(parents.get(r[0], ())),
            metrics=metrics.get(r[0], {}),
        )
        for r in rows
    }
    if ids is None:
        return list(out.values())
    return [out[i] for i in ids]


class BaselineStore(RunStore):
    def individuals(self, ids=None):
        return full_scan_individuals(self, ids)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", help="an existing run directory (default: run --recipe first)")
    parser.add_argument("--recipe", default="runs/zdt1.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import evofair
    from evofair.analysis.report import write_report
    from evofair.api import build_problem
    from evofair.lifecycle.recipe import load_recipe

    tmp = tempfile.TemporaryDirectory()
    run = Path(args.run) if args.run else Path(tmp.name) / "run"
    if not args.run:
        print(f"running {args.recipe} into {run} ...")
        evofair.run(load_recipe(args.recipe), run, progress=False)
    recipe = load_recipe(run / "config.yaml")
    problem = build_problem(recipe)
    new, old = RunStore(run, readonly=True), BaselineStore(run, readonly=True)
    n_all = len(new.individuals())
    pop = new.last_generation()["population"]
    assert new.individuals(pop) == old.individuals(pop), "results differ"
    assert new.individuals() == old.individuals(), "results differ"

    t_old = t_new = r_old = r_new = float("inf")
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        t_old = min(t_old, best(lambda: old.individuals(pop), 1))
        t_new = min(t_new, best(lambda: new.individuals(pop), 1))
        with tempfile.TemporaryDirectory() as out:
            r_old = min(r_old, best(lambda: write_report(old, problem, recipe, Path(out)), 1))
        with tempfile.TemporaryDirectory() as out:
            r_new = min(r_new, best(lambda: write_report(new, problem, recipe, Path(out)), 1))
    print(f"store: {n_all} individuals; population lookup of {len(pop)} ids; best of {args.repeats}")
    print(f"individuals(ids)  baseline {t_old * 1e3:9.1f} ms   new {t_new * 1e3:9.1f} ms   ratio {t_old / t_new:7.1f}x")
    print(f"write_report      baseline {r_old:9.2f} s    new {r_new:9.2f} s    ratio {r_old / r_new:7.2f}x")


if __name__ == "__main__":
    main()
