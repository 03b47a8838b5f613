"""Bootstrap intervals on a small BiasBios run (all-MiniLM-L6-v2 features of 64 bios per split): front.csv,
report.md, intervals.json, the paired HV difference and the exported model card. The interval code
itself is checked against a slow reference in tests/evofair/test_uncertainty.py; here the numbers
that must agree with something computed elsewhere are the point values: the stored metrics and the
report's summary.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import evofair
from evofair.lifecycle.recipe import load_recipe
from evofair.store.run_store import RunStore

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intervals")
    recipe = load_recipe(REPO_ROOT / "runs" / "fapareto_biasbios.yaml").model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(cache_dir=str(tmp / "cache"), limit=64, max_length=64, hidden=[16])
    recipe["problem"]["args"]["baselines"] = {"vanilla": 2, "lambdas": [0.5, 2.0], "epochs": 3, "threshold": []}
    recipe["algorithm"].update(pop_size=6, generations=2, n_offsprings=6)
    recipe["intervals"] = {"level": 0.8, "n_boot": 200}
    recipe["hv_ref"] = [0.5, 0.5]  # 64 test bios: keep every model of this small run inside the box
    out = tmp / "run"
    evofair.run(recipe, out, progress=False)
    return out


def test_front_csv_report_and_intervals_json(run):
    rows = list(csv.DictReader(open(run / "front.csv", newline="")))
    assert rows and list(rows[0])[-4:] == ["error_test_lo", "error_test_hi", "dtpr_test_lo", "dtpr_test_hi"]
    doc = json.loads((run / "intervals.json").read_text())
    assert doc["level"] == 0.8 and doc["n_boot"] == 200 and doc["split"] == "test"
    for r in rows:
        for m in ("error", "dtpr"):
            lo, hi = float(r[f"{m}_test_lo"]), float(r[f"{m}_test_hi"])
            assert 0 <= lo <= hi <= 1 and [lo, hi] == doc["models"][r["id"]][m]
    assert set(doc["models"][rows[0]["id"]]) >= {"error", "dtpr", "dtpr_rms", "eod", "dpd"}
    base = json.loads((run / "baselines.json").read_text())
    assert set(doc["baselines"]) == {m["id"] for m in base["models"] if m.get("weights_hash")}
    report = (run / "report.md").read_text()
    for needle in (
        "test error [lo, hi]",
        "80% percentile bootstrap",
        "Front vs baselines, paired bootstrap",
        "bootstrap interval, the same test resamples",
    ):
        assert needle in report, needle
    summary = json.loads((run / "summary.json").read_text())
    assert summary["hv_diff_lo"] <= summary["hv_diff_hi"]


def test_example_outputs_give_the_stored_metrics(run):
    from evofair.analysis.uncertainty import point_metrics
    from evofair.explorer.data import load_recipe_and_problem

    _, problem, _ = load_recipe_and_problem(run)
    problem.ensure_setup()
    store = RunStore(run, readonly=True)
    inds = store.individuals()[:5]
    out = problem.example_outputs([store.get_weights(i.weights_hash) for i in inds], "test")
    store.close()
    point = point_metrics(out)
    for j, ind in enumerate(inds):
        for name, value in ind.metrics["test"].items():
            assert point[name][j] == pytest.approx(value, abs=1e-12), name


def test_hv_difference_interval_matches_the_report(run):
    from evofair.analysis.uncertainty import hv_difference_interval

    res = hv_difference_interval(run, level=0.9, n_boot=150, seed=0)
    assert set(res) == {"hv_front", "hv_union", "diff", "lo", "hi"}
    summary = json.loads((run / "summary.json").read_text())
    assert res["hv_front"] == pytest.approx(summary["hv_front_test"], abs=1e-15)
    assert res["hv_union"] == pytest.approx(summary["hv_union_ab_test"], abs=1e-15)
    assert res["diff"] == pytest.approx(res["hv_front"] - res["hv_union"], abs=1e-15)
    assert res["lo"] <= res["hi"] and hv_difference_interval(run, level=0.9, n_boot=150, seed=0) == res


def test_exported_model_card_has_the_intervals(run, tmp_path):
    from evofair.explorer.export import export_model

    rows = list(csv.DictReader(open(run / "front.csv", newline="")))
    card = json.loads((export_model(run, rows[0]["id"], tmp_path / "m") / "model_card.json").read_text())
    iv = card["intervals"]
    assert iv["level"] == 0.8 and iv["split"] == "test"
    assert iv["metrics"]["error"] == [float(rows[0]["error_test_lo"]), float(rows[0]["error_test_hi"])]
    assert (
        "90%" not in (tmp_path / "m" / "README.md").read_text() and "80%" in (tmp_path / "m" / "README.md").read_text()
    )
    assert np.isfinite(iv["metrics"]["dpd"]).all()


def test_diagnostics_ceiling_bounds_every_selected_set(run):
    """studies/fapareto_vs_baselines/fapareto_diagnostics.py's oracle ceilings: HV only grows with the set, so each pool
    selected on test bounds what was selected on validate from it, and (a)+(b)'s pool bounds (b)'s;
    the pool is every evaluated individual (read back from the store)."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "studies" / "fapareto_vs_baselines"))
    from fapareto_diagnostics import diagnose

    from evofair.core.indicators import hypervolume

    d = diagnose(run, k=4)
    summary = json.loads((run / "summary.json").read_text())
    store = RunStore(run, readonly=True)
    inds = store.individuals()
    store.close()
    assert d["n_evolved"] == len(inds) > 0
    ref = summary["hv_ref"]
    pool = np.array([[i.metrics["test"]["error"], i.metrics["test"]["dtpr"]] for i in inds])
    assert d["oracle_evolved"] == pytest.approx(hypervolume(pool, ref), abs=1e-15)
    assert d["oracle_evolved"] >= summary["hv_front_test"] - 1e-15
    assert d["oracle_union"] >= summary["hv_union_ab_test"] - 1e-15
    assert d["oracle_union"] >= d["oracle_b"] >= summary["hv_scalarisation_test"] - 1e-15
    assert d["oracle_evolved_and_union"] >= max(d["oracle_evolved"], d["oracle_union"]) - 1e-15
    low = sum(i.metrics["val"]["error"] < ref[0] and i.metrics["val"]["dtpr"] < 0.03 for i in inds)
    cands = [
        c["metrics"]["val"]
        for c in json.loads((run / "baselines.json").read_text())["candidates"]
        if c["method"] in ("vanilla", "scalarisation")
    ]
    assert d["evolved_low_n"] == low
    assert d["union_low_n"] == sum(v["error"] < ref[0] and v["dtpr"] < 0.03 for v in cands)
