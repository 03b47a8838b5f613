"""The shortcuts that keep a cheap vector problem cheap give what the long way gives: NSGA-II's
optimum read directly, its binary tournament on arrays (same winners, same random draws), the engine state stored as columns (and read in its older per-member form),
deterministic row-wise test problems evaluated once per generation, and a collector that leaves
the survivors of cheap steps unscanned but still frees what slow steps leave behind."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga2 import binary_tournament as pymoo_tournament
from pymoo.core.population import Population
from pymoo.optimize import minimize
from pymoo.problems import get_problem

import evofair
from evofair.core.heap import CHEAP_STEP_SECONDS, YOUNG_THRESHOLD, steps_unscanned
from evofair.engine import pymoo_backend
from evofair.engine.pymoo_backend import PymooBackend
from evofair.engine.pymoo_nsga2 import FastNSGA2, binary_tournament
from evofair.executors.base import chunks, evaluate_all_splits, merge_metrics
from evofair.executors.serial import SerialExecutor
from evofair.lifecycle.recipe import parse_recipe
from evofair.store.run_store import RunStore
from problems.classic.benchmarks import DTLZ2, ZDT1, ZDT2, ZDT3, DTLZParams, ZDTParams


def _population(F: np.ndarray, G: np.ndarray, rank: list[int]) -> Population:
    pop = Population.new("X", np.zeros((len(F), 2)), "F", F, "G", G, "H", np.zeros((len(F), 0)))
    pop.set("rank", np.asarray(rank))
    return pop


@pytest.mark.parametrize("feasible", [True, False])
def test_fast_optimum_is_pymoos(feasible):
    """Same members as pymoo's own NSGA-II `_set_optimum`, with a feasible member and without."""
    rng = np.random.default_rng(4)
    F = rng.random((12, 2))
    G = rng.random((12, 1)) - (0.5 if feasible else -0.1)  # G ≤ 0 is feasible
    rank = list(rng.integers(0, 3, 12))
    ours, theirs = FastNSGA2(pop_size=12), NSGA2(pop_size=12)
    for alg in (ours, theirs):
        alg.pop = _population(F, G, rank)
        alg._set_optimum()
    got, want = ours.opt.get("F"), theirs.opt.get("F")
    assert len(want) == (sum(r == 0 for r in rank) if feasible else 1)
    np.testing.assert_array_equal(got, want)


class _Algorithm:
    """What the tournament reads from the algorithm: its generator and the tournament type."""

    tournament_type = "comp_by_dom_and_crowding"

    def __init__(self, seed: int):
        self.random_state = np.random.default_rng(seed)


def _tied_population(n: int, seed: int) -> Population:
    """Members built to hit every branch and every tie: duplicated objective rows (neither
    dominates), infinite and NaN crowding distances, equal and unequal constraint violations."""
    rng = np.random.default_rng(seed)
    F = rng.integers(0, 3, (n, 2)).astype(float)  # few distinct values: many duplicates
    G = np.where(rng.random((n, 1)) < 0.3, rng.integers(0, 2, (n, 1)) * 0.5 + 0.5, -1.0)
    pop = Population.new("X", np.zeros((n, 2)), "F", F, "G", G, "H", np.zeros((n, 0)))
    pop.set("rank", rng.integers(0, 3, n))
    pop.set("crowding", rng.choice([0.1, 0.5, np.inf, np.nan], n))
    return pop


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_array_tournament_is_pymoos(seed):
    """Same winner for every pair as pymoo's loop, and the generator left in the same state (so
    every later draw of the run is the same too): ties are broken by the same calls in order."""
    pop = _tied_population(40, seed)
    P = np.random.default_rng(seed + 10).integers(0, 40, (300, 2))
    ours, theirs = _Algorithm(seed), _Algorithm(seed)
    got = binary_tournament(pop, P, ours)
    want = pymoo_tournament(pop, P, theirs)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and got.shape == want.shape == (300, 1)
    assert ours.random_state.bit_generator.state == theirs.random_state.bit_generator.state


@pytest.mark.parametrize("name", ["zdt1", "tnk"])  # tnk: constrained, so infeasible pairs occur
def test_fast_nsga2_run_is_pymoos(name):
    """A whole pymoo run with FastNSGA2 gives pymoo's NSGA-II front, value for value."""
    problem = get_problem(name)
    ours = minimize(problem, FastNSGA2(pop_size=40), ("n_gen", 30), seed=3)
    theirs = minimize(problem, NSGA2(pop_size=40), ("n_gen", 30), seed=3)
    np.testing.assert_array_equal(ours.pop.get("X"), theirs.pop.get("X"))
    np.testing.assert_array_equal(ours.F, theirs.F)


def _zdt_backend(zdt_recipe) -> tuple[PymooBackend, ZDT1]:
    return PymooBackend(parse_recipe(zdt_recipe), ZDT1(ZDTParams(n_var=10))), ZDT1(ZDTParams(n_var=10))


def _advance(backend: PymooBackend, problem, generations: int) -> None:
    for g in range(generations):
        items = backend.ask()
        F = problem.minimised(problem.evaluate(items, "val"))
        backend.tell(items, F, [f"g{g}i{i}" for i in range(len(items))])


