"""Bad data through the CLI: exit 2, exactly one line on stderr naming the field or file, no run directory.

In-process `evofair.cli.main` (as tests/evofair/test_bad_input.py) for every case, plus one case
through a real subprocess to pin the process exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import one_error_line
from fairclass_tables import adult_recipe, table, table_csv, user_overrides  # noqa: F401 (fixtures)


def _fails(tmp_path, capsys, recipe, overrides):
    out = tmp_path / "out"
    sets = [a for o in overrides for a in ("--set", o)]
    return one_error_line(capsys, ["run", str(recipe), "--out", str(out), "--quiet", *sets], out)


def _write(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_missing_file(tmp_path, capsys, adult_recipe, user_overrides):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={tmp_path / 'nope.csv'}"])
    assert "problem.args.data.path" in line and "nope.csv" in line and "not found" in line


def test_binary_file_is_not_a_table(tmp_path, capsys, adult_recipe, user_overrides):
    path = tmp_path / "blob.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={path}"])
    assert "blob.csv" in line and "table" in line


def test_json_array_that_is_not_rows(tmp_path, capsys, adult_recipe, user_overrides):
    path = tmp_path / "numbers.json"
    path.write_text("[1, 2, 3]")
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={path}"])
    assert "numbers.json" in line and "not a table" in line


def test_jsonl_of_arrays_is_not_rows(tmp_path, capsys, adult_recipe, user_overrides):
    path = tmp_path / "arrays.jsonl"
    path.write_text("[1, 2]\n[3, 4]\n")
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={path}"])
    assert "arrays.jsonl" in line and "not a table" in line


@pytest.mark.parametrize(
    "key,value,closest",
    [("target", "outcom", "outcome"), ("sensitive", "[gendr]", "gender"), ("features", "[incme, job]", "income")],
)
def test_column_that_does_not_exist(tmp_path, capsys, adult_recipe, user_overrides, key, value, closest):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.{key}={value}"])
    assert f"problem.args.{key}" in line and f"did you mean {closest!r}" in line


@pytest.mark.parametrize(
    "features,needle", [("[income, outcome]", "is the target"), ("[income, gender]", "include_sensitive")]
)
def test_target_or_sensitive_listed_as_a_feature(tmp_path, capsys, adult_recipe, user_overrides, features, needle):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.features={features}"])
    assert "problem.args.features" in line and needle in line


def test_sensitive_column_with_one_value(tmp_path, capsys, adult_recipe, user_overrides, table):
    path = _write(tmp_path, table.assign(country="x"))
    line = _fails(
        tmp_path,
        capsys,
        adult_recipe,
        user_overrides + [f"problem.args.data.path={path}", "problem.args.sensitive=[country]"],
    )
    assert "problem.args.sensitive" in line and "'country'" in line and "one value" in line


def test_group_empty_in_a_split(tmp_path, capsys, adult_recipe, user_overrides, table):
    table.loc[0, "region"] = "west"  # one row: it cannot be in train, val and test
    path = _write(tmp_path, table)
    line = _fails(
        tmp_path,
        capsys,
        adult_recipe,
        user_overrides + [f"problem.args.data.path={path}", "problem.args.min_group_size=0"],
    )
    assert "problem.args.sensitive" in line and "west" in line and "no rows in the" in line
    assert "min_group_size" in line


def test_target_with_one_class(tmp_path, capsys, adult_recipe, user_overrides, table):
    path = _write(tmp_path, table.assign(outcome="yes"))
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={path}"])
    assert "problem.args.target" in line and "one class" in line


def test_positive_not_among_target_values(tmp_path, capsys, adult_recipe, user_overrides):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + ["problem.args.positive=yess"])
    assert "problem.args.positive" in line and "did you mean 'yes'" in line


@pytest.mark.parametrize("column,field", [("outcome", "target"), ("gender", "sensitive")])
def test_missing_values_in_target_or_sensitive(tmp_path, capsys, adult_recipe, user_overrides, table, column, field):
    table.loc[[3, 5, 8], column] = np.nan
    path = _write(tmp_path, table)
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + [f"problem.args.data.path={path}"])
    assert f"problem.args.{field}" in line and f"{column!r} has 3 rows with missing values" in line
    assert "drop_missing" in line


def test_objective_that_is_not_a_metric(tmp_path, capsys, adult_recipe, user_overrides):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + ["problem.args.objectives=[error, eodd]"])
    assert "problem.args" in line and "did you mean 'eod'" in line


def test_per_attribute_objective_needs_per_attribute_groups(tmp_path, capsys, adult_recipe, user_overrides):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + ["problem.args.objectives=[error, eod_gender]"])
    assert "'eod_gender'" in line and "groups: per_attribute" in line


def test_lora_without_a_text_column_is_refused_in_one_line(tmp_path, capsys, adult_recipe, user_overrides):
    line = _fails(tmp_path, capsys, adult_recipe, user_overrides + ["problem.args.model.kind=lora"])
    assert "model.kind: lora" in line and "set text: COLUMN" in line


def test_a_subprocess_exits_2_with_one_line(tmp_path, adult_recipe, user_overrides, table):
    path = _write(tmp_path, table.assign(outcome="yes"))
    out = tmp_path / "out"
    sets = [a for o in user_overrides + [f"problem.args.data.path={path}"] for a in ("--set", o)]
    proc = subprocess.run(
        [sys.executable, "-m", "evofair.cli", "run", str(adult_recipe), "--out", str(out), "--quiet", *sets],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "problem.args.target" in lines[0] and "one class" in lines[0]
    assert not out.exists()
