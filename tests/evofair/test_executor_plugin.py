"""Executors are plugins: a third party's executor from an installed package, and one-line errors for
a recipe's `executor:` fields, which depend on the executor `name` picks.

The third party's package is written here into a temporary folder with a `.dist-info` announcing
`[evofair.executor]`, as pip would leave it, and reached by an `evofair` subprocess through
PYTHONPATH only. Oracles: its call log (it really ran, with its own recipe field) and the serial
executor's front.csv, byte for byte.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import one_error_line

from evofair.cli import main
from evofair.lifecycle.executor_section import switch_executor
from evofair.lifecycle.recipe import parse_recipe

PLUGIN = '''\
"""A third party's executor: the serial one, noting every call in a file."""
from pathlib import Path

from pydantic import Field

from evofair.core.registry import component
from evofair.executors.base import ExecutorArgs
from evofair.executors.serial import SerialExecutor


class NotingArgs(ExecutorArgs):
    log_file: str = Field(description="where each call is noted")


@component("executor", "noting", NotingArgs)
class NotingExecutor(SerialExecutor):
    """The serial executor, noting each realise and evaluate call."""

    def __init__(self, eval_chunk=32, log_file=""):
        super().__init__(eval_chunk)
        self.log_file = Path(log_file)

    def _note(self, what, n):
        with self.log_file.open("a") as fh:
            fh.write(f"{what} {n}\\n")

    def realise(self, plans, store):
        self._note("realise", len(plans))
        return super().realise(plans, store)

    def evaluate(self, genomes):
        self._note("evaluate", len(genomes))
        return super().evaluate(genomes)
'''
RECIPE = {
    "name": "toy-noting",
    "problem": {"name": "toy_mlp", "args": {"n_train": 64, "n_eval": 32, "hidden": 4}},
    "algorithm": {"pop_size": 4, "generations": 2},
    "operators": {
        "crossover": {"name": "uniform"},
        "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
        "refine": {"name": "sft", "args": {"epochs": 1, "lr": 0.01, "batch_size": 32}},
    },
    "executor": {"name": "serial", "eval_chunk": 3},
    "seed": 2,
}


@pytest.fixture
def site(tmp_path) -> Path:
    """A folder holding the plugin package and its dist-info, as site-packages would."""
    root = tmp_path / "site"
    (root / "efplug_noting").mkdir(parents=True)
    (root / "efplug_noting" / "__init__.py").write_text(PLUGIN)
    info = root / "efplug_noting-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: efplug-noting\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[evofair.executor]\nnoting = efplug_noting:NotingExecutor\n")
    return root


def test_an_installed_executor_runs_a_yaml_recipe_through_the_cli(site, tmp_path):
    assert (
        main(["run", str(write(tmp_path / "serial.yaml", RECIPE)), "--out", str(tmp_path / "serial"), "--quiet"]) == 0
    )
    notes = tmp_path / "calls.txt"
    recipe = write(
        tmp_path / "noting.yaml", {**RECIPE, "executor": {"name": "noting", "eval_chunk": 3, "log_file": str(notes)}}
    )
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-m", "evofair.cli", "run", str(recipe), "--out", str(tmp_path / "noting"), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    front = (tmp_path / "noting" / "front.csv").read_text()
    assert front == (tmp_path / "serial" / "front.csv").read_text() and len(front.splitlines()) > 1
    # each generation: its 4 offspring realised, then evaluated (evaluate_stored → evaluate)
    assert notes.read_text().splitlines() == ["realise 4", "evaluate 4"] * 2
    config = yaml.safe_load((tmp_path / "noting" / "config.yaml").read_text())
    assert config["executor"] == {"name": "noting", "eval_chunk": 3, "log_file": str(notes)}


def write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["--set", "executor.name=processes", "--set", "executor.num_workers=0"],
            "executor.num_workers: Input should be greater than or equal to 1 (got 0)",
        ),
        (["--set", "executor.name=nope"], "executor.name: unknown executor 'nope' (expected one of: "),
        (["--set", "executor.address=127.0.0.1:6379"], "executor.address: unknown key"),  # a Ray field on serial
        (["--address", "127.0.0.1:6379"], "executor.address: unknown key"),
        (
            ["--executor", "ray", "--set", "executor.num_gpus_per_task=-1"],
            "executor.num_gpus_per_task: Input should be",
        ),
        (["--set", "executor.eval_chunk=0"], "executor.eval_chunk: Input should be greater than or equal to 1"),
        (["--set", "executor.name=textwrap:dedent"], "executor.name: 'textwrap:dedent' is not an executor"),
    ],
)
def test_bad_executor_fields_are_one_line_naming_the_key(args, needle, tmp_path, capsys):
    out = tmp_path / "run"
    line = one_error_line(capsys, ["run", "zdt1", "--out", str(out), *args], out)
    assert needle in line, line


def test_switching_executor_keeps_only_the_common_fields():
    """`--executor NAME` (and `evofair submit`, which runs on Ray) drops the other executor's fields but
    keeps eval_chunk, on which the front depends."""
    raw = {**RECIPE, "executor": {"name": "ray", "num_workers": 2, "address": "auto", "eval_chunk": 3}}
    assert switch_executor(raw, "serial")["executor"] == {"name": "serial", "eval_chunk": 3}
    assert switch_executor(raw, "ray") == raw
    assert switch_executor({"problem": {"name": "zdt1"}}, "processes")["executor"] == {"name": "processes"}
    assert parse_recipe(switch_executor(raw, "processes")).executor.model_dump() == {
        "name": "processes",
        "eval_chunk": 3,
        "num_workers": None,
    }


def test_a_serial_run_recorded_with_every_former_ray_field_resumes(tmp_path, zdt_recipe):
    """config.yaml of a serial run from before executors were plugins recorded Ray's fields too; they
    never applied to it, and resuming reads it without them."""
    import evofair

    evofair.run({**zdt_recipe, "algorithm": {"pop_size": 8, "generations": 2}}, tmp_path / "run", progress=False)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    config["executor"] = {
        "name": "serial",
        "address": None,
        "num_workers": None,
        "num_cpus_per_task": 1.0,
        "num_gpus_per_task": None,
        "resources_per_task": {},
        "eval_chunk": 32,
        "max_retries": 3,
        "placement_timeout_s": 60.0,
        "start_timeout_s": 1800.0,
        "shared_store": "auto",
    }
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    con = sqlite3.connect(tmp_path / "run" / "evofair.sqlite")
    with con:  # a run of that time had no seal either (one that has refuses the edit: test_sealed_run.py)
        con.execute("DELETE FROM meta WHERE key='seal'")
    con.close()
    assert main(["run", "--resume", str(tmp_path / "run"), "--set", "algorithm.generations=3", "--quiet"]) == 0
    assert evofair.load(tmp_path / "run").history["generation"].tolist() == [0, 1, 2]
