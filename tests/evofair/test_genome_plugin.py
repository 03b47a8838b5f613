"""A new representation from a third party: one genome file plus its entry point, run from a YAML
recipe through the CLI, without touching evofair's files.

The temporary package announces a permutation genome (`evofair.genome`), a bi-objective tour
problem that names that genome by its entry-point name, and pymoo's order crossover and inversion
mutation as `vector_crossover`/`vector_mutation` components. Oracles: every stored individual is a
permutation of the cities (the genome's sampling and pymoo's permutation operators keep it one, SBX
would not); each stored objective equals the tour length recomputed here from the stored order; a
second run with the same recipe gives the same front byte for byte; the DEAP backend refuses the
genome with one line before writing anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from evofair.store.run_store import RunStore

EVOFAIR = Path(sys.executable).with_name("evofair")

GENOME = '''
import numpy as np

from evofair.core.genome import ArrayGenome


class Permutation(ArrayGenome):
    """Orderings of the problem's n_var items."""

    name = "permutation"
    vtype = int

    def bounds(self, problem):
        n = self.n_var(problem)
        return np.zeros(n), np.full(n, n - 1.0)

    def sample(self, problem, rng, n):
        return np.array([rng.permutation(self.n_var(problem)) for _ in range(n)])
'''

TOURS = '''
import numpy as np
from pydantic import Field
from pymoo.operators.crossover.ox import OrderCrossover
from pymoo.operators.mutation.inversion import InversionMutation

from evofair import Args, Objective, VectorProblem, component

CITIES = np.random.default_rng(7).random((2, 7, 2))  # two maps of the same 7 cities


def tour_length(order, points):
    p = points[np.asarray(order)]
    return float(np.linalg.norm(p - np.roll(p, -1, axis=0), axis=1).sum())


class TwoMapTour(VectorProblem):
    """Visit 7 cities once: short on map A and short on map B."""

    genome = "permutation"
    objectives = (Objective("a"), Objective("b"))
    n_var = 7
    default_hv_ref = (10.0, 10.0)

    def evaluate(self, genomes, split):
        return {"a": np.array([tour_length(g, CITIES[0]) for g in genomes]),
                "b": np.array([tour_length(g, CITIES[1]) for g in genomes])}


class InversionArgs(Args):
    prob: float = Field(1.0, ge=0, le=1)


@component("vector_crossover", "ox")
def ox(args):
    """pymoo's order crossover: children stay permutations."""
    return OrderCrossover()


@component("vector_mutation", "inversion", InversionArgs)
def inversion(args):
    """pymoo's inversion mutation: reverses one segment."""
    return InversionMutation(prob=args.prob)
'''

ENTRY_POINTS = """\
[evofair.genome]
permutation = efplug_tours.genomes:Permutation

[evofair.problem]
two_map_tour = efplug_tours.tours:TwoMapTour

[evofair.vector_crossover]
ox = efplug_tours.tours:ox

[evofair.vector_mutation]
inversion = efplug_tours.tours:inversion
"""

RECIPE = {
    "name": "tours",
    "seed": 5,
    "problem": {"name": "two_map_tour"},
    "algorithm": {"name": "nsga2", "pop_size": 10, "generations": 4},
    "operators": {"crossover": {"name": "ox"}, "mutation": {"name": "inversion", "args": {"prob": 0.5}}},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin package and its dist-info, as site-packages would hold them."""
    root = tmp_path_factory.mktemp("site")
    (root / "efplug_tours").mkdir()
    (root / "efplug_tours" / "__init__.py").write_text("")
    (root / "efplug_tours" / "genomes.py").write_text(GENOME)
    (root / "efplug_tours" / "tours.py").write_text(TOURS)
    info = root / "efplug_tours-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: efplug-tours\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def run_cli(site: Path, tmp: Path, recipe: dict, out: str) -> subprocess.CompletedProcess:
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), EVOFAIR_CACHE=str(tmp / "cache"))
    return subprocess.run(
        [str(EVOFAIR), "run", str(path), "--out", str(tmp / out), "--quiet"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_permutation_genome_from_a_plugin_runs_from_a_recipe(site, tmp_path):
    first = run_cli(site, tmp_path, RECIPE, "first")
    assert first.returncode == 0, first.stderr
    store = RunStore(tmp_path / "first", readonly=True)
    try:
        inds = store.individuals()
    finally:
        store.close()
    assert len(inds) == 40
    orders = np.array([ind.x for ind in inds])
    assert (np.sort(orders, axis=1) == np.arange(7)).all()  # every individual is a permutation
    sys.path.insert(0, str(site))
    try:
        from efplug_tours.tours import CITIES, tour_length
    finally:
        sys.path.remove(str(site))
    for ind in inds:
        assert ind.metrics["val"]["a"] == pytest.approx(tour_length(np.asarray(ind.x, dtype=int), CITIES[0]), rel=1e-12)
        assert ind.metrics["test"]["b"] == pytest.approx(
            tour_length(np.asarray(ind.x, dtype=int), CITIES[1]), rel=1e-12
        )
    assert len({tuple(o) for o in orders[10:]}) > 1  # variation made new orders
    second = run_cli(site, tmp_path, RECIPE, "second")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "first" / "front.csv").read_bytes() == (tmp_path / "second" / "front.csv").read_bytes()


def test_deap_refuses_the_permutation_genome_in_one_line(site, tmp_path):
    recipe = {**RECIPE, "algorithm": {**RECIPE["algorithm"], "backend": "deap"}}
    proc = run_cli(site, tmp_path, recipe, "deap")
    assert proc.returncode == 2, proc.stderr
    assert "'permutation' genome needs algorithm.backend: pymoo" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "deap").exists()
