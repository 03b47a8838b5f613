"""Recipe values and paths a hostile-but-realistic user tries: each is refused
with exit 2, one line naming the key or file, no traceback, and no run folder."""

from __future__ import annotations

import os

import pytest
import yaml

from evofair.cli import main

TOY = {
    "name": "bad",
    "problem": {"name": "toy_mlp", "args": {"n_train": 32, "n_eval": 16}},
    "algorithm": {"pop_size": 4, "generations": 1},
    "operators": {"crossover": {"name": "uniform"}, "mutation": {"name": "gaussian"}},
}
ZDT = {
    "name": "bad",
    "problem": {"name": "zdt1", "args": {"n_var": 5}},
    "algorithm": {"pop_size": 4, "generations": 1},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
}


def refused(tmp_path, capsys, recipe_arg, *extra) -> str:
    out = tmp_path / "out"
    code = main(["run", str(recipe_arg), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: "), err
    assert not out.exists()
    return lines[0]


def recipe_file(tmp_path, recipe) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.mark.parametrize("value", [".inf", "1e308", "-.inf", ".nan", "1000.0"])
def test_non_finite_or_absurd_sigma(tmp_path, capsys, value):
    line = refused(tmp_path, capsys, recipe_file(tmp_path, TOY), "--set", f"operators.mutation.args.sigma={value}")
    assert "sigma" in line


@pytest.mark.parametrize("value", ["[.nan, .nan]", "[.inf, 1.0]", "[1.0, -.inf]"])
def test_non_finite_hv_ref(tmp_path, capsys, value):
    assert "hv_ref" in refused(tmp_path, capsys, recipe_file(tmp_path, ZDT), "--set", f"hv_ref={value}")


@pytest.mark.parametrize("key, value", [("problem.args.n_var", "1e11"), ("problem.args.n_var", "100000000000")])
def test_absurd_n_var(tmp_path, capsys, key, value):
    assert "n_var" in refused(tmp_path, capsys, recipe_file(tmp_path, ZDT), "--set", f"{key}={value}")


@pytest.mark.parametrize("value", ["1e9", "1000000000"])
def test_absurd_hidden(tmp_path, capsys, value):
    assert "hidden" in refused(tmp_path, capsys, recipe_file(tmp_path, TOY), "--set", f"problem.args.hidden={value}")


def test_dev_zero_fifo_and_a_directory_as_the_recipe(tmp_path, capsys):
    assert "regular file" in refused(tmp_path, capsys, "/dev/zero")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "regular file" in refused(tmp_path, capsys, fifo)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert "directory" in refused(tmp_path, capsys, folder)


def test_symlink_loop_and_over_long_name(tmp_path, capsys):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    assert "symbolic link loop" in refused(tmp_path, capsys, loop)
    long = tmp_path / ("x" * 300 + ".yaml")
    assert "too long" in refused(tmp_path, capsys, long)
    refused(tmp_path, capsys, "y" * 5000)  # not a path either: no packaged recipe of that name


def test_set_value_nested_5000_deep_is_refused_before_parsing(tmp_path, capsys):
    deep = "[" * 5000 + "]" * 5000
    line = refused(tmp_path, capsys, recipe_file(tmp_path, ZDT), "--set", f"report.x={deep}")
    assert "nested deeper" in line and "--set report.x" in line
    deep_map = "{a: " * 3000 + "1" + "}" * 3000
    assert "nested deeper" in refused(tmp_path, capsys, recipe_file(tmp_path, ZDT), "--set", f"report.x={deep_map}")


def test_duplicate_key_inside_a_set_value(tmp_path, capsys):
    line = refused(tmp_path, capsys, recipe_file(tmp_path, ZDT), "--set", "problem.args={n_var: 5, n_var: 6}")
    assert "duplicate key" in line and "n_var" in line


def test_sane_values_still_run(tmp_path, capsys):
    out = tmp_path / "ok"
    assert (
        main(
            [
                "run",
                recipe_file(tmp_path, ZDT),
                "--out",
                str(out),
                "--quiet",
                "--set",
                "hv_ref=[1.1, 1.1]",
                "--set",
                "report.x=[[1, 2], {a: '[[['}]",
            ]
        )
        == 0
    )
    assert (out / "front.csv").exists()
