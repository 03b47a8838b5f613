"""The explorer's front figure for a run of three objectives (DTLZ2): a scatter matrix whose panels
hold exactly front.csv's models at front.csv's values, no zig-zag line; the hypervolume title below
the toolbar strip; the legend marking a baseline that reads the group at prediction time."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from explorer_runs import read_csv

import evofair
from evofair.explorer import RunData
from evofair.explorer.front_figure import front_figure
from evofair.explorer.front_layers import add_baselines
from evofair.explorer.front_matrix import panels
from evofair.explorer.history_figures import TOOLBAR_PX, hv_figure, replay_figure
from evofair.store.run_store import RunStore

DTLZ2 = {
    "name": "dtlz2-small",
    "problem": {"name": "dtlz2", "args": {"n_var": 6}},
    "algorithm": {"pop_size": 12, "generations": 3},
    "seed": 4,
}


@pytest.fixture(scope="module")
def dtlz2_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dtlz2") / "run"
    evofair.run(DTLZ2, out, progress=False)
    return out


def test_three_objectives_are_drawn_as_a_scatter_matrix_of_front_csv(dtlz2_run):
    snap = RunData(dtlz2_run).refresh()
    fig = front_figure(snap, x="f1", y="f2", colour=None, split="val", generation=None)
    rows = {r["id"]: r for r in read_csv(dtlz2_run / "front.csv")}
    cells = panels(["f1", "f2", "f3"])
    assert [(x, y) for _, _, x, y in cells] == [("f1", "f2"), ("f1", "f3"), ("f2", "f3")]
    fronts = [t for t in fig.data if t.name == "front"]
    assert len(fronts) == 3 and all(t.mode == "markers" for t in fronts)  # no line through a surface
    for trace, (_, _, x, y) in zip(fronts, cells):
        assert sorted(trace.customdata) == sorted(rows)
        for iid, a, b in zip(trace.customdata, trace.x, trace.y):
            assert (a, b) == (float(rows[iid][f"{x}_val"]), float(rows[iid][f"{y}_val"]))
    store = RunStore(dtlz2_run, readonly=True)
    everyone = sorted(i.id for i in store.individuals())
    store.close()
    evaluated = [t for t in fig.data if t.name == "all evaluated"]
    assert len(evaluated) == 3 and all(sorted(t.customdata) == everyone for t in evaluated)
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert shown == ["all evaluated", "front"]  # one legend entry per layer
    replay = replay_figure(snap, x="f1", y="f2", split="val")
    # the evaluated layer stays put; each frame replaces the front layer in every panel
    assert [t.name for t in replay.data[:6]] == ["all evaluated"] * 3 + ["front"] * 3
    assert all(list(f.traces) == [3, 4, 5] for f in replay.frames)
    assert all([t.name for t in f.data] == ["front"] * 3 for f in replay.frames)
    for trace, (_, _, x, y) in zip(replay.frames[-1].data, cells):  # the last generation's front is front.csv
        assert sorted(trace.customdata) == sorted(rows)
        assert sorted(trace.x) == sorted(float(r[f"{x}_val"]) for r in rows.values())
        assert sorted(trace.y) == sorted(float(r[f"{y}_val"]) for r in rows.values())


def test_hypervolume_title_sits_below_the_toolbar_strip(dtlz2_run):
    snap = RunData(dtlz2_run).refresh()
    layout = hv_figure(snap).layout
    title_top_px = (1 - layout.title.y) * layout.height  # container coordinates, anchored at its top
    assert layout.title.yref == "container" and layout.title.yanchor == "top"
    assert TOOLBAR_PX <= title_top_px and title_top_px + layout.title.font.size < layout.margin.t


def test_legend_marks_baselines_that_read_the_group():
    rows = [
        {"method": "vanilla", "id": "v0", "metrics": {"val": {"error": 0.2, "dtpr": 0.1}}},
        {"method": "threshold", "id": "t0", "metrics": {"val": {"error": 0.25, "dtpr": 0.02}}},
    ]
    fig = go.Figure()
    add_baselines(fig, rows, "error", "dtpr", "val", None)
    assert [t.name for t in fig.data] == ["baseline: vanilla", "baseline: threshold (reads group at prediction time)"]
    assert list(fig.data[1].customdata) == ["baseline:t0"] and list(fig.data[1].x) == [0.25]
