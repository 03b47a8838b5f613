"""Shortcuts that must not change results: the writer serving reads of what it committed from
memory, and the static report's replay holding each generation's front only.

Oracles: the index read back by a separate read-only store, and the report files it writes."""

import math

import numpy as np

import evofair
from evofair.analysis.report import write_report
from evofair.analysis.run_reader import open_store
from evofair.core.individual import array_individual
from evofair.engine.loop import Engine
from evofair.executors.serial import SerialExecutor
from evofair.explorer.data import RunData
from evofair.explorer.history_figures import replay_figure
from evofair.lifecycle.rebuild import build_problem
from evofair.lifecycle.recipe import parse_recipe
from evofair.store.columns import Batch
from evofair.store.run_store import RunStore


def test_writer_reads_what_the_index_reads(tmp_path, zdt_recipe):
    recipe = parse_recipe(zdt_recipe)
    problem = build_problem(recipe).ensure_setup()
    with SerialExecutor(recipe.executor.eval_chunk) as executor:
        executor.start(None, problem)
        store = RunStore(tmp_path)
        Engine(recipe, problem, store, executor, progress=False).run()
        index = RunStore(tmp_path, readonly=True)
        everyone = index.individuals()
        assert len(everyone) == 100 and store._committed is not None  # the memory copy answered
        assert store.individuals() == everyone  # every field, in the index's order
        some = [everyone[57].id, everyone[3].id, everyone[57].id]
        assert store.individuals(some) == index.individuals(some)
        index.close()
        store.close()


def test_an_infinite_metric_sends_reads_to_the_index(tmp_path):
    store = RunStore(tmp_path)
    ids = ["g0000i0000", "g0000i0001"]
    made = [
        array_individual(i, 0, k, (0.5, float(k)), {"val": {"f": v}})
        for k, (i, v) in enumerate(zip(ids, [1.0, math.inf]))
    ]
    batch = Batch(
        0, ids, np.array([0, 1]), np.array([[0.5, 0.0], [0.5, 1.0]]), [("val", "f", np.array([1.0, math.inf]))]
    )
    store.commit_generation(0, made, ids, {"hv_val": None}, None, batch)
    back = store.individuals()
    assert back[0].metrics == {"val": {"f": 1.0}} and math.isnan(back[1].metrics["val"]["f"])  # stored as NaN
    assert back[1].x == (0.5, 1.0) and back[1].seed == 1
    store.close()


def test_report_from_memory_equals_report_from_the_index(tmp_path, zdt_recipe):
    run = tmp_path / "run"
    evofair.run(zdt_recipe, run, progress=False)
    recipe = parse_recipe(zdt_recipe)
    with open_store(run) as index:
        write_report(index, build_problem(recipe), recipe, tmp_path / "again")
    for name in ("front.csv", "archive.csv", "history.csv"):
        assert (run / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_replay_frames_hold_each_generation_front_only(tmp_path, zdt_recipe):
    run = tmp_path / "run"
    evofair.run(zdt_recipe, run, progress=False)
    snap = RunData(run).refresh()
    fig = replay_figure(snap, x="f1", y="f2", split="val")
    assert sorted(fig.data[0].customdata) == sorted(i.id for i in snap.evaluated())  # the whole run, once
    assert [f.name for f in fig.frames] == [str(g) for g in range(5)]
    for g, frame in enumerate(fig.frames):
        assert list(frame.traces) == [1] and len(frame.data) == 1
        front = sorted(snap.front(g), key=lambda i: i.metrics["val"]["f1"])
        assert list(frame.data[0].customdata) == [i.id for i in front]
        assert list(frame.data[0].y) == [i.metrics["val"]["f2"] for i in front]
