"""`--resume` under a changed recipe: result-changing edits are refused in one
line naming the keys, before config.yaml is touched; more generations and another executor are
allowed and recorded as an event."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.store.run_store import RunStore


@pytest.fixture(scope="module")
def zdt_run(tmp_path_factory) -> Path:
    recipe = {
        "name": "zdt-resume",
        "problem": {"name": "zdt1", "args": {"n_var": 6}},
        "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 2},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "seed": 4,
        "hv_ref": [1.1, 1.1],
    }
    out = tmp_path_factory.mktemp("resume") / "zdt"
    evofair.run(recipe, out, progress=False)
    return out


@pytest.fixture
def run(zdt_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(zdt_run, dest)
    return dest


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "flags, keys",
    [
        (["--set", "problem.args.n_var=7"], ["problem.args.n_var"]),
        (["--seed", "7"], ["seed"]),
        (["--set", "problem.name=zdt2"], ["problem.name"]),
        (["--set", "hv_ref=[2.0, 2.0]"], ["hv_ref"]),
        (
            ["--set", "algorithm.pop_size=10", "--set", "operators.mutation.args.eta=5"],
            ["algorithm.pop_size", "operators.mutation.args.eta"],
        ),
    ],
)
def test_resume_refuses_result_changing_edits_before_writing(run, capsys, flags, keys):
    before = {p.name: digest(p) for p in run.iterdir() if p.is_file()}
    assert main(["run", "--resume", str(run), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for key in keys:
        assert key in err
    assert {p.name: digest(p) for p in run.iterdir() if p.is_file()} == before
    # a plain resume still works afterwards
    assert main(["run", "--resume", str(run), "--quiet"]) == 0


def test_resume_allows_more_generations_and_records_the_change(run, capsys):
    assert main(["run", "--resume", str(run), "--quiet", "--set", "algorithm.generations=3"]) == 0
    store = RunStore(run, readonly=True)
    try:
        assert [g["generation"] for g in store.generations()] == [0, 1, 2]
        events = store.events("resume_recipe_changed")
    finally:
        store.close()
    assert len(events) == 1 and events[0]["data"] == {"algorithm.generations": [2, 3]}
    assert yaml.safe_load((run / "config.yaml").read_text())["algorithm"]["generations"] == 3


def test_python_api_resume_is_checked_too(run):
    recipe = yaml.safe_load((run / "config.yaml").read_text())
    recipe["seed"] = 99
    with pytest.raises(UserError, match="seed"):
        evofair.run(recipe, run, resume=True, progress=False)
