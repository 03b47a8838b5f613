"""A third party's plugin module used by reference (`module:Name`), without any installation: the
Python API on a weights problem, the names and requirements refused before anything is written, and
a job that ships the user's own modules with the recipe.

Oracles: the objective values recomputed from each stored genome with the plugin's formula; the
plugin mutation's grid as its fingerprint; the stored lineage replaying the plugin's own
`init_weights(seed)`; the exact one-line error a bad name gets; the staged job folder's listing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import distribution

import numpy as np
import pytest
import torch
from plugin_parts import (
    PLUGIN,
    bare_env,  # noqa: F401 (fixture)
    check_wells_run,
    wells_recipe,
    write_yaml,
)

import evofair
from evofair.cli import main
from evofair.executors.ray_jobs import JOB_RECIPE, stage_project, user_modules
from evofair.lifecycle.recipe import load_recipe, resolved_yaml
from evofair.store.run_store import RunStore


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    """my_wells.py in a folder, importable in this process only while the test runs."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_wells.py").write_text(PLUGIN)
    monkeypatch.setattr(sys, "path", list(sys.path))  # plugins.py extends sys.path: restored after
    sys.modules.pop("my_wells", None)  # another test's my_wells must not answer for this one
    yield folder
    sys.modules.pop("my_wells", None)


def test_python_api_runs_a_referenced_weights_problem(own_module, tmp_path):
    recipe = {
        "name": "bowl",
        "problem": {"name": "my_wells:Bowl"},
        "paths": [str(own_module)],
        "algorithm": {"pop_size": 8, "generations": 3},
        "operators": {
            "crossover": {"name": "uniform"},
            "mutation": {"name": "my_wells:quantise", "args": {"sigma": 0.3, "step": 0.25}},
        },
        "seed": 5,
    }
    result = evofair.run(recipe, tmp_path / "out", progress=False)
    store = RunStore(tmp_path / "out", readonly=True)
    try:
        inds = store.individuals()
        weights = {i.id: store.get_weights(i.weights_hash)["w"].numpy() for i in inds}
    finally:
        store.close()
    assert len(inds) == 8 * 3 and result.front
    for ind in inds:
        w = weights[ind.id]
        assert w.shape == (4,) and w.dtype == np.float64
        assert ind.metrics["val"]["f1"] == pytest.approx(float(((w - 1) ** 2).sum()), rel=1e-12)
        assert ind.metrics["test"]["f2"] == pytest.approx(float(((w + 1) ** 2).sum()), rel=1e-12)
        on_grid = np.allclose(w / 0.25, np.round(w / 0.25), atol=1e-9, rtol=0)
        if ind.generation == 0:  # torch.randn from the plugin's own seeding: never on the grid
            assert not on_grid
        else:  # crossover, then the plugin's mutation (recorded by its reference), always
            assert on_grid and ind.operator["mutation"]["name"] == "my_wells:quantise"
    first = min(inds, key=lambda i: i.id)
    seed = first.operator["init"]["seed"]  # the stored lineage replays the plugin's init_weights(seed)
    expected = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    assert first.generation == 0 and np.array_equal(weights[first.id], expected)


# -- refused: exit 2, one line, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    "problem, mutation, needle",
    [
        ("no_such_problem", "pm", "problem.name: unknown problem 'no_such_problem' (expected one of: "),
        ("nosuchmod:X", "pm", "problem.name: cannot import module 'nosuchmod'"),
        ("my_wells:NoSuch", "pm", "problem.name: module 'my_wells' has no attribute 'NoSuch'"),
        ("my_wells:snap", "pm", "problem.name: 'my_wells:snap' is a vector_mutation, not a problem"),
        ("my_wells:np", "pm", "problem.name: 'my_wells:np' is not a problem"),
        (
            "my_wells:TwoWells",
            "my_wells:TwoWells",
            "operators.mutation.name: 'my_wells:TwoWells' is not a vector_mutation",
        ),
        (
            "my_wells:TwoWells",
            "my_wells:quantise",
            "operators.mutation.name: 'my_wells:quantise' is a mutation, not a vector_mutation",
        ),
        ("my_wells:TwoWells", "quantise", "operators.mutation.name: unknown vector_mutation 'quantise'"),
    ],
)
def test_bad_component_names_exit_2_before_writing(own_module, tmp_path, capsys, problem, mutation, needle):
    recipe = wells_recipe(problem, mutation)
    recipe["operators"]["mutation"]["args"] = {}
    path = write_yaml(own_module / "bad.yaml", recipe)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"evofair: error: {path}: ") and needle in captured.err, captured.err
    assert "Traceback" not in captured.err and not out.exists()


