"""Bad values are refused before anything is written: exit 2, one line naming the key, no folder.

Each case once ran (a boolean taken as 1 generation, `010` read as octal 8, an infinite
hypervolume) or failed half-way with a traceback and a run folder left behind (a population or
NSGA-III partition count that allocates gigabytes, a relative module name, an over-long --out).
"""

from __future__ import annotations

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.errors import UserError

SMALL = ["--set", "algorithm.pop_size=6", "--set", "algorithm.generations=2", "--set", "problem.args.n_var=4"]
NSGA3 = ["--set", "algorithm.name=nsga3"]

CASES = {
    "bool generations": (["--set", "algorithm.generations=true"], "algorithm.generations"),
    "bool hv_ref": (["--set", "hv_ref=[1.1, true]"], "hv_ref"),
    "octal seed": (["--set", "seed=010"], "seed"),
    "base-60 seed": (["--set", "seed=1:30"], "seed"),
    "float pop_size": (["--set", "algorithm.pop_size=1.0e+23"], "algorithm.pop_size"),
    "text pop_size": (["--set", "algorithm.pop_size=1e23"], "algorithm.pop_size"),
    "huge pop_size": (["--set", "algorithm.pop_size=100000000000000000000000"], "algorithm.pop_size"),
    "huge n_partitions": ([*NSGA3, "--set", "algorithm.n_partitions=100000000"], "algorithm.n_partitions"),
    "reference directions": (
        [
            *NSGA3,
            "--set",
            "problem.name=dtlz2",
            "--set",
            "problem.args.n_var=6",
            "--set",
            "algorithm.n_partitions=1000",
        ],
        "algorithm.n_partitions",
    ),
    "overflowing hv_ref": (["--set", "hv_ref=[1.0e+308, 1.0e+308]"], "hv_ref"),
    "relative module": (["--set", "problem.name=.evil:X"], "problem.name"),
}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evofair: error: "), err
    return err[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    args, key = CASES[case]
    out = tmp_path / "out"
    assert main(["run", "zdt1", *SMALL, *args, "--out", str(out), "--quiet"]) == 2
    assert key in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("out", ["", "   ", "x" * 300, "a/" + "y" * 256 + "/b"])
def test_empty_or_over_long_out_is_refused(out, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "zdt1", *SMALL, "--out", out, "--quiet"]) == 2
    assert "--out" in one_line(capsys)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="^out"):
        evofair.run({"problem": {"name": "zdt1"}}, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_recipe_file_hv_ref_that_overflows(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"problem": {"name": "zdt1"}}) + "hv_ref: [1e308, 1e308]\n")
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    line = one_line(capsys)
    assert "hv_ref" in line and "overflows" in line
    assert not (tmp_path / "out").exists()


def test_unambiguous_values_still_work(tmp_path):
    """`--set seed=10`, a quoted "010" where text is expected and `--seed 010` (10) keep working."""
    out = tmp_path / "out"
    assert main(["run", "zdt1", *SMALL, "--seed", "010", "--set", "name='010'", "--out", str(out), "--quiet"]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["seed"] == 10 and config["name"] == "010"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-values") / "run"
    assert main(["run", "zdt1", *SMALL, "--out", str(out), "--quiet"]) == 0
    return out


def linked(tmp_path, target_exists: bool):
    target = tmp_path / "target"
    if target_exists:
        target.mkdir()
    (tmp_path / "link").symlink_to(target)
    return str(tmp_path / "link")


READER_CASES = {
    "export to a dangling link": (lambda run, tmp: ["export", run, "ID", "--to", linked(tmp, False)], "--to"),
    "export to a link to an empty folder": (lambda run, tmp: ["export", run, "ID", "--to", linked(tmp, True)], "--to"),
    "export to empty text": (lambda run, tmp: ["export", run, "ID", "--to", ""], "--to"),
    "export to an over-long name": (lambda run, tmp: ["export", run, "ID", "--to", str(tmp / ("x" * 300))], "--to"),
    "report to empty text": (lambda run, tmp: ["report", run, "--out", ""], "--out"),
    "report to an over-long name": (lambda run, tmp: ["report", run, "--out", str(tmp / ("x" * 300))], "--out"),
    "explore on an impossible address": (
        lambda run, tmp: ["explore", run, "--host", "999.1.1.1", "--port", "0"],
        "--host",
    ),
    "explore on empty text": (lambda run, tmp: ["explore", run, "--host", "", "--port", "0"], "--host"),
}


@pytest.mark.parametrize("case", list(READER_CASES))
def test_bad_reader_targets_are_one_line_and_write_nothing(case, small_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    front_id = (small_run / "front.csv").read_text().splitlines()[1].split(",")[0]
    make_argv, flag = READER_CASES[case]
    argv = [front_id if a == "ID" else a for a in make_argv(str(small_run), tmp_path)]
    before = sorted(p.name for p in tmp_path.rglob("*")), sorted(p.name for p in small_run.rglob("*"))
    assert main(argv) == 2
    assert flag in one_line(capsys)
    assert (sorted(p.name for p in tmp_path.rglob("*")), sorted(p.name for p in small_run.rglob("*"))) == before
