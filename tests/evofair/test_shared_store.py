"""Ray workers that write offspring weights into a shared run directory: only keys through the driver.

Oracles: a serial run of the same recipe (its front.csv byte for byte), the executor's `wire`
counter of the tensors that crossed between driver and workers (stored as the `object_store`
event), and `RunStore.verify` (every referenced file hashes to its name).
"""

from __future__ import annotations

import signal

import pytest
import yaml
from conftest import cli_subprocess

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.executors.base import WireCounter, tensor_bytes
from evofair.executors.ray_worker import PROBE, answer_probe
from evofair.store.run_store import RunStore
from evofair.store.weights_files import read_weights_file, weights_hash, write_weights_file

RECIPE = {
    "name": "toy-shared",
    "problem": {"name": "toy_mlp", "args": {"n_train": 96, "n_eval": 48, "hidden": 8}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 3},
    "operators": {
        "crossover": [{"name": "uniform"}, {"name": "ties", "args": {"density": 0.5}}],
        "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
        "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "adamw", "lr": 0.01, "batch_size": 32}},
    },
    "executor": {"name": "serial", "eval_chunk": 4},
    "seed": 3,
}
RAY = {"num_workers": 2, "num_gpus_per_task": 0}  # the Ray executor's own fields


def with_executor(name: str, shared_store: str = "auto") -> dict:
    extra = {**RAY, "shared_store": shared_store} if name == "ray" else {}
    return {**RECIPE, "executor": {**RECIPE["executor"], "name": name, **extra}}


def wire_of(out) -> dict:
    store = RunStore(out, readonly=True)
    try:
        (event,) = store.events("object_store")
        assert store.verify() == []
        return event["data"]
    finally:
        store.close()


