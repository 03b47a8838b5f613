"""Runs that survive: resume after SIGKILL at any point, locks, NaN local search, disk errors."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest
import yaml
from conftest import cli_subprocess

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.store.run_store import RunStore

RECIPE = {
    "name": "toy-resume",
    "problem": {"name": "toy_mlp", "args": {"n_train": 96, "n_eval": 48, "hidden": 8}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 5},
    "operators": {
        "crossover": [{"name": "uniform"}, {"name": "ties", "args": {"density": 0.5}}],
        "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
        "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "adamw", "lr": 0.01, "batch_size": 32}},
    },
    "seed": 5,
}


@pytest.fixture(scope="module")
def reference_front(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    evofair.run(RECIPE, out, progress=False)
    return (out / "front.csv").read_text(), (out / "history.csv").read_text().splitlines()


_cli = cli_subprocess


@pytest.mark.parametrize("failpoint", ["kill_mid_commit@3", "kill_mid_weights@10", "kill_mid_weights@1"])
def test_killed_run_resumes_to_the_same_front(tmp_path, reference_front, failpoint):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "run"
    killed = _cli(
        "run", str(recipe_file), "--out", str(out), "--quiet", env={"EVOFAIR_FAILPOINT": failpoint}, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "front.csv").exists()
    _cli("run", "--resume", str(out), "--quiet")
    front, history = reference_front
    assert (out / "front.csv").read_text() == front
    # same generations, same HV trajectory and evaluation counts (seconds differ)
    cut = lambda rows: [r.rsplit(",", 1)[0] for r in rows]
    assert cut((out / "history.csv").read_text().splitlines()) == cut(history)
    store = RunStore(out, readonly=True)
    ids = [i.id for i in store.individuals()]
    assert len(ids) == len(set(ids)) == 6 * 5
    assert store.verify() == []
    store.close()


def test_second_process_on_same_run_dir_is_refused(tmp_path):
    out = tmp_path / "run"
    holder = RunStore(out)
    try:
        recipe_file = tmp_path / "r.yaml"
        recipe_file.write_text(yaml.safe_dump(RECIPE))
        (out / "config.yaml").write_text(yaml.safe_dump(RECIPE))
        proc = _cli("run", "--resume", str(out), "--quiet", check=False)
        assert proc.returncode == 2
        assert "in use by another evofair process" in proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        holder.close()
    with sqlite3.connect(out / "evofair.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_nan_local_search_keeps_pre_refinement_weights(tmp_path):
    recipe = {
        **RECIPE,
        "operators": {
            **RECIPE["operators"],
            "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "sgd", "lr": 1e30}},
        },
    }
    recipe["algorithm"] = {"name": "nsga2", "pop_size": 4, "generations": 2}
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    store = RunStore(out, readonly=True)
    events = store.events("refine_rejected")
    assert len(events) == 8  # every refinement diverged; every one was recorded
    from evofair.engine.pipeline import OpCall, Operators, Plan, realise
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    problem = ToyMLP(ToyParams(**recipe["problem"]["args"])).ensure_setup()
    ind = store.individuals(["g0000i0000"])[0]
    expected = realise(Plan(init=OpCall("init", {}, ind.operator["init"]["seed"])), [], problem, Operators.load())
    got = store.get_weights(ind.weights_hash)
    assert all((got[k] == expected.weights[k]).all() for k in got)
    assert "refine_rejected" in (out / "report.md").read_text()
    store.close()


def test_disk_full_is_a_clear_error_and_store_still_opens(tmp_path, monkeypatch, capsys):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "run"
    monkeypatch.setenv("EVOFAIR_FAILPOINT", "enospc_weights@8")
    assert main(["run", str(recipe_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1
    store = RunStore(out, readonly=True)
    # the 8th checkpoint belongs to generation 1: generation 0 stays committed, nothing dangles
    assert [g["generation"] for g in store.generations()] == [0] and store.verify() == []
    store.close()


def test_unwritable_out_is_exit_2(tmp_path, capsys):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(recipe_file), "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_verify_names_a_tampered_weights_file(tmp_path, capsys):
    out = tmp_path / "run"
    evofair.run({**RECIPE, "algorithm": {"name": "nsga2", "pop_size": 4, "generations": 1}}, out, progress=False)
    assert main(["verify", str(out)]) == 0
    victim = next((out / "weights").rglob("*.safetensors"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert main(["verify", str(out)]) == 1
    assert victim.name in capsys.readouterr().err
    store = RunStore(out, readonly=True)
    with pytest.raises(UserError, match=victim.name):
        store.get_weights(victim.stem)
    store.close()
