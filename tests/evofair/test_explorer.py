"""The explorer's data layer, export, static report and HTTP safety, against independent oracles:
the core report's `final_front`, the CSVs it wrote, raw SQLite queries of the store, pymoo's HV,
and hand-built cases. The real-browser test is tests/evofair/test_explorer_browser.py."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pymoo.indicators.hv import HV
from safetensors.torch import load_file

import evofair
from evofair import cli
from evofair.errors import UserError
from evofair.explorer import Constraint, RunData, Snapshot, create_server
from evofair.explorer.server import path_allowed
from evofair.core.individual import Individual
from evofair.analysis.report import final_front
from evofair.store.run_store import RunStore

ROOT = Path(__file__).resolve().parents[2]


def toy_recipe(generations: int = 3) -> dict:
    recipe = yaml.safe_load((ROOT / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=8, generations=generations)
    recipe["problem"]["args"] = {"n_train": 128, "n_eval": 64}
    return recipe


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explorer") / "toy"
    evofair.run(toy_recipe(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def data(run_dir) -> RunData:
    return RunData(run_dir)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def file_states(root: Path) -> dict[str, tuple[int, int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- fronts, HV --------------------------------------------------------------------------------
def test_front_ids_equal_report_final_front_and_front_csv(run_dir, data):
    from evofair.lifecycle.api import build_problem
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
    expected = sorted((r for r in rows if float(r["error_val"]) <= bound),
                      key=lambda r: (float(r["gap_val"]), float(r["error_val"]), r["id"]))
    got = snap.satisfying(snap.front(), [Constraint("error", "<=", bound)], "val")  # ranks by gap
    assert [i.id for i in got] == [r["id"] for r in expected]
    assert 0 < len(got) < len(rows)
    # two constraints: the intersection; an impossible one: nothing
    gap_bound = float(expected[0]["gap_val"])
    both = snap.satisfying(snap.front(), [Constraint("error", "<=", bound), Constraint("gap", "<=", gap_bound)], "val")
    assert {i.id for i in both} == {r["id"] for r in expected if float(r["gap_val"]) <= gap_bound}
    assert snap.satisfying(snap.front(), [Constraint("error", "<=", -1)], "val") == []


def _ind(iid, gen, parents=(), op=None, **metrics):
    return Individual(id=iid, generation=gen, parents=tuple(parents), operator=op or {"init": {"name": "init", "args": {}, "seed": 1}},
                      metrics={"val": metrics})


def test_constraints_respect_directions_hand_computed():
    # objectives: acc (max), gap (min). acc >= 0.8 keeps a, b, d; ranked by gap ascending: d, b, a.
    inds = [_ind("a", 0, acc=0.9, gap=0.30), _ind("b", 0, acc=0.85, gap=0.10), _ind("c", 0, acc=0.7, gap=0.0),
            _ind("d", 0, acc=0.8, gap=0.05), _ind("e", 0, acc=float("nan"), gap=0.0)]
    snap = Snapshot([{"generation": 0, "population": [i.id for i in inds], "hv_val": None, "n_front": None,
                      "evaluations": 5, "seconds": 0.0}], {i.id: i for i in inds}, (("acc", "max"), ("gap", "min")), None)
    got = snap.satisfying(inds, [Constraint("acc", ">=", 0.8)], "val")
    assert [i.id for i in got] == ["d", "b", "a"]
    ranked_by_acc = snap.satisfying(inds, [Constraint("gap", "<=", 0.1)], "val", rank_by="acc")
    assert [i.id for i in ranked_by_acc] == ["b", "d", "c", "e"]  # acc descending; an unknown acc ranks last
    assert [i.id for i in snap.satisfying(inds, [Constraint("gap", "<=", 0.0)], "val", rank_by="acc")] == ["c", "e"]
    # front: c dominates e? (acc NaN is not finite → excluded); non-dominated on (-acc, gap): a, b, d, c
    assert sorted(i.id for i in snap.front()) == ["a", "b", "c", "d"]


# -- lineage --------------------------------------------------------------------------------------
def test_lineage_hand_built_chain():
    ties = {"crossover": {"name": "ties", "args": {"density": 0.5}, "seed": 7},
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05}, "seed": 8}}
    inds = [_ind("r1", 0, acc=1, gap=1), _ind("r2", 0, acc=1, gap=1),
            _ind("c1", 1, ["r1", "r2"], ties, acc=1, gap=1),
            _ind("c2", 2, ["c1"], {"mutation": {"name": "gaussian", "args": {"sigma": 0.1}, "seed": 9}}, acc=1, gap=1)]
    snap = Snapshot([], {i.id: i for i in inds}, (("acc", "max"), ("gap", "min")), None)
    lin = snap.lineage("c2")
    assert [n["id"] for n in lin["nodes"]] == ["c2", "c1", "r1", "r2"]
    assert sorted(lin["roots"]) == ["r1", "r2"]
    edges = {(e["parent"], e["child"]): e["label"] for e in lin["edges"]}
    assert edges == {("c1", "c2"): "mutation gaussian(sigma=0.1) seed 9",
                     ("r1", "c1"): "crossover ties(density=0.5) seed 7; mutation gaussian(sigma=0.05) seed 8",
                     ("r2", "c1"): "crossover ties(density=0.5) seed 7; mutation gaussian(sigma=0.05) seed 8"}
    short = snap.lineage("c2", max_nodes=2)
    assert short["truncated"] and len(short["nodes"]) == 2


def test_lineage_of_a_front_model_matches_the_lineage_table(run_dir, data):
    snap = data.refresh()
    target = max(snap.front(), key=lambda i: i.generation)
    db = sqlite3.connect(f"file:{run_dir / 'evofair.sqlite'}?mode=ro&immutable=1", uri=True)
    rows = db.execute("""WITH RECURSIVE anc(id) AS (SELECT ? UNION SELECT parent FROM lineage JOIN anc ON child = anc.id)
                         SELECT id FROM anc""", (target.id,)).fetchall()
    ancestors = {r[0] for r in rows}
    edges = set(db.execute(f"SELECT parent, child FROM lineage WHERE child IN ({','.join('?' * len(ancestors))})",
                           sorted(ancestors)).fetchall())
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
        new = Individual(id=f"g{g:04d}i0000", generation=g, parents=(src.id,), operator={"mutation": {"name": "gaussian", "args": {}, "seed": 5}},
                         seed=5, weights_hash=src.weights_hash,
                         metrics={"val": {"error": 0.0, "gap": 0.0}, "test": {"error": 0.0, "gap": 0.0}})
        writer.commit_generation(g, [new], [new.id] + last["population"][1:], {"hv_val": 0.36, "n_front": 1, "evaluations": 99})
        after = data.refresh()
        assert after.version == before.version + 1 and after.last_generation == g
        assert [i.id for i in after.front()] == [new.id]
        assert after.lineage(new.id)["edges"][0]["parent"] == src.id
    finally:
        writer.close()


# -- export ---------------------------------------------------------------------------------------
def test_export_loads_back_and_matches_the_store(run_dir, data, tmp_path):
    from evofair.explorer.export import export_model

    iid = data.refresh().front()[0].id
    to = export_model(run_dir, iid, tmp_path / "model")
    store = RunStore(run_dir, readonly=True)
    try:
        ind = store.individuals([iid])[0]
        stored = store.get_weights(ind.weights_hash)
    finally:
        store.close()
    loaded = load_file(str(to / "genome.safetensors"))
    assert sorted(loaded) == sorted(stored) and all(torch.equal(loaded[k], stored[k]) for k in stored)
    assert hashlib.sha256((to / "genome.safetensors").read_bytes()).hexdigest() == ind.weights_hash
    card = json.loads((to / "model_card.json").read_text())
    assert card["id"] == iid and card["weights_sha256"] == ind.weights_hash
    assert card["metrics"] == {s: dict(m) for s, m in ind.metrics.items()}
    assert card["recipe"]["problem"]["name"] == "toy_mlp"
    assert card["files"] == ["README.md", "genome.safetensors", "model_card.json"] and card["intervals"] is None
    readme = (to / "README.md").read_text()
    assert f"# Model {iid}" in readme and "No confidence intervals" in readme  # toy_mlp has no per-example outputs
    assert set(card["lineage"]["roots"]) and card["lineage"]["nodes"][0]["id"] == iid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary leftovers


def test_export_refuses_to_overwrite_and_bad_ids(run_dir, data, tmp_path, capsys):
    iid = data.refresh().front()[0].id
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert cli.main(["export", str(run_dir), iid, "--to", str(full)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and (full / "keep.txt").read_text() == "mine"
    assert cli.main(["export", str(run_dir), "g9999i9999", "--to", str(tmp_path / "x")]) == 2
    assert "no such model" in capsys.readouterr().err
    assert cli.main(["export", str(run_dir), iid, "--to", str(tmp_path / "no" / "such" / "parent")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "no").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["export", str(run_dir), iid, "--to", str(empty)]) == 0  # an empty directory is fine
    assert (empty / "genome.safetensors").exists()


def test_export_hook_writes_a_transformers_loadable_model(run_dir, tmp_path):
    """A problem's `export_model(weights, path)` hook gets the stored genome and a directory
    that becomes the export; whatever it writes there loads with transformers."""
    from transformers import AutoModel, BertConfig, BertModel

    from evofair.explorer.export import export_model
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    calls = []

    class WithHook(ToyMLP):
        def export_model(self, weights, path):
            calls.append({k: v.clone() for k, v in weights.items()})
            cfg = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
            torch.manual_seed(0)
            BertModel(cfg).save_pretrained(path)
            return {"format": "transformers", "base": "tiny-bert"}

    data = RunData(run_dir, problem=WithHook(ToyParams(n_train=128, n_eval=64)))
    iid = data.refresh().front()[0].id
    to = export_model(run_dir, iid, tmp_path / "hf", data=data)
    stored = load_file(str(to / "genome.safetensors"))
    assert len(calls) == 1 and all(torch.equal(calls[0][k], stored[k]) for k in stored)
    model = AutoModel.from_pretrained(to)
    assert model.config.hidden_size == 8
    card = json.loads((to / "model_card.json").read_text())
    assert card["export"] == {"format": "transformers", "base": "tiny-bert"}
    assert {"config.json", "model.safetensors", "genome.safetensors", "model_card.json"} <= set(card["files"])


# -- never writes to the run; HTTP surface; binding --------------------------------------------------
def test_reading_exploring_exporting_and_reporting_never_write_to_the_run(run_dir, tmp_path):
    before = file_states(run_dir)
    from evofair.explorer.static_report import write_report
    from evofair.explorer.export import export_model

    data = RunData(run_dir)
    snap = data.refresh()
    for ind in snap.front():
        data.model_card(ind.id)
    export_model(run_dir, snap.front()[0].id, tmp_path / "exp")
    out = write_report(run_dir, tmp_path / "r.html")
    srv = create_server(run_dir, port=0)
    client = srv.app.server.test_client()
    host = {"Host": f"127.0.0.1:{srv.port}"}
    assert client.get("/", headers=host).status_code == 200
    assert client.get("/_dash-layout", headers=host).status_code == 200
    srv.stop()
    assert file_states(run_dir) == before  # same files (no -wal/-shm created), same bytes and mtimes
    assert out.exists()


def test_static_report_is_self_contained(run_dir, data, tmp_path):
    from evofair.explorer.static_report import write_report

    out = write_report(run_dir, tmp_path / "report.html")
    text = out.read_text()
    meta = json.loads(re.search(r"<script type='application/json' id='evofair-data'>(.*?)</script>", text).group(1))
    assert sorted(meta["front"]) == sorted(r["id"] for r in read_csv(run_dir / "front.csv"))
    assert "Plotly" in text and not re.search(r"<script[^>]+src=['\"]https?://", text)  # plotly.js inline
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "cli.html")]) == 0


@pytest.mark.parametrize("path", ["/../evofair.sqlite", "/_dash-component-suites/dash/../../../evofair.sqlite",
                                  "/_dash-component-suites/dash/%2e%2e/%2e%2e/config.yaml",
                                  "/_dash-component-suites/dash/%252e%252e/x", "/assets/../config.yaml",
                                  "/static/../../evofair.sqlite", "/etc/passwd", "/config.yaml", "/weights/",
                                  "/_dash-component-suites/dash/..%5c..%5cconfig.yaml"])
def test_crafted_paths_get_404(run_dir, path):
    assert not path_allowed(path)
    srv = create_server(run_dir, port=0)
    try:
        resp = srv.app.server.test_client().get(path, headers={"Host": f"127.0.0.1:{srv.port}"})
        assert resp.status_code == 404, (path, resp.status_code)
    finally:
        srv.stop()


def test_app_assets_are_served_and_foreign_hosts_and_origins_refused(run_dir):
    srv = create_server(run_dir, port=0)
    try:
        client = srv.app.server.test_client()
        host = {"Host": f"127.0.0.1:{srv.port}"}
        index = client.get("/", headers=host)
        assert index.status_code == 200
        scripts = re.findall(r'src="(/_dash-component-suites/[^"]+\.js)"', index.get_data(as_text=True))
        assert scripts and all(client.get(s, headers=host).status_code == 200 for s in scripts[:3])
        assert client.get("/", headers={"Host": f"evil.example:{srv.port}"}).status_code == 403
        resp = client.post("/_dash-update-component", json={}, headers={**host, "Origin": "http://evil.example"})
        assert resp.status_code == 403
    finally:
        srv.stop()


def test_binds_to_loopback_by_default(run_dir):
    args = cli.build_parser().parse_args(["explore", str(run_dir)])
    assert args.host == "127.0.0.1" and args.port == 8050
    srv = create_server(run_dir, port=0)
    try:
        assert srv.host == "127.0.0.1" and srv._srv.socket.getsockname()[0] == "127.0.0.1"
    finally:
        srv.stop()
    wide = create_server(run_dir, host="0.0.0.0", port=0)  # allowed, but then no export from the page
    try:
        layout = wide.app.layout()
        btn = next(c for c in _walk(layout) if getattr(c, "id", None) == "export-btn")
        assert btn.disabled is True
    finally:
        wide.stop()


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)


def test_explore_rejects_a_missing_run_and_bad_ports(tmp_path, capsys):
    assert cli.main(["explore", str(tmp_path)]) == 2
    assert "not an evofair run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["explore", str(tmp_path), "--port", "70000"])
    assert exc.value.code == 2


def test_problem_model_card_hook_is_used_and_its_errors_are_contained(run_dir):
    """`model_card(individual, store)` rows reach the card (and its HTML); a failing hook is
    reported on the card instead of breaking it."""
    from dash import html

    from evofair.explorer.cards import model_card as render_card
    from evofair.analysis.metrics import confusion_rows
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
    card = data.model_card(iid)
    rows = card["problem_card"]["test split, per group"]
    assert card["problem_card_error"] is None and sum(r["n"] for r in rows) == 64  # every test example once
    test_error = 1 - sum(r[f"pred_{r['true']}"] for r in rows) / 64  # correct = predicted its true class
    assert test_error == pytest.approx(card["metrics"]["test"]["error"], abs=1e-12)
    assert isinstance(render_card(data, iid), html.Div)
    broken = RunData(run_dir, problem=Broken(params)).model_card(iid)
    assert broken["problem_card"] is None and "no data here" in broken["problem_card_error"]


# -- recipe constraints: feasible vs infeasible in figures, tables, cards and export -------------------
@pytest.fixture(scope="module")
def constrained_dir(tmp_path_factory) -> Path:
    """ZDT1 with `f1 >= 0.5`: f1 is x1, so a model's violation is exactly max(0, 0.5 - f1)."""
    out = tmp_path_factory.mktemp("constrained") / "zdt1"
    recipe = {"name": "zdt1-c", "problem": {"name": "zdt1", "args": {"n_var": 6}},
              "algorithm": {"pop_size": 12, "generations": 4}, "seed": 2, "constraints": ["f1 >= 0.5"]}
    evofair.run(recipe, out, progress=False)
    return out


