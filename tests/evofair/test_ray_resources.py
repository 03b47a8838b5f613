"""Ray sized by every resource, and its failures as one line, not a hang.

The pure sizing functions are checked against hand-counted placements. The cluster tests share one
loopback cluster for the module: first the head alone (one CPU, no GPU), then a second node joins
that *declares* one GPU (`ray start --num-gpus=1`; Ray schedules on declared GPUs without
hardware). Oracle for the GPU run: the same recipe run serially, whose front.csv must match byte for
byte.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ray_loopback import LoopbackCluster, free_port

from evofair.cli import main
from evofair.errors import UserError
from evofair.executors.ray_cluster import placeable, size_actors
from evofair.executors.ray_executor import RayExecutor
from evofair.lifecycle.recipe import parse_recipe

REPO = Path(__file__).resolve().parents[2]
GPU_RECIPE = {
    "name": "toy_gpu",
    "problem": {"name": "toy_mlp", "args": {"n_train": 64, "n_eval": 32}},
    "algorithm": {"pop_size": 6, "generations": 2},
    "operators": {
        "crossover": {"name": "uniform"},
        "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
        "refine": {"name": "sft", "args": {"epochs": 1, "lr": 0.01, "batch_size": 32}},
    },
    "executor": {"name": "ray", "num_gpus_per_task": 0.5, "eval_chunk": 2},
    "seed": 5,
}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evofair: error:")
    return lines[0]


# -- sizing without Ray: hand-counted placements ---------------------------------------------


def test_placeable_counts_whole_actors_per_node():
    head, gpu_node = {"CPU": 1.0}, {"CPU": 2.0, "GPU": 1.0}
    assert placeable([head, gpu_node], {"CPU": 1}) == 3
    assert placeable([head, gpu_node], {"CPU": 1, "GPU": 0.5}) == 2  # both on the GPU node
    assert placeable([head, gpu_node], {"CPU": 0.5, "GPU": 0.25}) == 4  # GPU-bound: 1 / 0.25
    assert placeable([head, gpu_node], {"CPU": 0.6}) == 1 + 3  # per node, not floor(3 / 0.6) = 5
    assert placeable([head, gpu_node], {"CPU": 1, "accel": 1}) == 0
    # the example: 16 CPUs and one GPU at 0.25 GPU a task place 4 actors, not 16
    assert placeable([{"CPU": 16.0, "GPU": 1.0}], {"CPU": 1, "GPU": 0.25}) == 4
    assert placeable([{"CPU": 2.0, "accel": 3.0}], {"CPU": 0.1, "accel": 1}) == 3


def test_size_actors_refuses_what_cannot_be_placed_in_one_line():
    with pytest.raises(UserError) as e:
        size_actors([{"CPU": 2.0}], {"CPU": 1, "GPU": 0.5}, None)
    assert "\n" not in str(e.value) and "GPU=0.5" in str(e.value)
    with pytest.raises(UserError, match=r"executor.num_workers 3: .* at most 2"):
        size_actors([{"CPU": 2.0}], {"CPU": 1}, 3)
    assert size_actors([{"CPU": 2.0}], {"CPU": 1}, None) == 2
    assert size_actors([{"CPU": 2.0}], {"CPU": 1}, 1) == 1


def test_recipe_custom_resources_are_checked():
    base = dict(GPU_RECIPE)
    for bad in ({"CPU": 1}, {"accel": 0}, {"accel": float("nan")}):
        with pytest.raises(UserError, match="executor.resources_per_task"):
            parse_recipe({**base, "executor": {"name": "ray", "resources_per_task": bad}})
    cfg = parse_recipe({**base, "executor": {"name": "ray", "resources_per_task": {"accel": 0.5}}}).executor
    assert cfg.resources_per_task == {"accel": 0.5} and cfg.num_gpus_per_task is None  # unset: auto


def test_nothing_listening_is_one_line_within_seconds_and_no_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    t0 = time.monotonic()
    assert (
        main(
            [
                "run",
                str(REPO / "runs" / "toy_ray.yaml"),
                "--executor",
                "ray",
                "--address",
                f"127.0.0.1:{free_port()}",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 2
    )
    assert time.monotonic() - t0 < 15
    assert "executor.address" in one_line(capsys.readouterr().err)
    assert not out.exists()


# -- one loopback cluster for the module -------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    c = LoopbackCluster()
    try:
        c.start_head(dashboard=False)
        yield c
    finally:
        left = c.stop()
        assert not left, f"processes left behind: {left}"


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_gpu_recipe_on_a_cluster_without_gpus_exits_2_fast(cluster, tmp_path, capsys):
    assert len(cluster.wait_nodes(1, timeout=180)) >= 1, cluster.logs()
    if len(cluster.procs) > 1:
        pytest.skip("the GPU node has already joined")
    recipe = write_recipe(tmp_path / "gpu.yaml", GPU_RECIPE)
    out = tmp_path / "run"
    capsys.readouterr()
    t0 = time.monotonic()
    code = main(["run", str(recipe), "--address", f"127.0.0.1:{cluster.gcs_port}", "--out", str(out), "--quiet"])
    elapsed = time.monotonic() - t0
    line = one_line(capsys.readouterr().err)
    assert code == 2 and elapsed <= 30, (code, elapsed, line)
    assert "GPU=0.5" in line and not out.exists()


@pytest.mark.slow
def test_half_gpu_tasks_run_two_actors_on_the_gpu_node_and_match_serial(cluster, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path / "gpu.yaml", GPU_RECIPE)
    assert main(["run", str(recipe), "--executor", "serial", "--out", str(tmp_path / "serial"), "--quiet"]) == 0
    assert len(cluster.join(2, timeout=180, cpus=2, gpus=1)) == 2, cluster.logs()
    out = tmp_path / "ray"
    started = []  # (each actor's ping: pid, node, GPU ids; the cluster's nodes), seen from the driver

    def spy(self, *args, **kwargs):
        import ray

        start(self, *args, **kwargs)
        started.append((list(self.placement), ray.nodes(), dict(self.demand)))

    start = RayExecutor.start
    monkeypatch.setattr(RayExecutor, "start", spy)
    assert main(["run", str(recipe), "--address", f"127.0.0.1:{cluster.gcs_port}", "--out", str(out), "--quiet"]) == 0
    front = (out / "front.csv").read_text()
    assert front == (tmp_path / "serial" / "front.csv").read_text() and len(front.splitlines()) > 1

    ((actors, nodes, demand),) = started
    gpu_node = {n["NodeID"] for n in nodes if n["Alive"] and n["Resources"].get("GPU")}
    assert demand == {"CPU": 1.0, "GPU": 0.5}
    assert len(actors) == 2 and len({a["pid"] for a in actors}) == 2
    assert {a["node_id"] for a in actors} == gpu_node and all(a["gpu_ids"] == ["0"] for a in actors), actors


BOOM_MODULE = '''\
import numpy as np
from evofair.core.problem import Objective, VectorProblem


class Boom(VectorProblem):
    """Evaluates fine in the driver; raises on a Ray worker."""

    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (30.0, 30.0)
    n_var = 2

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.xl, self.xu = np.full(2, -2.0), np.full(2, 2.0)

    def evaluate(self, genomes, split):
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_actor_id():
            raise_on_worker()
        x = np.asarray(genomes, dtype=float)
        return {"f1": (x ** 2).sum(1), "f2": ((x - 1) ** 2).sum(1)}


def raise_on_worker():
    raise ValueError("boom-on-worker-4711")
'''
BOOM_RECIPE = """\
name: boom
problem: {name: "cluster_boom:Boom"}
algorithm: {pop_size: 4, generations: 2}
operators: {crossover: {name: sbx}, mutation: {name: pm}}
executor: {name: ray, eval_chunk: 2, num_workers: 1}
"""


@pytest.mark.slow
def test_worker_exception_reaches_driver_output_and_run_events(cluster, tmp_path):
    (tmp_path / "cluster_boom.py").write_text(BOOM_MODULE)
    recipe = tmp_path / "boom.yaml"
    recipe.write_text(BOOM_RECIPE)
    assert cluster.wait_nodes(1, timeout=180), cluster.logs()
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evofair.cli",
            "run",
            str(recipe),
            "--address",
            f"127.0.0.1:{cluster.gcs_port}",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=cluster.env,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    # the worker's own traceback, not just the driver's summary: the function that raised, its file
    assert "raise_on_worker" in proc.stderr and "cluster_boom.py" in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("evofair: error:") and "boom-on-worker-4711" in last and "--resume" in last

    from evofair.store.run_store import RunStore

    store = RunStore(out, readonly=True)
    try:
        (event,) = store.events("worker_error")
    finally:
        store.close()
    assert "boom-on-worker-4711" in event["message"] and "raise_on_worker" in event["data"]["traceback"]
