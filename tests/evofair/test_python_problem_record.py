"""A problem passed to `evofair.run` as a Python object: config.yaml records its class and arguments,
and `--resume` and `explore` rebuild it in a new process, or say in one line why they cannot."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml
from conftest import cli_subprocess

import evofair
from evofair.errors import UserError

MODULE = '''
import numpy as np
from pydantic import Field

from evofair import Args, Objective, VectorProblem


class ShiftParams(Args):
    shift: float = Field(2.0, ge=0)


class Shifted(VectorProblem):
    """Schaffer N.1 with the second optimum at `shift`, scored as a maximised objective."""

    Params = ShiftParams
    objectives = (Objective("f1"), Objective("closeness", "max"))
    default_hv_ref = (100.0, 100.0)
    n_var, xl, xu = 1, np.array([-10.0]), np.array([10.0])

    def evaluate(self, genomes, split):
        x = np.asarray(genomes)[:, 0]
        return {"f1": x**2, "closeness": -(x - self.params.shift) ** 2}


class Positional(Shifted):
    def __init__(self, shift):
        super().__init__(ShiftParams(shift=shift))
'''
RECIPE = {
    "name": "shifted",
    "problem": {"name": "shifted", "args": {"shift": 1.0}},  # a label, and args the object ignores
    "algorithm": {"pop_size": 8, "generations": 3},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 5,
}


@pytest.fixture
def module(tmp_path, monkeypatch):
    """`my_shifted.py` in a folder of its own, importable in this process only (as a user's script folder)."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "my_shifted.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    import importlib

    yield importlib.import_module("my_shifted"), folder
    sys.modules.pop("my_shifted", None)


def _config(out):
    return yaml.safe_load((out / "config.yaml").read_text())


def test_config_records_the_class_its_params_and_its_folder(tmp_path, module):
    mod, folder = module
    evofair.run(RECIPE, tmp_path / "run", problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    problem = _config(tmp_path / "run")["problem"]
    assert problem == {"name": "my_shifted:Shifted", "args": {"shift": 3.0}}  # not the recipe's label and args
    assert str(folder) in _config(tmp_path / "run")["paths"]


def test_cli_resume_rebuilds_it_and_continues_as_one_longer_run(tmp_path, module):
    mod, _ = module
    evofair.run(RECIPE, tmp_path / "run", problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    longer = {**RECIPE, "algorithm": {"pop_size": 8, "generations": 5}}
    evofair.run(longer, tmp_path / "straight", problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    # a new process, elsewhere, without the module's folder on its path: config.yaml is all it has
    cli_subprocess(
        "run",
        "--resume",
        str(tmp_path / "run"),
        "--set",
        "algorithm.generations=5",
        "--quiet",
        "--trust-code",  # config.yaml names the class by module path: the user vouches for it
        env={"PYTHONPATH": ""},
    )
    assert (tmp_path / "run" / "front.csv").read_text() == (tmp_path / "straight" / "front.csv").read_text()
    assert len(evofair.load(tmp_path / "run").history) == 5


def test_explore_rebuilds_it_in_a_new_process(tmp_path, module):
    mod, _ = module
    evofair.run(RECIPE, tmp_path / "run", problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    code = textwrap.dedent(f"""
        from evofair.explorer.data import RunData
        data = RunData({str(tmp_path / "run")!r}, trust_code=True)
        print(type(data.problem).__name__, data.problem.params.shift, data.note, data.snapshot.objectives)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "Shifted 3.0 None (('f1', 'min'), ('closeness', 'max'))"


def test_a_class_defined_in_a_function_is_recorded_as_not_rebuildable(tmp_path, module, capsys):
    mod, _ = module

    class Local(mod.Shifted):
        pass

    out = tmp_path / "run"
    evofair.run(RECIPE, out, problem=Local(mod.ShiftParams(shift=3.0)), progress=False)
    problem = _config(out)["problem"]
    assert problem["name"].endswith(":test_a_class_defined_in_a_function_is_recorded_as_not_rebuildable.<locals>.Local")
    assert problem["args"] == {"shift": 3.0} and "defined inside a function" in problem["not_rebuildable"]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    from evofair.cli import main

    assert main(["run", "--resume", str(out), "--set", "algorithm.generations=4", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: "), lines
    assert "cannot rebuild" in lines[0] and "evofair.run(resume=DIR, problem=" in lines[0]
    assert "evofair.load(DIR)" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written
    # explore shows the run from its store alone, with the recorded directions and a one-line note
    from evofair.explorer.data import RunData

    data = RunData(out)
    assert data.problem is None and "cannot rebuild" in data.note and "\n" not in data.note
    assert data.snapshot.objectives == (("f1", "min"), ("closeness", "max"))
    assert {i.id for i in data.snapshot.front()} == set(evofair.load(out).ids)
    # from Python, the same object continues it (no rebuild needed)
    more = evofair.run(
        resume=out,
        problem=Local(mod.ShiftParams(shift=3.0)),
        recipe={**RECIPE, "algorithm": {"pop_size": 8, "generations": 4}},
        progress=False,
    )
    assert list(more.history["generation"]) == [0, 1, 2, 3]


def test_resume_from_python_refuses_a_different_object(tmp_path, module):
    mod, _ = module
    out = tmp_path / "run"
    evofair.run(RECIPE, out, problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    with pytest.raises(UserError, match=r"differs from the run's config.yaml in problem.args.shift"):
        evofair.run(resume=out, problem=mod.Shifted(mod.ShiftParams(shift=2.5)), progress=False)
    result = evofair.run(resume=out, problem=mod.Shifted(mod.ShiftParams(shift=3.0)), progress=False)
    assert len(result.history) == 3  # its own config.yaml: nothing more to do


def test_a_constructor_with_other_arguments_is_not_rebuildable(tmp_path, module):
    mod, _ = module
    out = tmp_path / "run"
    evofair.run(RECIPE, out, problem=mod.Positional(3.0), progress=False)
    problem = _config(out)["problem"]
    assert problem["name"] == "my_shifted:Positional"
    assert "Positional.__init__ takes (shift), not only (params, data_root)" in problem["not_rebuildable"]


def test_a_registered_class_keeps_its_registered_name(tmp_path):
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    raw = {
        "problem": {"name": "toy_mlp"},
        "algorithm": {"pop_size": 4, "generations": 1},
        "operators": {"mutation": {"name": "gaussian"}},
    }
    evofair.run(raw, tmp_path / "run", problem=ToyMLP(ToyParams(n_train=32, n_eval=16, hidden=3)), progress=False)
    problem = _config(tmp_path / "run")["problem"]
    assert problem["name"] == "toy_mlp" and problem["args"]["hidden"] == 3 and problem["args"]["n_train"] == 32
    assert np.isfinite(evofair.load(tmp_path / "run").F).all()
