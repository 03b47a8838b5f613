"""Plugin writers (baselines, predictions, summaries) write through evofair.store.safe_io's exclusive temp
files: a link planted in the run directory at the old fixed `.tmp` name, or at the file's own name,
never makes them write outside it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from safetensors.torch import load_file

from evofair.problems.common.baselines import read_baselines, write_baselines
from evofair.problems.fairclass.baselines import PREDICTIONS_FILE, read_predictions, write_predictions


def _plant(run, victim, *names):
    for name in names:
        (run / name).symlink_to(victim)


def test_write_baselines_never_follows_a_planted_link(tmp_path):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    victim.write_text("precious")
    _plant(run, victim, "baselines.csv.tmp", "baselines.json.tmp", "baselines.json")
    problem = SimpleNamespace(objective_names=["error", "gap"])
    models = [
        {
            "method": "vanilla",
            "id": "v0",
            "metrics": {"val": {"error": 0.25, "gap": 0.5}, "test": {"error": 0.125, "gap": 0.75}},
        }
    ]
    write_baselines(problem, run, models, [], {"evaluations": 3})
    assert victim.read_text() == "precious"
    assert not (run / "baselines.json").is_symlink()  # the link at the target was replaced, not written through
    assert (run / "baselines.csv").read_text().splitlines() == [
        "method,id,error_val,error_test,gap_val,gap_test",
        "vanilla,v0,0.25,0.125,0.5,0.75",
    ]
    assert read_baselines(run)["models"] == models
    assert json.loads((run / "baselines.json").read_text())["budget"] == {"evaluations": 3}


def test_write_predictions_never_follows_a_planted_link(tmp_path):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    victim.write_text("precious")
    _plant(run, victim, PREDICTIONS_FILE + ".tmp", PREDICTIONS_FILE)
    preds = {"vanilla:0": {s: np.array([0, 1, 1]) for s in ("val", "test")}}
    write_predictions(run, preds)
    assert victim.read_text() == "precious"
    assert not (run / PREDICTIONS_FILE).is_symlink()  # a link at the file's own name is replaced, not followed
    assert set(load_file(str(run / PREDICTIONS_FILE))) == {"vanilla:0/val", "vanilla:0/test"}
    np.testing.assert_array_equal(read_predictions(run)["vanilla:0"]["test"], [0, 1, 1])