def test_recipe_constraints_in_the_front_and_its_figures(constrained_dir):
    from evofair.explorer.figures import INFEASIBLE, front_figure, replay_figure

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
    assert all(list(f.traces) == [0, 1, 2] for f in replay.frames)
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
        card = data.model_card(ind.id)
        f1 = ind.metrics["val"]["f1"]
        assert card["feasible"] is ok
        assert card["constraints"] == [{"constraint": "f1 >= 0.5", "metric": "f1", "op": ">=", "bound": 0.5,
                                        "val": f1, "satisfied_val": ok, "test": ind.metrics["test"]["f1"],
                                        "satisfied_test": ok}]
        nodes = list(_walk(render_card(data, ind.id)))
        cells = [n for n in nodes if getattr(n, "id", None) == "card-feasible"]
        assert cells and cells[0].to_plotly_json()["props"]["data-feasible"] == str(ok).lower()
        verdicts = [n.to_plotly_json()["props"].get("data-satisfied") for n in nodes
                    if n.to_plotly_json()["props"].get("data-satisfied") is not None]
        assert verdicts == [str(ok).lower()] * 2  # val and test
    exported = json.loads((export_model(constrained_dir, bad.id, tmp_path / "m") / "model_card.json").read_text())
    assert exported["feasible"] is False and exported["constraints"][0]["satisfied_val"] is False
    assert exported["constraints"][0]["val"] == bad.metrics["val"]["f1"]
    table = ranking(snap, snap.evaluated(), len(snap.evaluated()), "val", "f2", True, limit=100)
    marks = {n.to_plotly_json()["props"].get("data-feasible") for n in _walk(table)} - {None}
    assert marks == {"true", "false"}


def test_nothing_feasible_front_is_the_least_violating_and_labelled():
    from evofair.explorer.figures import front_figure

    inds = [_ind("a", 0, acc=0.9, gap=0.30), _ind("b", 0, acc=0.7, gap=0.10), _ind("c", 0, acc=0.6, gap=0.0)]
    snap = Snapshot([{"generation": 0, "population": ["a", "b", "c"], "hv_val": 0.0, "n_front": 1,
                      "evaluations": 3, "seconds": 0.0}], {i.id: i for i in inds}, (("acc", "max"), ("gap", "min")),
                    None, constraints=(Constraint("acc", ">=", 0.95),))
    assert [i.id for i in snap.front()] == ["a"]  # violation 0.05, the smallest (pymoo's opt)
    assert list(snap.violation(inds)) == pytest.approx([0.05, 0.25, 0.35])
    fig = front_figure(snap, x="acc", y="gap", colour=None, split="val", generation=None)
    front = next(t for t in fig.data if t.name.startswith("front"))
    assert front.name == "front: least violating (nothing feasible)" and list(front.marker.symbol) == ["x"]
