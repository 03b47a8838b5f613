"""`evofair.load(DIR)` / the `Result` that `evofair.run` returns, checked against the run's files read
by hand, SQLite read directly, pymoo's non-dominated sorting and the toy problem's own evaluate."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from safetensors.torch import load_file

import evofair
from evofair.errors import UserError, WeightsIntegrityError

TOY = {
    "name": "toy",
    "problem": {"name": "toy_mlp", "args": {"n_train": 64, "n_eval": 48, "hidden": 4}},
    "algorithm": {"pop_size": 6, "generations": 3},
    "operators": {"crossover": {"name": "uniform"}, "mutation": {"name": "gaussian", "args": {"sigma": 0.1}}},
    "seed": 4,
}
ZDT = {
    "name": "zdt",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"pop_size": 8, "generations": 3},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 2,
    "hv_ref": [1.1, 1.1],
}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("result") / "toy"
    result = evofair.run(TOY, out, progress=False)
    return out, result


def _tree(root: Path) -> dict[str, tuple]:
    """Every file and link under `root` with its size, mtime and mode: what 'unchanged' means."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns, p.lstat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def _front_csv(out: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with open(out / "front.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["id"] for r in rows], {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k.endswith("_val")}


def _last_population_front(out: Path, names: list[str]) -> set[str]:
    """The final population's non-dominated members on validation, from SQLite read directly and
    pymoo's sorting (the oracle for which ids make the front)."""
    con = sqlite3.connect(f"file:{out / 'evofair.sqlite'}?mode=ro&immutable=1", uri=True)
    pop = json.loads(con.execute("SELECT population FROM generations ORDER BY generation DESC LIMIT 1").fetchone()[0])
    values = {(i, n): v for i, n, v in con.execute("SELECT individual, name, value FROM metrics WHERE split='val'")}
    # vector problems: one float64 column per batch and metric (evofair/store/columns.py)
    for ids, name, blob in con.execute(
        "SELECT b.ids, m.name, m.value FROM batches b JOIN batch_metrics m ON m.batch = b.batch WHERE m.split='val'"
    ):
        values.update(zip([(i, name) for i in json.loads(ids)], np.frombuffer(blob, dtype="<f8").tolist()))
    con.close()
    F = np.array([[values[i, n] for n in names] for i in pop])
    return {pop[k] for k in NonDominatedSorting().do(F, only_non_dominated_front=True)}


def test_load_F_and_ids_equal_front_csv_and_pymoo(toy_run):
    out, _ = toy_run
    result = evofair.load(out)
    ids, cols = _front_csv(out)
    assert list(result.ids) == ids
    # both toy objectives are minimised, so F is front.csv's validation columns as written
    np.testing.assert_array_equal(result.F, np.stack([cols["error_val"], cols["gap_val"]], axis=1))
    assert set(ids) == _last_population_front(out, ["error", "gap"])
    pd.testing.assert_frame_equal(result.metrics, pd.read_csv(out / "front.csv", dtype={"id": str}))
    pd.testing.assert_frame_equal(result.history, pd.read_csv(out / "history.csv"))
    pd.testing.assert_frame_equal(result.archive, pd.read_csv(out / "archive.csv", dtype={"id": str}))
    assert [i.id for i in result.front] == ids


def test_run_returns_the_same_result_with_the_recipe_that_reproduces_it(toy_run, tmp_path):
    out, result = toy_run
    assert isinstance(result, evofair.Result) and result.out_dir == out
    assert result.recipe_yaml == (out / "config.yaml").read_text()
    assert result.recipe == yaml.safe_load((out / "config.yaml").read_text())
    np.testing.assert_array_equal(result.F, evofair.load(out).F)
    again = evofair.run(result.recipe, tmp_path / "again", progress=False)  # the recorded recipe reruns the run
    assert (tmp_path / "again" / "front.csv").read_text() == (out / "front.csv").read_text()
    assert list(again.ids) == list(result.ids)


