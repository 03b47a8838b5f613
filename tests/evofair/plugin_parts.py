"""The third-party plugin of tests/evofair/test_plugin*.py: its code, its entry points, and the
independent checks of a run of it, shared by the installed and the referenced-module tests.

`PLUGIN` is written by the tests into a temporary folder, either as an installed distribution's
package or as a plain module beside a recipe; nothing here is imported by evofair itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

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


def user_env(cache: Path) -> dict:
    """The environment of a user's shell: no PYTHONPATH of the test runner, HF offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", EVOFAIR_CACHE=str(cache))
    return env


@pytest.fixture
def bare_env(tmp_path) -> dict:
    """A user's environment with a cache of the test's own, so no run sees another's cached data."""
    return user_env(tmp_path / "cache")


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
