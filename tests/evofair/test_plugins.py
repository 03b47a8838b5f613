"""A third party's problem and operators, run through evofair without touching evofair's files.

The plugin is a package written here into a temporary folder, "installed" the way pip leaves an
installed distribution (a `<name>.dist-info` folder with METADATA and entry_points.txt next to the
package), and made visible to an `evofair` subprocess through PYTHONPATH only. The same module is
also used without any installation, named `module:Name` from a recipe lying next to it.

Oracles: the objective values each stored individual carries, recomputed here from its stored
genome with the formula the plugin claims; the plugin mutation's fingerprint (every offspring lies
on its grid; the initial population does not); the installed and the referenced run give the same
front byte for byte; the front is mutually non-dominated (checked by hand).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import evofair
from evofair.cli import main
from evofair.executors.ray_jobs import JOB_RECIPE, stage_project, user_modules
from evofair.lifecycle.recipe import load_recipe, resolved_yaml
from evofair.store.run_store import RunStore

EVOFAIR = Path(sys.executable).parent / "evofair"  # the venv's console script, as a user runs it

# The plugin's code: a vector problem with a pymoo-style mutation, and a weights problem with a
# weights mutation. `Bowl` has no training contract (no build_model / train_batches / loss), so
# pairing it with the `sft` refiner must be refused at validation.
PLUGIN = '''\
"""Two wells and a bowl: a third-party evofair plugin."""
import numpy as np
import torch
from pydantic import Field
from pymoo.core.mutation import Mutation
from pymoo.operators.mutation.pm import PM

from evofair.core.problem import Objective, VectorProblem, WeightsProblem
from evofair.core.registry import Args, component


class WellsParams(Args):
    a: float = Field(0.5, description="the wells sit at (a, a) and (-a, -a)")


class TwoWells(VectorProblem):
    """Two wells: f1 = |x - a|^2, f2 = |x + a|^2 on [-2, 2]^2."""

    Params = WellsParams
    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (20.0, 20.0)
    n_var = 2

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.xl, self.xu = np.full(2, -2.0), np.full(2, 2.0)

    def evaluate(self, genomes, split):
        x, a = np.asarray(genomes, dtype=float), self.params.a
        return {"f1": ((x - a) ** 2).sum(1), "f2": ((x + a) ** 2).sum(1)}


class SnapArgs(Args):
    step: float = Field(0.125, gt=0)


class _Snap(Mutation):
    def __init__(self, step):
        super().__init__()
        self.step, self.pm = step, PM(eta=20)

    def _do(self, problem, X, **kwargs):
        X = self.pm._do(problem, X, **kwargs)
        return np.clip(np.round(X / self.step) * self.step, problem.xl, problem.xu)


@component("vector_mutation", "snap", SnapArgs)
def snap(args):
    """Polynomial mutation, then x rounded to a grid of `step`."""
    return _Snap(args.step)


class Bowl(WeightsProblem):
    """A weights genome w (4 numbers): f1 = |w - 1|^2, f2 = |w + 1|^2. No training contract."""

    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (50.0, 50.0)

    def init_weights(self, seed):
        return {"w": torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)}

    def evaluate(self, genomes, split):
        w = np.stack([g["w"].numpy() for g in genomes])
        return {"f1": ((w - 1) ** 2).sum(1), "f2": ((w + 1) ** 2).sum(1)}


class QuantiseArgs(Args):
    sigma: float = Field(0.3, gt=0)
    step: float = Field(0.25, gt=0)


@component("mutation", "quantise", QuantiseArgs)
def quantise(weights, args, *, seed):
    """Gaussian noise, then every entry rounded to a grid of `step`."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.round((v + args.sigma * torch.randn(v.shape, generator=gen, dtype=v.dtype)) / args.step)
            * args.step for k, v in sorted(weights.items())}
