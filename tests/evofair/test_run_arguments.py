"""Command-line arguments that contradict each other or the code they name: a recipe naming
another problem than the run given to `--resume`, an `--out` that is not the resumed folder, a
problem subclass without its own `Params` (exit 2, one line, nothing written), and a
`module:Name` given by `--set`, found next to the recipe file as the same name written in it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from evofair.cli import main

ROOT = Path(__file__).resolve().parents[2]
ZDT = {
    "name": "zdt-args",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 1},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 5,
    "hv_ref": [1.1, 1.1],
}
MODULE = '''
from problems.classic.benchmarks import ZDT1, ZDTParams


class Declared(ZDT1):
    """ZDT1 under another name, with its arguments model."""

    Params = ZDTParams


class Undeclared(ZDT1):
    """ZDT1 under another name, without a Params of its own."""
'''


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evofair: error: "), err
    return err[0]


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def recipe_and_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("args")
    recipe = folder / "zdt.yaml"
    recipe.write_text(yaml.safe_dump(ZDT))
    assert main(["run", str(recipe), "--out", str(folder / "run"), "--quiet"]) == 0
    return recipe, folder / "run"


def test_a_recipe_of_another_problem_is_refused_on_resume(recipe_and_run, capsys):
    _, run = recipe_and_run
    before = tree_digest(run)
    toy = str(ROOT / "runs" / "toy.yaml")
    assert main(["run", toy, "--resume", str(run), "--set", "algorithm.generations=2", "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "'toy_mlp'" in line and "'zdt1'" in line and "--resume" in line
    assert tree_digest(run) == before


def test_an_out_other_than_the_resumed_folder_is_refused(recipe_and_run, tmp_path, capsys):
    _, run = recipe_and_run
    before = tree_digest(run)
    elsewhere = tmp_path / "elsewhere"
    assert main(["run", "--resume", str(run), "--out", str(elsewhere), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert str(elsewhere) in line and str(run) in line
    assert not elsewhere.exists() and tree_digest(run) == before


def test_the_runs_own_recipe_continues_it(recipe_and_run, tmp_path, capsys):
    recipe, run = recipe_and_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert (
        main(["run", str(recipe), "--resume", str(copy), "--out", str(copy), "--set", "algorithm.generations=2"]) == 0
    )
    assert yaml.safe_load((copy / "config.yaml").read_text())["algorithm"]["generations"] == 2


@pytest.fixture
def module_next_to_recipe(tmp_path) -> Path:
    """A recipe of zdt1 with a module beside it that defines two ZDT1 subclasses."""
    name = f"nextdoor_{tmp_path.name.replace('-', '_')}"  # a fresh module per test (sys.modules caches)
    (tmp_path / f"{name}.py").write_text(MODULE)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(ZDT))
    return recipe


def test_a_module_name_given_by_set_is_found_next_to_the_recipe(module_next_to_recipe, tmp_path):
    module = next(tmp_path.glob("nextdoor_*.py")).stem
    out = tmp_path / "out"
    reference = f"{module}:Declared"
    assert main(["run", str(module_next_to_recipe), "--set", f"problem.name={reference}", "--out", str(out), "-q"]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["problem"]["name"] == reference and str(tmp_path) in config["paths"]


def test_a_problem_subclass_without_its_own_params_is_one_line(module_next_to_recipe, tmp_path, capsys):
    module = next(tmp_path.glob("nextdoor_*.py")).stem
    out = tmp_path / "out"
    argv = ["run", str(module_next_to_recipe), "--set", f"problem.name={module}:Undeclared", "--out", str(out), "-q"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "Undeclared" in line and "Params = ZDTParams" in line and "problem.name" in line
    assert not out.exists()