@pytest.fixture(scope="module")
def serial_front(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "run"
    evofair.run(with_executor("serial"), out, progress=False)
    return (out / "front.csv").read_text()


# -- fast checks, no Ray -----------------------------------------------------------------------


def test_worker_file_helpers_are_content_addressed(tmp_path):
    import torch

    weights = {"b": torch.arange(3.0), "a": torch.ones(2, 2).t()}  # a non-contiguous tensor too
    digest, data = write_weights_file(tmp_path, weights)
    assert digest == weights_hash(weights)  # the same key the driver's put_weights gives
    path = tmp_path / "weights" / digest[:2] / f"{digest}.safetensors"
    assert path.read_bytes() == data
    mtime = path.stat().st_mtime_ns
    assert write_weights_file(tmp_path, weights)[0] == digest and path.stat().st_mtime_ns == mtime  # reused
    back = read_weights_file(tmp_path, digest)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    path.write_bytes(data[:-1] + b"x")
    with pytest.raises(Exception, match="does not match its name"):
        read_weights_file(tmp_path, digest)


def test_probe_answers_only_where_the_drivers_file_is_seen(tmp_path):
    root = tmp_path / "run"
    (root / "weights").mkdir(parents=True)
    elsewhere = tmp_path / "other-node"  # what a worker on a machine without the shared mount sees
    (elsewhere / "weights").mkdir(parents=True)
    (root / "weights" / f"{PROBE}tok").write_text("tok")
    assert answer_probe(str(elsewhere), "tok", 0) is False
    assert not list((elsewhere / "weights").iterdir())
    assert answer_probe(str(root), "other", 0) is False  # another run's probe
    assert answer_probe(str(root), "tok", 1) is True
    assert (root / "weights" / f"{PROBE}tok-1").read_text() == "tok"


def test_worker_writes_what_the_serial_executor_would_store_and_keeps_a_bounded_cache(tmp_path):
    from collections import OrderedDict

    from evofair.engine.pipeline import GenomeRef, OpCall, Operators, Plan, realise
    from evofair.executors.ray_worker import WORKER_CACHE, RayWorker
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    worker = object.__new__(RayWorker)  # the actor's body, without Ray
    worker.problem = ToyMLP(ToyParams(n_train=32, n_eval=16, hidden=4)).ensure_setup()
    worker.ops, worker.cache = Operators.load(), OrderedDict()
    plans = [Plan(init=OpCall("init", {}, s)) for s in range(WORKER_CACHE + 4)]
    keys = [worker.realise_stored(str(tmp_path), p).key for p in plans]
    assert keys == [weights_hash(realise(p, [], worker.problem, worker.ops).weights) for p in plans]
    assert len(worker.cache) == WORKER_CACHE
    child = Plan(parents=(GenomeRef("a", keys[0]), GenomeRef("b", keys[1])), crossover=OpCall("uniform", {}, 5))
    made = worker.realise_stored(str(tmp_path), child)  # parents read back from the files
    parents = [read_weights_file(tmp_path, k) for k in keys[:2]]
    assert made.weights is None and made.key == weights_hash(
        realise(child, parents, worker.problem, worker.ops).weights
    )
    assert worker.evaluate_stored(str(tmp_path), keys[:3])["val"]["error"].shape == (3,)


def test_ray_executor_on_a_shared_store_gives_the_serial_executors_keys_and_metrics(tmp_path):
    """`RayExecutor.realise`/`evaluate_stored` on the shared-store path, its actors replaced by one
    local `RayWorker` (no Ray): workers write the weights, only keys come back, the driver checks the
    files are there; keys, logs and metrics equal the serial executor's (which stores through the driver)."""
    from collections import OrderedDict
    from types import SimpleNamespace

    from evofair.engine.pipeline import GenomeRef, OpCall, Operators, Plan
    from evofair.executors.ray_executor import RayExecutor
    from evofair.executors.ray_worker import RayWorker
    from evofair.executors.serial import SerialExecutor
    from evofair.problems.classic.toy import ToyMLP, ToyParams

    problem = ToyMLP(ToyParams(n_train=32, n_eval=16, hidden=4)).ensure_setup()
    worker = object.__new__(RayWorker)
    worker.problem, worker.ops, worker.cache = problem, Operators.load(), OrderedDict()
    actor = SimpleNamespace(
        realise_stored=SimpleNamespace(remote=worker.realise_stored),
        evaluate_stored=SimpleNamespace(remote=worker.evaluate_stored),
    )
    ray_ex = RayExecutor(eval_chunk=2)
    ray_ex.shared_store, ray_ex.root = True, str(tmp_path / "ray")
    ray_ex._map = lambda submit, items, phase=None, sizes=None: [submit(actor, it) for it in items]
    serial = SerialExecutor(eval_chunk=2)
    serial.start(None, problem)
    results = []
    for ex, root in ((ray_ex, tmp_path / "ray"), (serial, tmp_path / "serial")):
        store = RunStore(root)
        try:
            made = ex.realise([Plan(init=OpCall("init", {}, s)) for s in range(3)], store)
            child = Plan(
                parents=(GenomeRef("a", made[0].key), GenomeRef("b", made[1].key)), crossover=OpCall("uniform", {}, 5)
            )
            made += ex.realise([child], store)
            keys = [m.key for m in made]
            results.append((made, ex.evaluate_stored(keys, store)["val"]["error"].tolist()))
            store.flush()  # the serial path's writes are the store's background thread's until flushed
            assert all(store.weights_path(k).is_file() for k in keys)
        finally:
            store.close()
    assert results[0] == results[1]
    assert ray_ex.wire.weight_bytes_out == ray_ex.wire.weight_bytes_in == 0 and ray_ex.wire.keys > 0


def test_require_weights_refuses_a_key_without_its_file(tmp_path):
    import torch

    store = RunStore(tmp_path / "run")
    try:
        digest, _ = write_weights_file(store.root, {"w": torch.ones(2)})
        store.require_weights([digest])
        with pytest.raises(UserError, match="does not see the file"):
            store.require_weights(["0" * 64])
    finally:
        store.close()


def test_tensor_bytes_counts_weights_only():
    import numpy as np
    import torch

    from evofair.engine.pipeline import GenomeRef, Plan, Realised

    assert tensor_bytes([{"w": torch.ones(4, dtype=torch.float32)}, {"b": torch.ones(2, dtype=torch.float16)}]) == 20
    assert tensor_bytes(Realised({"w": torch.ones(3)}, {"x": 1})) == 12
    assert tensor_bytes([Plan(parents=(GenomeRef("a", "k"),)), ["k" * 64], np.ones(8)]) == 0
    assert WireCounter().record() == {"weight_bytes_out": 0, "weight_bytes_in": 0, "keys": 0, "offspring": 0}


# -- Ray on this machine (its run directory is shared with its workers) -----------------------


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: `evofair.run` joins a running Ray instead of starting its own
    (each start costs tens of seconds on a loaded machine); a subprocess driver joins it by address."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("another test left Ray running in this process")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_shared_store_sends_no_weight_bytes_and_gives_the_serial_front(tmp_path, serial_front, ray_session):
    out = tmp_path / "ray"
    evofair.run(with_executor("ray"), out, progress=False)
    assert (out / "front.csv").read_text() == serial_front
    wire = wire_of(out)
    assert wire["offspring"] == 6 * 3
    assert wire["weight_bytes_out"] == wire["weight_bytes_in"] == 0
    # two parents' keys out and the child's back per crossed offspring, one key per evaluated genome
    assert wire["keys"] >= 2 * wire["offspring"]
    assert not list((out / "weights").glob(f"{PROBE}*"))


@pytest.mark.slow
def test_fallback_path_sends_weights_and_gives_the_same_front(tmp_path, serial_front, ray_session):
    out = tmp_path / "ray-off"
    evofair.run(with_executor("ray", "off"), out, progress=False)
    assert (out / "front.csv").read_text() == serial_front
    wire = wire_of(out)
    store = RunStore(out, readonly=True)
    digest = store.individuals()[0].weights_hash
    store.close()
    raw = sum(t.numel() * t.element_size() for t in read_weights_file(out, digest).values())
    # every offspring comes back, and goes out again to be evaluated: its tensors at least twice
    assert wire["weight_bytes_in"] == wire["offspring"] * raw
    assert wire["weight_bytes_out"] >= wire["offspring"] * raw
    assert wire["keys"] == 0


@pytest.mark.slow
def test_kill_after_workers_wrote_weights_resumes_to_the_same_front(tmp_path, serial_front, ray_session):
    recipe = with_executor("ray")
    recipe["executor"]["address"] = ray_session
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    # generation 1's offspring are in weights/ (written by the workers), its rows are not committed
    killed = cli_subprocess(
        "run",
        str(recipe_file),
        "--out",
        str(out),
        "--quiet",
        env={"EVOFAIR_FAILPOINT": "kill_after_worker_writes@2"},
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    store = RunStore(out, readonly=True)
    referenced = {i.weights_hash for i in store.individuals()}
    assert [g["generation"] for g in store.generations()] == [0]
    store.close()
    on_disk = {p.stem for p in (out / "weights").rglob("*.safetensors")}
    assert on_disk - referenced  # orphans: written by workers, never committed
    assert main(["run", "--resume", str(out), "--quiet"]) == 0  # in this process, on the same Ray
    assert (out / "front.csv").read_text() == serial_front
    store = RunStore(out, readonly=True)
    assert store.verify() == []
    assert len({i.id for i in store.individuals()}) == 6 * 3
    assert store.events("object_store")[0]["data"]["weight_bytes_out"] == 0
    store.close()
