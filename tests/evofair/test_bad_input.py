"""Malformed input of every kind the ops issue lists: exit 2, one line, no traceback, nothing written."""

from __future__ import annotations

import yaml
from conftest import one_error_line

TOY = {
    "name": "bad",
    "problem": {"name": "toy_mlp", "args": {"n_train": 32, "n_eval": 16}},
    "algorithm": {"pop_size": 4, "generations": 1},
}
LETOR = {"name": "bad", "problem": {"name": "letor"}, "experiment": {"name": "hyperdpo_table"}}


def _run(tmp_path, capsys, recipe, *extra):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    command = "experiment" if "experiment" in recipe else "run"
    return one_error_line(capsys, [command, str(path), "--out", str(out), "--quiet", *extra], out)


def test_a_data_file_that_does_not_parse(tmp_path, capsys):
    bad = tmp_path / "val.txt"
    bad.write_text("this is not\na LETOR file at all\n")
    recipe = {**LETOR, "problem": {"name": "letor", "args": {"val_path": str(bad)}}}
    line = _run(tmp_path, capsys, recipe)
    assert str(bad) in line and "LETOR format" in line


def test_a_data_file_that_does_not_exist(tmp_path, capsys):
    recipe = {**LETOR, "problem": {"name": "letor", "args": {"test_path": str(tmp_path / "nope.txt")}}}
    assert "nope.txt" in _run(tmp_path, capsys, recipe)


def test_an_empty_objective_list(tmp_path, capsys):
    recipe = {**LETOR, "problem": {"name": "letor", "args": {"aux_features": []}}}
    assert "aux_features" in _run(tmp_path, capsys, recipe)


def test_a_ten_megabyte_string(tmp_path, capsys):
    line = _run(tmp_path, capsys, TOY, "--set", "name=" + "x" * 10_000_000)
    assert "--set name" in line and len(line) < 300


def test_a_ten_megabyte_string_in_a_recipe_file(tmp_path, capsys):
    line = _run(tmp_path, capsys, {**TOY, "name": "y" * 10_000_000})
    assert "larger than" in line and len(line) < 300


def test_a_run_name_with_a_slash(tmp_path, capsys):
    assert "name" in _run(tmp_path, capsys, {**TOY, "name": "../escape"})


def test_python_problem_without_objectives_is_refused(tmp_path):
    import pytest

    import evofair
    from evofair import UserError
    from evofair.problems.classic.toy import ToyMLP

    class NoObjectives(ToyMLP):
        objectives = ()

    with pytest.raises(UserError, match="at least one objective"):
        evofair.run({"problem": {"name": "toy_mlp"}}, tmp_path / "o", problem=NoObjectives())
    assert not (tmp_path / "o").exists()