def test_max_objectives_are_negated_in_F(tmp_path):
    from evofair import Objective, VectorProblem

    class Mixed(VectorProblem):
        objectives = (Objective("f1"), Objective("score", "max"))
        default_hv_ref = (5.0, 0.0)
        n_var, xl, xu = 1, np.array([-3.0]), np.array([3.0])

        def evaluate(self, genomes, split):
            x = np.asarray(genomes)[:, 0]
            return {"f1": x**2, "score": -((x - 2) ** 2)}

    raw = {
        "algorithm": {"pop_size": 6, "generations": 2},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    }
    evofair.run(raw, tmp_path / "run", problem=Mixed(), progress=False)
    result = evofair.load(tmp_path / "run")  # its class cannot be rebuilt: the store recorded the directions
    _, cols = _front_csv(tmp_path / "run")
    np.testing.assert_array_equal(result.F, np.stack([cols["f1_val"], -cols["score_val"]], axis=1))
    assert [(o.name, o.direction) for o in result.objectives] == [("f1", "min"), ("score", "max")]
    np.testing.assert_array_equal(result.x(result.ids[0]), np.array(result.front[0].x))
    with pytest.raises(UserError, match=r"cannot be rebuilt .*evofair.load\(DIR, problem=<the same object>\)"):
        result.model(result.ids[0])
    with pytest.raises(UserError, match=r"cannot build a model .*result.weights"):
        evofair.load(tmp_path / "run", problem=Mixed()).model(result.ids[0])
    with pytest.raises(UserError, match="has no weights"):
        result.weights(result.ids[0])


def test_without_front_csv_the_front_is_computed_from_the_store(toy_run, tmp_path):
    out, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in ("front.csv", "archive.csv", "history.csv"):
        (copy / name).unlink()  # as in a run still going, or killed before its report
    full, partial = evofair.load(out), evofair.load(copy)
    assert list(partial.ids) == list(full.ids)
    np.testing.assert_array_equal(partial.F, full.F)
    pd.testing.assert_frame_equal(partial.metrics, full.metrics)
    pd.testing.assert_frame_equal(partial.archive, full.archive)
    pd.testing.assert_frame_equal(partial.history, full.history)


def test_load_never_writes_to_the_run_directory(toy_run):
    out, _ = toy_run
    before = _tree(out)
    result = evofair.load(out)
    iid = result.ids[0]
    _ = result.F, result.metrics, result.history, result.archive, result.generations, result.front
    result.weights(iid), result.model(iid)
    assert _tree(out) == before  # no -wal/-shm, no lock, nothing touched


def test_weights_are_the_stored_safetensors(toy_run):
    out, _ = toy_run
    result = evofair.load(out)
    ind = result.front[0]
    path = out / "weights" / ind.weights_hash[:2] / f"{ind.weights_hash}.safetensors"
    expected = load_file(str(path))
    got = result.weights(ind.id)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)


def test_weights_hash_mismatch_is_one_line(toy_run, tmp_path):
    out, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = evofair.load(copy)
    ind = result.front[0]
    path = copy / "weights" / ind.weights_hash[:2] / f"{ind.weights_hash}.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of one tensor value
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError) as info:
        result.weights(ind.id)
    assert "\n" not in str(info.value) and "does not match its name" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(UserError, match="no such model"):
        result.weights("g9999i9999")


def test_model_predicts_as_the_problems_evaluate(toy_run):
    out, _ = toy_run
    result = evofair.load(out)  # the problem is rebuilt from config.yaml (toy_mlp)
    problem = result.problem.ensure_setup()
    x, y, g = problem.data["val"]
    for k, iid in enumerate(result.ids):
        model = result.model(iid)
        assert not model.training
        with torch.no_grad():
            pred = model(x).argmax(1)
        error = float((pred != y).double().mean())  # by hand from the module's predictions
        batched = problem.evaluate([result.weights(iid)], "val")["error"][0]
        assert error == pytest.approx(batched, abs=1e-12)
        assert error == pytest.approx(result.metrics["error_val"][k], abs=1e-12)


def test_load_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match=r"not an evofair run directory \(no evofair.sqlite\)"):
        evofair.load(tmp_path)


def test_vector_run_from_a_registered_recipe(tmp_path):
    result = evofair.run(ZDT, tmp_path / "zdt", progress=False)
    assert result.F.shape == (len(result.ids), 2)
    assert set(result.ids) == _last_population_front(tmp_path / "zdt", ["f1", "f2"])
    assert list(result.history["generation"]) == [0, 1, 2]