def test_refiner_requirement_is_checked_at_validation(own_module, tmp_path, capsys):
    """`sft` requires Trainable; Bowl has none of its training methods: refused before anything."""
    recipe = {
        "name": "bowl",
        "problem": {"name": "my_wells:Bowl"},
        "operators": {"crossover": {"name": "uniform"}, "refine": {"name": "sft"}},
    }
    path = write_yaml(own_module / "bowl.yaml", recipe)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert (
        f"evofair: error: {path}: operators.refine.name: 'sft' needs Trainable.build_model, "
        "Trainable.train_batches, Trainable.loss, which problem 'my_wells:Bowl' does not implement"
    ) in err


# -- a job carries the user's own modules ----------------------------------------------------------


def test_job_ships_the_users_modules(tmp_path, monkeypatch, bare_env):
    """`user_modules` finds the recipe's own code (a module and a package beside the recipe), and
    `stage_project` ships it; the staged folder runs the recipe by itself once the user's folder
    is gone (as the job's working_dir does on a cluster)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    project = tmp_path / "project"
    (project / "wellops" / "__pycache__").mkdir(parents=True)
    (project / "my_wells.py").write_text(PLUGIN)
    (project / "wellops" / "__init__.py").write_text("")
    (project / "wellops" / "snapping.py").write_text("from my_wells import snap  # noqa: F401\n")
    (project / "wellops" / "__pycache__" / "snapping.cpython-311.pyc").write_bytes(b"stale")
    (project / "unrelated.py").write_text("raise SystemExit('not part of the job')\n")
    path = write_yaml(project / "wells.yaml", wells_recipe("my_wells:TwoWells", "wellops.snapping:snap"))
    modules = ("my_wells", "wellops", "wellops.snapping")
    for name in modules:  # find_spec answers from sys.modules: no other test's copy may be there
        sys.modules.pop(name, None)
    try:
        recipe = load_recipe(path)
        found = user_modules(recipe)
        assert sorted(found) == [project / "my_wells.py", project / "wellops"]
        # installed code (evofair's by name or by reference, the standard library's) is never shipped
        assert user_modules(load_recipe(write_yaml(project / "plain.yaml", {"problem": {"name": "zdt1"}}))) == []
        builtin = {
            "problem": {"name": "evofair.problems.classic.benchmarks:ZDT1"},
            "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "textwrap:dedent"}},
        }
        assert user_modules(load_recipe(write_yaml(project / "builtin.yaml", builtin))) == []
        dest = stage_project(tmp_path / "job", resolved_yaml(recipe), found)
    finally:
        for name in modules:
            sys.modules.pop(name, None)
    version = distribution("evofair").version
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["evofair", f"evofair-{version}.dist-info", JOB_RECIPE, "my_wells.py", "wellops"]
    )
    assert sorted(p.name for p in (dest / "wellops").iterdir()) == ["__init__.py", "snapping.py"]  # no bytecode
    assert (dest / "my_wells.py").read_text() == PLUGIN
    assert (dest / "evofair" / "problems" / "classic" / "benchmarks.py").exists()

    # The job's command, in the staged folder alone: the recipe's own folder no longer exists.
    shutil.rmtree(project)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evofair.cli",
            "run",
            JOB_RECIPE,
            "--executor",
            "serial",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        cwd=dest,
        env=bare_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_wells_run(tmp_path / "out")
