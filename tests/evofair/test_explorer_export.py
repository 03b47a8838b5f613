"""What leaves a run through the explorer package: `evofair export` directories (genome bytes and
hash, model card, a problem's loadable-model hook), the static HTML report, and that neither these
nor exploring ever write to the run directory. Checked against the store read directly and the
CSVs the report wrote."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from explorer_runs import read_csv, toy_run
from safetensors.torch import load_file

from evofair import cli
from evofair.explorer import RunData, create_server
from evofair.explorer.export import export_model
from evofair.explorer.model_card import model_card_data
from evofair.store.run_store import RunStore


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return toy_run(tmp_path_factory)


@pytest.fixture(scope="module")
def front_id(run_dir) -> str:
    """A model on the final front (front.csv's first row)."""
    return read_csv(run_dir / "front.csv")[0]["id"]


def file_states(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- export ---------------------------------------------------------------------------------------
def test_export_loads_back_and_matches_the_store(run_dir, front_id, tmp_path):
    iid = front_id
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


def test_splits_travel_only_when_the_run_recorded_them_and_reach_the_hub_card(run_dir, front_id, tmp_path):
    from evofair.explorer.hf_card import model_card_markdown

    to = export_model(run_dir, front_id, tmp_path / "model")
    card = json.loads((to / "model_card.json").read_text())
    assert card["splits"] is None and not (to / "splits.json").exists()  # toy_mlp records no splits
    card["splits"] = {"file": "splits.json", "about": {"rows": "0-based rows", "split": "random (seed 0)"}}
    text = model_card_markdown(card, {"front_matter": {"library_name": "transformers"}})
    section = text.split("## Data split", 1)[1]
    assert "`splits.json` names the rows of each split (0-based rows); split: random (seed 0)" in section
    assert 'json.load(open("splits.json"))["rows"]["test"]' in section


def test_export_refuses_to_overwrite_and_bad_ids(run_dir, front_id, tmp_path, capsys):
    iid = front_id
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

    from evofair.problems.classic.toy import ToyMLP, ToyParams

    calls = []

    class WithHook(ToyMLP):
        def export_model(self, weights, path):
            calls.append({k: v.clone() for k, v in weights.items()})
            cfg = BertConfig(
                vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
            )
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


# -- never writes to the run; the static report -----------------------------------------------------
def test_reading_exploring_exporting_and_reporting_never_write_to_the_run(run_dir, tmp_path):
    before = file_states(run_dir)
    from evofair.explorer.static_report import write_report

    data = RunData(run_dir)
    snap = data.refresh()
    for ind in snap.front():
        model_card_data(data, ind.id)
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


def test_static_report_is_self_contained(run_dir, tmp_path):
    from evofair.explorer.static_report import write_report

    out = write_report(run_dir, tmp_path / "report.html")
    text = out.read_text()
    meta = json.loads(re.search(r"<script type='application/json' id='evofair-data'>(.*?)</script>", text).group(1))
    assert sorted(meta["front"]) == sorted(r["id"] for r in read_csv(run_dir / "front.csv"))
    assert "Plotly" in text and not re.search(r"<script[^>]+src=['\"]https?://", text)  # plotly.js inline
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "cli.html")]) == 0
