"""Serial and Ray executors give the same front; realisation is a pure function of the plan."""

import pytest

import evofair
from evofair.engine.pipeline import GenomeRef, OpCall, Operators, Plan, realise
from evofair.executors.serial import SerialExecutor
from evofair.problems.classic.toy import ToyMLP, ToyParams


def toy_recipe(executor: str) -> dict:
    return {
        "name": "toy",
        "problem": {"name": "toy_mlp", "args": {"n_train": 128, "n_eval": 64}},
        "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 3},
        "operators": {
            "crossover": [{"name": "uniform"}, {"name": "ties", "args": {"density": 0.5}}],
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
            "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "adamw", "lr": 0.01, "batch_size": 32}},
        },
        "executor": {"name": executor, "eval_chunk": 4, **({} if executor == "serial" else {"num_workers": 2})},
        "seed": 7,
    }


def test_realise_is_pure_and_deterministic():
    problem = ToyMLP(ToyParams(n_train=64, n_eval=32)).ensure_setup()
    ops = Operators.load()
    p1, p2 = problem.init_weights(1), problem.init_weights(2)
    before = {k: v.clone() for k, v in p1.items()}
    plan = Plan(
        parents=(GenomeRef("a", "h1"), GenomeRef("b", "h2")),
        crossover=OpCall("uniform", {}, 11, child=1),
        mutation=OpCall("gaussian", {"sigma": 0.1}, 12),
        refine=OpCall("sft", {"epochs": 1, "lr": 0.01}, 13),
    )
    a = realise(plan, [p1, p2], problem, ops).weights
    b = realise(plan, [p1, p2], problem, ops).weights
    assert all((a[k] == b[k]).all() for k in a)
    assert all((p1[k] == before[k]).all() for k in p1)
    other = realise(Plan(parents=plan.parents, crossover=OpCall("uniform", {}, 11, child=0)), [p1, p2], problem, ops)
    assert any((other.weights[k] != a[k]).any() for k in a)


def test_batched_chunks_match_single_evaluation():
    problem = ToyMLP(ToyParams(n_train=64, n_eval=64)).ensure_setup()
    genomes = [problem.init_weights(s) for s in range(7)]
    ex = SerialExecutor(eval_chunk=3)
    ex.start(None, problem)
    batched = ex.evaluate(genomes)
    for i, g in enumerate(genomes):
        alone = problem.evaluate([g], "test")
        assert alone["error"][0] == batched["test"]["error"][i]
        assert alone["gap"][0] == batched["test"]["gap"][i]


@pytest.mark.slow
def test_serial_and_ray_give_identical_front(tmp_path):
    serial = evofair.run(toy_recipe("serial"), tmp_path / "serial", progress=False)
    ray_run = evofair.run(toy_recipe("ray"), tmp_path / "ray", progress=False)
    assert (tmp_path / "serial" / "front.csv").read_text() == (tmp_path / "ray" / "front.csv").read_text()
    assert list(serial.history["hv_val"]) == list(ray_run.history["hv_val"])
    assert len(serial.front) > 0


@pytest.mark.slow
def test_ray_worker_killed_mid_task_is_retried(tmp_path):
    """A worker dies (SIGKILL) in the middle of a fine-tuning task: Ray restarts the actor, the
    task runs again, and the run ends with every individual exactly once and the same front."""
    marker = tmp_path / "crashed"
    recipe = toy_recipe("ray")
    recipe["problem"]["args"]["crash_once_marker"] = str(marker)
    evofair.run(recipe, tmp_path / "ray", progress=False)
    assert marker.exists()  # the crash did happen
    evofair.run(toy_recipe("serial"), tmp_path / "serial", progress=False)
    assert (tmp_path / "serial" / "front.csv").read_text() == (tmp_path / "ray" / "front.csv").read_text()
    from evofair.store.run_store import RunStore

    store = RunStore(tmp_path / "ray", readonly=True)
    ids = [i.id for i in store.individuals()]
    assert len(ids) == len(set(ids)) == 8 * 3
    store.close()


@pytest.mark.slow
def test_ray_retries_used_up_is_one_line_and_the_run_resumes(tmp_path, capsys):
    """A worker killed with `max_retries: 0`: one line naming the setting (no ActorDiedError
    traceback), exit 2, the death in the run's events; `--resume` with retries finishes the run,
    and its front equals an uninterrupted serial run's."""
    import yaml

    from evofair.cli import main
    from evofair.store.run_store import RunStore

    recipe = toy_recipe("ray")
    recipe["problem"]["args"]["crash_once_marker"] = str(tmp_path / "crashed")
    recipe["executor"]["max_retries"] = 0
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "ray"
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("evofair: error:") and "executor.max_retries=0" in last and "--resume" in last
    assert "Traceback" not in err
    store = RunStore(out, readonly=True)
    assert [e["kind"] for e in store.events("worker_error")] == ["worker_error"]
    store.close()

    assert main(["run", "--resume", str(out), "--set", "executor.max_retries=3", "--quiet"]) == 0
    evofair.run(toy_recipe("serial"), tmp_path / "serial", progress=False)
    assert (out / "front.csv").read_text() == (tmp_path / "serial" / "front.csv").read_text()
