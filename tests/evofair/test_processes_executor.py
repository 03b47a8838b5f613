"""The `processes` executor (a local pool of worker processes) and the executor contract it shares.

Oracle: the serial executor. The same plans give the same stored keys, logs and metrics (unit
level, on a real RunStore), and the same recipe gives the same front.csv byte for byte through the
CLI, on a checkpoint problem with local learning (toy) and a vector problem (ZDT1). Failures:
a worker's exception is one line with its traceback in the run's events; a problem object that
cannot be pickled is one line; an interrupt stops every worker.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import yaml
from conftest import cli_subprocess

from evofair.cli import main
from evofair.engine.pipeline import GenomeRef, OpCall, Plan
from evofair.errors import UserError
from evofair.executors.base import Made
from evofair.executors.processes import ProcessExecutor
from evofair.executors.serial import SerialExecutor
from evofair.lifecycle.rebuild import ProblemFactory
from evofair.store.run_store import RunStore

TOY = {"n_train": 64, "n_eval": 32, "hidden": 4}
SMALL = {  # `--set`s shrinking a packaged recipe to seconds
    "toy": ["algorithm.pop_size=6", "algorithm.generations=2", "problem.args.n_train=96", "problem.args.n_eval=48"],
    "zdt1": ["algorithm.pop_size=12", "algorithm.generations=4", "problem.args.n_var=6"],
}


def plans_of(keys: list[str]) -> list[Plan]:
    """Two generations' worth: initial genomes, then merged and mutated children of the first ones."""
    if not keys:
        return [Plan(init=OpCall("init", {}, s)) for s in range(5)]
    return [
        Plan(
            parents=(GenomeRef("a", keys[i]), GenomeRef("b", keys[i + 1])),
            crossover=OpCall("uniform", {}, 10 + i),
            mutation=OpCall("gaussian", {"sigma": 0.1}, 20 + i),
        )
        for i in range(3)
    ]


def generations(executor, root) -> list[tuple[list[Made], dict]]:
    store = RunStore(root)
    try:
        executor.start(ProblemFactory("toy_mlp", TOY), None)
        out, keys = [], []
        for _ in range(2):
            made = executor.realise(plans_of(keys), store)
            keys = [m.key for m in made]
            out.append((made, executor.evaluate_stored(keys, store)))
            store.require_weights(keys)  # the executor put every offspring into the store
        return out
    finally:
        executor.close()
        store.close()


def test_processes_realise_and_evaluate_stored_match_serial(tmp_path):
    serial = generations(SerialExecutor(eval_chunk=2), tmp_path / "serial")
    pooled = generations(ProcessExecutor(eval_chunk=2, num_workers=2), tmp_path / "processes")
    for (made_s, metrics_s), (made_p, metrics_p) in zip(serial, pooled):
        assert made_s == made_p  # same keys (content hashes) and logs
        for split in metrics_s:
            for name in metrics_s[split]:
                np.testing.assert_array_equal(metrics_s[split][name], metrics_p[split][name])
    assert not multiprocessing.active_children()  # close() ended the workers


def test_evaluate_stored_reads_keys_it_did_not_make(tmp_path):
    """The default `evaluate_stored` evaluates the weights it just made as they were made, and reads
    any other key from the store (a resumed generation's parents)."""
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    problem = ToyMLP(ToyParams(**TOY)).ensure_setup()
    store = RunStore(tmp_path / "run")
    ex = SerialExecutor(eval_chunk=3)
    try:
        ex.start(None, problem)
        old = store.put_weights(problem.init_weights(9))
        made = ex.realise(plans_of([]), store)
        both = ex.evaluate_stored([old] + [m.key for m in made], store)
        alone = ex.evaluate([problem.init_weights(9)])
        assert both["val"]["error"][0] == alone["val"]["error"][0] and len(both["val"]["error"]) == 6
    finally:
        store.close()


def run_cli(name: str, out, *extra: str, subprocess: bool = False) -> str:
    args = ["run", name, "--out", str(out), "--quiet", *[a for s in SMALL[name] for a in ("--set", s)], *extra]
    if subprocess:
        cli_subprocess(*args)
    else:
        assert main(args) == 0
    return (out / "front.csv").read_text()


@pytest.mark.parametrize("name", ["toy", "zdt1"])
def test_processes_front_equals_serial_front_through_the_cli(name, tmp_path):
    serial = run_cli(name, tmp_path / "serial")
    pooled = run_cli(
        name,
        tmp_path / "processes",
        "--set",
        "executor.name=processes",
        "--set",
        "executor.num_workers=2",
        subprocess=True,
    )
    assert pooled == serial and len(serial.splitlines()) > 1
    config = yaml.safe_load((tmp_path / "processes" / "config.yaml").read_text())
    assert config["executor"] == {"name": "processes", "eval_chunk": 32, "num_workers": 2}  # resolved fields


BOOM = '''\
import numpy as np
from evofair.core.problem import Objective, VectorProblem


class Boom(VectorProblem):
    """Builds anywhere; fails to evaluate."""

    objectives = (Objective("f1"), Objective("f2"))
    n_var = 2

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.xl, self.xu = np.full(2, -1.0), np.full(2, 1.0)

    def evaluate(self, genomes, split):
        raise_in_worker()


def raise_in_worker():
    raise ValueError("boom-in-worker-4711")
'''


def test_worker_exception_is_one_line_and_its_traceback_is_kept(tmp_path, capsys):
    (tmp_path / "proc_boom.py").write_text(BOOM)
    recipe = tmp_path / "boom.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "problem": {"name": "proc_boom:Boom"},
                "algorithm": {"pop_size": 4, "generations": 2},
                "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
                "executor": {"name": "processes", "num_workers": 1},
                "hv_ref": [9.0, 9.0],
            }
        )
    )
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("evofair: error: a task failed in a worker process: ValueError: boom-in-worker-4711")
    assert "--resume" in last
    store = RunStore(out, readonly=True)
    (event,) = store.events("worker_error")
    store.close()
    assert "raise_in_worker" in event["data"]["traceback"] and "proc_boom.py" in event["data"]["traceback"]
    assert not multiprocessing.active_children()


def test_a_problem_object_that_cannot_be_pickled_is_one_line(zdt_recipe):
    from evofair.problems.classic.benchmarks import ZDT1, ZDTParams

    problem = ZDT1(ZDTParams(n_var=4))
    problem.hook = lambda: None  # not picklable
    ex = ProcessExecutor(num_workers=1)
    with pytest.raises(UserError) as err:
        ex.start(ProblemFactory("zdt1", instance=problem), problem)
    assert "cannot be sent to worker processes" in str(err.value) and "\n" not in str(err.value)
    ex.close()


def test_an_interrupt_stops_every_worker():
    """Ctrl-C reaches the driver only (workers ignore SIGINT); the driver then ends the workers at once."""
    ex = ProcessExecutor(eval_chunk=1, num_workers=2)
    ex.start(ProblemFactory("zdt1", {"n_var": 4}), None)
    assert len(set(ex.pids)) >= 1 and len(multiprocessing.active_children()) == 2

    def interrupt(phase, done, total):
        raise KeyboardInterrupt

    ex.on_progress = interrupt
    with pytest.raises(KeyboardInterrupt):
        ex.evaluate(np.full((6, 4), 0.5))
    assert not multiprocessing.active_children()
    ex.close()
