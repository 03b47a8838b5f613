"""Every shipped algorithm resumes: NSGA-II, NSGA-III, SMS-EMOA (pymoo) and NSGA-II on DEAP.

Each is killed mid-commit at a generation (SIGKILL, nothing cleans up) and resumed, and run short
then extended with more `algorithm.generations`; both must end on the uninterrupted run's
`front.csv`, byte for byte, and on its history (seconds aside). NSGA-III is the one whose survival
keeps state beyond the population (its normalisation points and `opt`), which the stored JSON
state must carry across.
"""

from __future__ import annotations

import signal

import pytest
import yaml
from conftest import cli_subprocess

import evofair
from evofair.cli import main

ZDT1 = {"name": "zdt1", "args": {"n_var": 5}}
ALGORITHMS = {
    "nsga2": ({"name": "nsga2", "pop_size": 8}, ZDT1),
    "nsga3": ({"name": "nsga3", "pop_size": 16, "n_partitions": 4}, {"name": "dtlz2", "args": {"n_var": 6}}),
    "smsemoa": ({"name": "smsemoa", "pop_size": 8}, ZDT1),
    "deap": ({"name": "nsga2", "backend": "deap", "pop_size": 8}, ZDT1),
}
GENERATIONS = 5


def recipe(which: str, generations: int = GENERATIONS) -> dict:
    algorithm, problem = ALGORITHMS[which]
    return {
        "name": f"resume-{which}",
        "problem": problem,
        "algorithm": {**algorithm, "generations": generations},
        "operators": {"crossover": {"name": "sbx", "args": {"eta": 15, "prob": 0.9}}, "mutation": {"name": "pm"}},
        "seed": 3,
    }


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The uninterrupted runs: front.csv and history.csv without the seconds column."""
    out = {}
    for which in ALGORITHMS:
        run = tmp_path_factory.mktemp("ref") / which
        evofair.run(recipe(which), run, progress=False)
        out[which] = ((run / "front.csv").read_bytes(), history(run))
    return out


def history(run) -> list[str]:
    return [row.rsplit(",", 1)[0] for row in (run / "history.csv").read_text().splitlines()]


@pytest.mark.parametrize("which", list(ALGORITHMS))
def test_killed_mid_run_resumes_to_the_same_front(which, references, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(which)))
    out = tmp_path / "run"
    killed = cli_subprocess(
        "run", str(path), "--out", str(out), "--quiet", env={"EVOFAIR_FAILPOINT": "kill_mid_commit@3"}, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "front.csv").exists()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert (out / "front.csv").read_bytes() == references[which][0]
    assert history(out) == references[which][1]
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize("which", list(ALGORITHMS))
def test_finished_run_extended_matches_the_longer_run(which, references, tmp_path):
    out = tmp_path / "run"
    evofair.run(recipe(which, generations=3), out, progress=False)
    assert main(["run", "--resume", str(out), "--set", f"algorithm.generations={GENERATIONS}", "--quiet"]) == 0
    assert (out / "front.csv").read_bytes() == references[which][0]
    assert history(out) == references[which][1]
