"""The explorer's data layer, figures and cards against independent oracles: the reader's
`final_front` (via `evofair.analysis.report`), the CSVs the report wrote, raw SQLite queries of the
store, pymoo's HV, and hand-built cases. Export, the static report and the no-writes guarantee:
test_explorer_export.py; the HTTP surface: test_explorer_limits.py; a real browser:
test_explorer_browser.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from explorer_runs import constrained_run, read_csv, toy_run, walk_layout
from pymoo.indicators.hv import HV

from evofair.analysis.report import final_front
from evofair.core.individual import Individual
from evofair.errors import UserError
from evofair.explorer import Constraint, RunData, Snapshot
from evofair.explorer.model_card import model_card_data
from evofair.store.run_store import RunStore


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return toy_run(tmp_path_factory)


@pytest.fixture(scope="module")
def data(run_dir) -> RunData:
    return RunData(run_dir)


@pytest.fixture(scope="module")
def constrained_dir(tmp_path_factory) -> Path:
    return constrained_run(tmp_path_factory)


# -- fronts, HV --------------------------------------------------------------------------------
def test_front_ids_equal_report_final_front_and_front_csv(run_dir, data):
    from evofair.api import build_problem
    from evofair.lifecycle.recipe import load_recipe

    problem = build_problem(load_recipe(run_dir / "config.yaml"))
    store = RunStore(run_dir, readonly=True)
    try:
        expected = [i.id for i in final_front(store, problem)]
    finally:
        store.close()
    snap = data.refresh()
    assert sorted(i.id for i in snap.front()) == sorted(expected)
    assert sorted(i.id for i in snap.front()) == sorted(r["id"] for r in read_csv(run_dir / "front.csv"))
    # every earlier generation: the engine's own count of non-dominated members (history.csv)
    for row in read_csv(run_dir / "history.csv"):
        assert len(snap.front(int(row["generation"]))) == int(row["n_front"])


def test_hv_history_matches_engine_and_pymoo(run_dir, data):
    snap = data.refresh()
    history = {int(r["generation"]): float(r["hv_val"]) for r in read_csv(run_dir / "history.csv")}
    ref = np.array([0.6, 0.6])  # toy_mlp's default_hv_ref
    for h in snap.hv_history():
        assert h["hv_val"] == pytest.approx(history[h["generation"]], abs=1e-12)
        F = np.array([[i.metrics["test"]["error"], i.metrics["test"]["gap"]] for i in snap.front(h["generation"])])
        F = F[np.all(F < ref, axis=1)]
        assert h["hv_test"] == pytest.approx(float(HV(ref_point=ref)(F)) if len(F) else 0.0, abs=1e-12)


# -- constraints ---------------------------------------------------------------------------------
def test_constraint_parse():
    assert Constraint.parse("error <= 0.10") == Constraint("error", "<=", 0.10)
    assert Constraint.parse("error ≤ 0.1") == Constraint("error", "<=", 0.1)
    assert Constraint.parse(" auc >= 0.8 ") == Constraint("auc", ">=", 0.8)
    for bad in ("error < 0.1", "error <= x", "error"):
        with pytest.raises(UserError, match="constraint"):
            Constraint.parse(bad)


def test_constraint_filter_on_the_front_matches_front_csv(run_dir, data):
    snap = data.refresh()
    rows = read_csv(run_dir / "front.csv")
    distinct = sorted({float(r["error_val"]) for r in rows})
    assert len(distinct) >= 2
    bound = distinct[len(distinct) // 2 - 1]  # keeps the lower half of the error values
    expected = sorted(
        (r for r in rows if float(r["error_val"]) <= bound),
        key=lambda r: (float(r["gap_val"]), float(r["error_val"]), r["id"]),
    )
    got = snap.satisfying(snap.front(), [Constraint("error", "<=", bound)], "val")  # ranks by gap
    assert [i.id for i in got] == [r["id"] for r in expected]
    assert 0 < len(got) < len(rows)
    # two constraints: the intersection; an impossible one: nothing
    gap_bound = float(expected[0]["gap_val"])
    both = snap.satisfying(snap.front(), [Constraint("error", "<=", bound), Constraint("gap", "<=", gap_bound)], "val")
    assert {i.id for i in both} == {r["id"] for r in expected if float(r["gap_val"]) <= gap_bound}
    assert snap.satisfying(snap.front(), [Constraint("error", "<=", -1)], "val") == []


def _ind(iid, gen, parents=(), op=None, **metrics):
    return Individual(
        id=iid,
        generation=gen,
        parents=tuple(parents),
        operator=op or {"init": {"name": "init", "args": {}, "seed": 1}},
        metrics={"val": metrics},
    )


def test_constraints_respect_directions_hand_computed():
    # objectives: acc (max), gap (min). acc >= 0.8 keeps a, b, d; ranked by gap ascending: d, b, a.
    inds = [
        _ind("a", 0, acc=0.9, gap=0.30),
        _ind("b", 0, acc=0.85, gap=0.10),
        _ind("c", 0, acc=0.7, gap=0.0),
        _ind("d", 0, acc=0.8, gap=0.05),
        _ind("e", 0, acc=float("nan"), gap=0.0),
    ]
    snap = Snapshot(
        [
            {
                "generation": 0,
                "population": [i.id for i in inds],
                "hv_val": None,
                "n_front": None,
                "evaluations": 5,
                "seconds": 0.0,
            }
        ],
        {i.id: i for i in inds},
        (("acc", "max"), ("gap", "min")),
        None,
    )
    got = snap.satisfying(inds, [Constraint("acc", ">=", 0.8)], "val")
    assert [i.id for i in got] == ["d", "b", "a"]
    ranked_by_acc = snap.satisfying(inds, [Constraint("gap", "<=", 0.1)], "val", rank_by="acc")
    assert [i.id for i in ranked_by_acc] == ["b", "d", "c", "e"]  # acc descending; an unknown acc ranks last
    assert [i.id for i in snap.satisfying(inds, [Constraint("gap", "<=", 0.0)], "val", rank_by="acc")] == ["c", "e"]
    # front: c dominates e? (acc NaN is not finite → excluded); non-dominated on (-acc, gap): a, b, d, c
    assert sorted(i.id for i in snap.front()) == ["a", "b", "c", "d"]


# -- lineage --------------------------------------------------------------------------------------
def test_lineage_hand_built_chain():
    ties = {
        "crossover": {"name": "ties", "args": {"density": 0.5}, "seed": 7},
        "mutation": {"name": "gaussian", "args": {"sigma": 0.05}, "seed": 8},
    }
    inds = [
        _ind("r1", 0, acc=1, gap=1),
        _ind("r2", 0, acc=1, gap=1),
        _ind("c1", 1, ["r1", "r2"], ties, acc=1, gap=1),
        _ind("c2", 2, ["c1"], {"mutation": {"name": "gaussian", "args": {"sigma": 0.1}, "seed": 9}}, acc=1, gap=1),
    ]
    snap = Snapshot([], {i.id: i for i in inds}, (("acc", "max"), ("gap", "min")), None)
    lin = snap.lineage("c2")
    assert [n["id"] for n in lin["nodes"]] == ["c2", "c1", "r1", "r2"]
    assert sorted(lin["roots"]) == ["r1", "r2"]
    edges = {(e["parent"], e["child"]): e["label"] for e in lin["edges"]}
    assert edges == {
        ("c1", "c2"): "mutation gaussian(sigma=0.1) seed 9",
        ("r1", "c1"): "crossover ties(density=0.5) seed 7; mutation gaussian(sigma=0.05) seed 8",
        ("r2", "c1"): "crossover ties(density=0.5) seed 7; mutation gaussian(sigma=0.05) seed 8",
    }
    short = snap.lineage("c2", max_nodes=2)
    assert short["truncated"] and len(short["nodes"]) == 2


def test_lineage_of_a_front_model_matches_the_lineage_table(run_dir, data):
    snap = data.refresh()
    target = max(snap.front(), key=lambda i: i.generation)
    db = sqlite3.connect(f"file:{run_dir / 'evofair.sqlite'}?mode=ro&immutable=1", uri=True)
    rows = db.execute(
        """WITH RECURSIVE anc(id) AS (SELECT ? UNION SELECT parent FROM lineage JOIN anc ON child = anc.id)
                         SELECT id FROM anc""",
        (target.id,),
    ).fetchall()
    ancestors = {r[0] for r in rows}
    edges = set(
        db.execute(
            f"SELECT parent, child FROM lineage WHERE child IN ({','.join('?' * len(ancestors))})", sorted(ancestors)
        ).fetchall()
    )
    ops = {i: json.loads(o) for i, o in db.execute("SELECT id, operator FROM individuals")}
    db.close()
    lin = snap.lineage(target.id)
    assert {n["id"] for n in lin["nodes"]} == ancestors
    assert {(e["parent"], e["child"]) for e in lin["edges"]} == edges
    assert all(snap.individuals[r].generation == 0 for r in lin["roots"])
    for e in lin["edges"]:  # every label names the child's operators, their arguments and seeds
        for step in ("crossover", "mutation", "refine"):
            if step in ops[e["child"]]:
                rec = ops[e["child"]][step]
                assert f"{step} {rec['name']}(" in e["label"] and f"seed {rec['seed']}" in e["label"]


# -- live reload -----------------------------------------------------------------------------------
def test_refresh_picks_up_a_new_generation(run_dir, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(run_dir, live)
    data = RunData(live)
    before = data.refresh()
    assert data.refresh() is before  # nothing changed: no re-read
    writer = RunStore(live)
    try:
        last = before.generations[-1]
        src = before.individuals[last["population"][0]]
        g = last["generation"] + 1
        new = Individual(
            id=f"g{g:04d}i0000",
            generation=g,
            parents=(src.id,),
            operator={"mutation": {"name": "gaussian", "args": {}, "seed": 5}},
            seed=5,
            weights_hash=src.weights_hash,
            metrics={"val": {"error": 0.0, "gap": 0.0}, "test": {"error": 0.0, "gap": 0.0}},
        )
        writer.commit_generation(
            g, [new], [new.id] + last["population"][1:], {"hv_val": 0.36, "n_front": 1, "evaluations": 99}
        )
        after = data.refresh()
        assert after.version == before.version + 1 and after.last_generation == g
        assert [i.id for i in after.front()] == [new.id]
        assert after.lineage(new.id)["edges"][0]["parent"] == src.id
    finally:
        writer.close()


# -- model cards ------------------------------------------------------------------------------------
def test_problem_model_card_hook_is_used_and_its_errors_are_contained(run_dir):
    """`model_card(individual, store)` rows reach the card (and its HTML); a failing hook is
    reported on the card instead of breaking it."""
    from dash import html

    from evofair.analysis.metrics import confusion_rows
    from evofair.explorer.cards import model_card as render_card
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    class WithCard(ToyMLP):
        def model_card(self, individual, store):
            self.ensure_setup()
            weights = store.get_weights(individual.weights_hash)
            x, y, g = self.data["test"]
            pred = self.build_model(weights)(x).argmax(-1).numpy()
            return {"test split, per group": confusion_rows(pred, y.numpy(), g.numpy(), ["neg", "pos"])}

    class Broken(ToyMLP):
        def model_card(self, individual, store):
            raise RuntimeError("no data here")

    params = ToyParams(n_train=128, n_eval=64)
    data = RunData(run_dir, problem=WithCard(params))
    iid = data.refresh().front()[0].id
    card = model_card_data(data, iid)
    rows = card["problem_card"]["test split, per group"]
    assert card["problem_card_error"] is None and sum(r["n"] for r in rows) == 64  # every test example once
    test_error = 1 - sum(r[f"pred_{r['true']}"] for r in rows) / 64  # correct = predicted its true class
    assert test_error == pytest.approx(card["metrics"]["test"]["error"], abs=1e-12)
    assert isinstance(render_card(data, iid), html.Div)
    broken = model_card_data(RunData(run_dir, problem=Broken(params)), iid)
    assert broken["problem_card"] is None and "no data here" in broken["problem_card_error"]


# -- recipe constraints: feasible vs infeasible in figures, tables, cards and export -------------------
def test_recipe_constraints_in_the_front_and_its_figures(constrained_dir):
    from evofair.explorer.front_figure import front_figure
    from evofair.explorer.front_layers import INFEASIBLE
    from evofair.explorer.history_figures import replay_figure

    data = RunData(constrained_dir)
    snap = data.refresh()
    assert snap.constraints == (Constraint("f1", ">=", 0.5),)
    rows = read_csv(constrained_dir / "front.csv")
    assert sorted(i.id for i in snap.front()) == sorted(r["id"] for r in rows)
    everyone = snap.evaluated()
    infeasible = {i.id for i in everyone if i.metrics["val"]["f1"] < 0.5}  # by hand
    assert infeasible and {i.id for i, ok in zip(everyone, snap.feasible(everyone)) if not ok} == infeasible
    fig = front_figure(snap, x="f1", y="f2", colour=None, split="val", generation=None)
    traces = {t.name: t for t in fig.data}
    assert set(traces[f"{INFEASIBLE}, val"].customdata) == infeasible
    assert not infeasible & set(traces["all evaluated (feasible)"].customdata)
    assert list(traces["front"].marker.symbol) == ["circle"] * len(rows)
    hover = dict(zip(traces[f"{INFEASIBLE}, val"].customdata, traces[f"{INFEASIBLE}, val"].hovertext))
    assert all("violates f1 ≥ 0.5" in h for h in hover.values())
    replay = replay_figure(snap, x="f1", y="f2", split="val")
    assert all(list(f.traces) == [1] and f.data[0].name == "front" for f in replay.frames)  # the front layer only
    assert replay.data[2].name == f"{INFEASIBLE}, val"


def test_model_card_and_export_state_each_constraint(constrained_dir, tmp_path):
    from evofair.explorer.cards import model_card as render_card
    from evofair.explorer.cards import ranking
    from evofair.explorer.export import export_model

    data = RunData(constrained_dir)
    snap = data.refresh()
    bad = next(i for i in snap.evaluated() if i.metrics["val"]["f1"] < 0.5)
    good = snap.front()[0]
    for ind, ok in ((bad, False), (good, True)):
        card = model_card_data(data, ind.id)
        f1 = ind.metrics["val"]["f1"]
        assert card["feasible"] is ok
        assert card["constraints"] == [
            {
                "constraint": "f1 >= 0.5",
                "metric": "f1",
                "op": ">=",
                "bound": 0.5,
                "val": f1,
                "satisfied_val": ok,
                "test": ind.metrics["test"]["f1"],
                "satisfied_test": ok,
            }
        ]
        nodes = list(walk_layout(render_card(data, ind.id)))
        cells = [n for n in nodes if getattr(n, "id", None) == "card-feasible"]
        assert cells and cells[0].to_plotly_json()["props"]["data-feasible"] == str(ok).lower()
        verdicts = [
            n.to_plotly_json()["props"].get("data-satisfied")
            for n in nodes
            if n.to_plotly_json()["props"].get("data-satisfied") is not None
        ]
        assert verdicts == [str(ok).lower()] * 2  # val and test
    exported = json.loads((export_model(constrained_dir, bad.id, tmp_path / "m") / "model_card.json").read_text())
    assert exported["feasible"] is False and exported["constraints"][0]["satisfied_val"] is False
    assert exported["constraints"][0]["val"] == bad.metrics["val"]["f1"]
    table = ranking(snap, snap.evaluated(), len(snap.evaluated()), "val", "f2", True, limit=100)
    marks = {n.to_plotly_json()["props"].get("data-feasible") for n in walk_layout(table)} - {None}
    assert marks == {"true", "false"}


def test_nothing_feasible_front_is_the_least_violating_and_labelled():
    from evofair.explorer.front_figure import front_figure

    inds = [_ind("a", 0, acc=0.9, gap=0.30), _ind("b", 0, acc=0.7, gap=0.10), _ind("c", 0, acc=0.6, gap=0.0)]
    snap = Snapshot(
        [
            {
                "generation": 0,
                "population": ["a", "b", "c"],
                "hv_val": 0.0,
                "n_front": 1,
                "evaluations": 3,
                "seconds": 0.0,
            }
        ],
        {i.id: i for i in inds},
        (("acc", "max"), ("gap", "min")),
        None,
        constraints=(Constraint("acc", ">=", 0.95),),
    )
    assert [i.id for i in snap.front()] == ["a"]  # violation 0.05, the smallest (pymoo's opt)
    assert list(snap.violation(inds)) == pytest.approx([0.05, 0.25, 0.35])
    fig = front_figure(snap, x="acc", y="gap", colour=None, split="val", generation=None)
    front = next(t for t in fig.data if t.name.startswith("front"))
    assert front.name == "front: least violating (nothing feasible)" and list(front.marker.symbol) == ["x"]