def _old_state(state: dict) -> dict:
    """The state as written before the columns: one dict per member (`_member_json`)."""
    columns = state.pop("pop_columns")
    state["pop_data"] = [dict(zip(columns, row)) for row in zip(*columns.values())]
    return state


@pytest.mark.parametrize("form", ["columns", "per member"])
def test_state_restores_the_same_next_generation(zdt_recipe, form):
    """A backend rebuilt from the stored population and its state (either form) asks for exactly
    the offspring the original asks for next."""
    original, problem = _zdt_backend(zdt_recipe)
    _advance(original, problem, 3)
    state = original.state()
    assert "pop_columns" in state and "pop_data" not in state
    assert state["pop_columns"]["rank"] == [int(ind.data["rank"]) for ind in original.algorithm.pop]
    ids, F = original.population()
    items = [ind.X for ind in original.algorithm.pop]
    rebuilt, _ = _zdt_backend(zdt_recipe)
    rebuilt.restore(items, F, ids, state if form == "columns" else _old_state(state))
    for a, b in zip(original.algorithm.pop, rebuilt.algorithm.pop):
        assert {k: v for k, v in a.data.items()} == {k: v for k, v in b.data.items()}
    np.testing.assert_array_equal(np.asarray(original.ask()), np.asarray(rebuilt.ask()))


def test_mixed_member_data_falls_back_to_per_member_dicts():
    pop = Population.new("X", np.zeros((3, 2)))
    for ind, v in zip(pop, [1, 2.5, "x"]):
        ind.data["note"] = v
    state = pymoo_backend._members_state(pop)
    assert state == {"pop_data": [{"note": 1}, {"note": 2.5}, {"note": "x"}]}
    assert pymoo_backend._members_data(state) == [{"note": 1}, {"note": 2.5}, {"note": "x"}]


@pytest.mark.parametrize(
    "problem",
    [ZDT1(ZDTParams(n_var=7)), ZDT2(ZDTParams(n_var=7)), ZDT3(ZDTParams(n_var=7)), DTLZ2(DTLZParams())],
    ids=lambda p: p.name,
)
def test_rowwise_problems_evaluate_once_as_in_chunks(problem, monkeypatch):
    """pymoo's test problems are row-wise and deterministic: one call for a whole generation gives,
    bit for bit, what `eval_chunk`-sized calls per split give, and test equals val."""
    X = np.random.default_rng(1).random((50, problem.n_var))
    by_chunks = merge_metrics([{s: problem.evaluate(X[c], s) for s in ("val", "test")} for c in chunks(len(X), 16)])
    calls = []
    monkeypatch.setattr(problem, "evaluate", lambda g, split, f=problem.evaluate: calls.append(split) or f(g, split))
    executor = SerialExecutor(eval_chunk=16)
    executor.problem = problem
    once = executor.evaluate(X)
    assert calls == ["val"]
    for split in ("val", "test"):
        for name, values in by_chunks[split].items():
            np.testing.assert_array_equal(once[split][name], values)
    truth = get_problem(problem.pymoo_name, n_var=problem.n_var).evaluate(X, return_values_of=["F"])
    np.testing.assert_array_equal(np.column_stack(list(once["test"].values())), truth)
    assert evaluate_all_splits(problem, X[:3])["test"].keys() == {o.name for o in problem.objectives}


class _Node:
    """A reference cycle with a weakref-able member, to watch the collector."""

    def __init__(self):
        self.me = self


def test_steps_unscanned_freezes_cheap_survivors_and_collects_slow_steps():
    """A cheap step's survivors are frozen unscanned; a slow step's cycles are collected before its
    survivors are frozen; afterwards everything is collectable and CPython's thresholds are back."""
    before = gc.get_threshold()
    with steps_unscanned() as step_done:
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        cheap = weakref.ref(_Node())  # cyclic garbage of a cheap step: frozen, not collected
        frozen = gc.get_freeze_count()
        step_done(0.0)
        assert gc.get_freeze_count() > frozen and cheap() is not None
        slow = weakref.ref(_Node())
        step_done(CHEAP_STEP_SECONDS * 10)
        assert slow() is None  # collected before the freeze
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.collect()
    assert cheap() is None
    with steps_unscanned(None) as step_done:  # steps that train models: CPython's threshold
        assert gc.get_threshold() == before
        kept = weakref.ref(_Node())
        step_done(CHEAP_STEP_SECONDS * 10)  # frozen as it is: the young collections run as usual
        assert gc.get_freeze_count() > 0 and kept() is not None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert kept() is None


def test_generation_stats_are_the_generation_rows_without_population_and_state(tmp_path, zdt_recipe):
    """What history.csv is written from: every generation's stats, equal to the full rows' own."""
    evofair.run(zdt_recipe, tmp_path / "run", progress=False)
    store = RunStore(tmp_path / "run", readonly=True)
    try:
        full, stats = store.generations(), store.generation_stats()
    finally:
        store.close()
    keys = ("generation", "hv_val", "n_front", "evaluations", "seconds")
    assert stats == [{k: g[k] for k in keys} for g in full] and len(stats) == zdt_recipe["algorithm"]["generations"]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == len(stats) + 1 and history[-1].startswith(f"{stats[-1]['generation']},")