'''

ENTRY_POINTS = """\
[evofair.problem]
two_wells = efplug_wells.shapes:TwoWells
bowl = efplug_wells.shapes:Bowl

[evofair.vector_mutation]
snap = efplug_wells.shapes:snap

[evofair.mutation]
quantise = efplug_wells.shapes:quantise
"""

A, STEP, SEED = 0.75, 0.125, 3


def wells_recipe(problem: str, mutation: str) -> dict:
    return {
        "name": "wells",
        "problem": {"name": problem, "args": {"a": A}},
        "algorithm": {"pop_size": 12, "generations": 5},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": mutation, "args": {"step": STEP}}},
        "seed": SEED,
    }


def write_yaml(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the plugin package and its dist-info, as site-packages would."""
    root = tmp_path_factory.mktemp("site")
    (root / "efplug_wells").mkdir()
    (root / "efplug_wells" / "__init__.py").write_text("")
    (root / "efplug_wells" / "shapes.py").write_text(PLUGIN)
    info = root / "efplug_wells-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: efplug-wells\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def user_env(cache: Path) -> dict:
    """The environment of a user's shell: no PYTHONPATH of the test runner, HF offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", EVOFAIR_CACHE=str(cache))
    return env


@pytest.fixture
def bare_env(tmp_path) -> dict:
    return user_env(tmp_path / "cache")


@pytest.fixture(scope="module")
def installed_run(site, tmp_path_factory):
    """`evofair run recipe.yaml` of the installed plugin's components, by their entry-point names."""
    tmp = tmp_path_factory.mktemp("installed")
    before = distribution("evofair").read_text("entry_points.txt")
    recipe = write_yaml(tmp / "recipe.yaml", wells_recipe("two_wells", "snap"))
    proc = evofair_cli(
        "run", recipe, "--out", tmp / "out", "--quiet", cwd=tmp, env=dict(user_env(tmp / "cache"), PYTHONPATH=str(site))
    )
    return proc, tmp / "out", before


def evofair_cli(*args, cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(EVOFAIR), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def check_wells_run(out: Path) -> list:
    """Independent checks of a TwoWells run; returns its individuals."""
    store = RunStore(out, readonly=True)
    try:
        inds = store.individuals()
    finally:
        store.close()
    assert len(inds) == 12 * 5
    x = np.array([i.x for i in inds])
    assert x.shape == (60, 2) and np.all((-2 <= x) & (x <= 2))
    for split in ("val", "test"):  # the stored objectives are the plugin's formula at the stored x
        np.testing.assert_allclose([i.metrics[split]["f1"] for i in inds], ((x - A) ** 2).sum(1), rtol=1e-12)
        np.testing.assert_allclose([i.metrics[split]["f2"] for i in inds], ((x + A) ** 2).sum(1), rtol=1e-12)
    # the plugin's `snap` mutation made every offspring: on the grid; random initial points are not
    born = np.array([i.generation > 0 for i in inds])
    on_grid = np.all(np.isclose(x / STEP, np.round(x / STEP), atol=1e-9, rtol=0), axis=1)
    assert on_grid[born].all() and not on_grid[~born].any()
    # front.csv: individuals of the run, mutually non-dominated, with the stored values
    lines = (out / "front.csv").read_text().splitlines()
    assert lines[0] == "id,generation,f1_val,f1_test,f2_val,f2_test" and len(lines) > 2
    by_id = {i.id: i for i in inds}
    front = np.array([[by_id[row.split(",")[0]].metrics["val"][m] for m in ("f1", "f2")] for row in lines[1:]])
    np.testing.assert_allclose(front, [[float(v) for v in row.split(",")[2::2]] for row in lines[1:]], rtol=1e-9)
    for p in front:
        assert not any(np.all(q <= p) and np.any(q < p) for q in front)
    return inds


# -- installed: entry points -------------------------------------------------------------------


def test_installed_plugin_runs_from_a_recipe_through_the_cli(installed_run):
    proc, out, before = installed_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"evofair: wrote {out}")
    check_wells_run(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["problem"]["name"] == "two_wells" and config["operators"]["mutation"]["name"] == "snap"
    assert distribution("evofair").read_text("entry_points.txt") == before  # evofair's files untouched


def test_problems_lists_installed_plugins(site, bare_env, tmp_path):
    proc = evofair_cli("problems", cwd=tmp_path, env=dict(bare_env, PYTHONPATH=str(site)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections, current = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split()[0])
    assert {"two_wells", "bowl", "zdt1", "biasbios"} <= set(sections["problems"])
    assert "snap" in sections["vector_mutation operators"] and "snap" not in sections["mutation operators"]
    assert {"quantise", "gaussian"} <= set(sections["mutation operators"])
    wells = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["two_wells"])
    assert "Two wells: f1 = |x - a|^2" in wells and "[a=0.5]" in wells
    # without the plugin on the path, it is gone: nothing about it was written into evofair
    proc = evofair_cli("problems", cwd=tmp_path, env=bare_env)
    assert proc.returncode == 0 and "two_wells" not in proc.stdout and "snap" not in proc.stdout


# -- not installed: `module:Name` next to the recipe -----------------------------------------------


def test_referenced_module_next_to_the_recipe(installed_run, bare_env, tmp_path):
    """The same components, named `my_wells:TwoWells` from a recipe beside my_wells.py, run from
    another directory with no PYTHONPATH: the same front as the installed plugin's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_wells.py").write_text(PLUGIN)
    recipe = write_yaml(project / "wells.yaml", wells_recipe("my_wells:TwoWells", "my_wells:snap"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = evofair_cli("run", recipe, "--out", "out", "--quiet", cwd=elsewhere, env=bare_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_wells_run(elsewhere / "out")
    installed, installed_out = installed_run[0], installed_run[1]
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (elsewhere / "out" / "front.csv").read_bytes() == (installed_out / "front.csv").read_bytes()


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
