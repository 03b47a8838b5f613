"""`evofair submit/status/logs` against a real two-node Ray cluster on loopback.

The cluster is two `ray start` processes on this machine (a head and a second node, one CPU each,
token auth off, dashboard on 127.0.0.1), each in its own session so that teardown can stop exactly
the processes this test started — never `ray stop`, which kills every Ray process on the machine,
other users' included. The oracle for the submitted run is a local serial run of the same recipe
and seed: the fronts must be byte-identical.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path

import pytest
from loopback_http import serving
from ray_loopback import LoopbackCluster, free_port

from evofair.cli import main
from evofair.executors.ray_client import dashboard_url
from evofair.executors.ray_jobs import JOB_RECIPE, entrypoint, stage_project

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "runs" / "toy_ray.yaml"
SEED = 11


# -- fast checks, no cluster -------------------------------------------------------------------


def test_bad_recipe_exits_2_before_contacting_the_cluster(capsys):
    port = free_port()  # nothing listens: had submit got that far, the error would name --address
    assert main(["submit", str(RECIPE), "--address", f"http://127.0.0.1:{port}", "--set", "algorithm.pop_size=-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evofair: error:") and "algorithm.pop_size" in err and "\n" not in err
    assert (
        main(["submit", str(RECIPE), "--address", f"http://127.0.0.1:{port}", "--set", "problem.name=no_such_problem"])
        == 2
    )
    assert "problem.name" in capsys.readouterr().err


def test_unreachable_address_is_one_line_exit_2(capsys):
    port = free_port()
    for argv in (["submit", str(RECIPE)], ["status", "raysubmit_x"], ["logs", "raysubmit_x"]):
        assert main(argv + ["--address", f"http://127.0.0.1:{port}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "cannot connect" in err


def test_address_forms(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert dashboard_url("head:8265") == "http://head:8265"
    assert dashboard_url("https://head:8265/") == "https://head:8265"
    for bad in ("ray://head:10001", "http://"):
        with pytest.raises(Exception, match="--address"):
            dashboard_url(bad)
    with pytest.raises(Exception, match="RAY_API_SERVER_ADDRESS"):
        dashboard_url(None)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://h:1")
    assert dashboard_url(None) == "http://h:1"


def test_staged_project_is_small_and_complete(tmp_path):
    dest = stage_project(tmp_path / "p", "name: x\n")
    files = [p.relative_to(dest) for p in dest.rglob("*") if p.is_file()]
    assert (dest / JOB_RECIPE).read_text() == "name: x\n"
    for module in (
        "evofair/cli.py",
        "evofair/executors/ray_executor.py",
        "evofair/operators/__init__.py",
        "evofair/problems/classic/toy.py",
        "evofair/recipes/toy.yaml",
        "evofair/datasets/mulan_yeast/yeast.xml",
    ):
        assert Path(module) in files
    # the entry points travel too: a cluster without evofair installed still finds every component
    (info,) = [f for f in files if f.name == "entry_points.txt"]
    assert "toy_mlp = evofair.problems.classic.toy:ToyMLP" in (dest / info).read_text()
    assert not any(part in (".venv", ".git", ".cache", "out", "__pycache__") for f in files for part in f.parts)
    assert sum((dest / f).stat().st_size for f in files) < 50 * 2**20
    cmd = entrypoint("/runs/a b")
    assert cmd.startswith("python -m evofair.cli run " + JOB_RECIPE) and "--address auto" in cmd
    assert cmd.endswith("--out '/runs/a b'")


# -- the two-node cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    c = LoopbackCluster()
    try:
        c.start_head()  # both retry a node that exceeds Ray's 30 s registration window on a loaded machine
        c.join(2, timeout=180)
        yield c
    finally:
        left = c.stop()
        assert not left, f"processes left behind: {left}"


@pytest.mark.slow
def test_submitted_job_on_two_nodes_matches_serial_run(cluster, tmp_path, capsys):
    # The oracle, computed while the cluster boots: the same recipe and seed, serial, locally.
    assert (
        main(
            [
                "run",
                str(RECIPE),
                "--executor",
                "serial",
                "--seed",
                str(SEED),
                "--out",
                str(tmp_path / "serial"),
                "--quiet",
            ]
        )
        == 0
    )
    nodes = cluster.wait_nodes(2, timeout=180)
    assert len(nodes) == 2, f"cluster has {len(nodes)} live nodes; logs: {cluster.logs()}"
    capsys.readouterr()

    out = tmp_path / "cluster-run"
    assert main(["submit", str(RECIPE), "--address", cluster.url, "--seed", str(SEED), "--out", str(out)]) == 0
    job = capsys.readouterr().out.strip()
    assert job and "\n" not in job

    code = main(["status", job, "--address", cluster.url, "--wait", "--timeout", "300"])
    status = capsys.readouterr().out
    if code != 0:
        main(["logs", job, "--address", cluster.url])
        pytest.fail(f"job did not succeed: {status}\n{capsys.readouterr().out[-4000:]}")
    assert f"{job}: SUCCEEDED" in status and str(out) in status

    front = (out / "front.csv").read_text()
    assert front == (tmp_path / "serial" / "front.csv").read_text() and len(front.splitlines()) > 2
    assert main(["verify", str(out)]) == 0

    assert main(["logs", job, "--address", cluster.url, "--follow"]) == 0  # returns: the job has ended
    log = capsys.readouterr().out
    assert f"evofair: wrote {out}" in log

    # Both nodes see the run directory (one machine): the workers wrote the weights, no weight bytes
    # crossed the object store.
    from evofair.store.run_store import RunStore

    store = RunStore(out, readonly=True)
    (wire,) = [e["data"] for e in store.events("object_store")]
    store.close()
    assert wire["weight_bytes_out"] == wire["weight_bytes_in"] == 0 and wire["keys"] > 0

    # The work really was spread: realise and evaluate tasks ran on both nodes, in two actors.
    from ray.util.state import list_tasks

    realise, evaluate = "RayWorker.realise_stored", "RayWorker.evaluate_stored"

    deadline, ran = time.monotonic() + 30, {}
    while time.monotonic() < deadline:  # task events reach the dashboard asynchronously
        tasks = list_tasks(address=cluster.url, limit=10_000)
        ran = {}
        for t in tasks:
            if t.name in (realise, evaluate):
                if t.state == "FINISHED" and t.node_id and t.actor_id:  # events may lack them yet
                    ran.setdefault(t.name, set()).add((t.node_id, t.actor_id))
        if all(len({n for n, _ in ran.get(k, ())}) == 2 for k in (realise, evaluate)):
            break
        time.sleep(1)
    for name in (realise, evaluate):
        seen = [(t.name, t.state, t.node_id and t.node_id[:8], t.actor_id) for t in tasks if "RayWorker" in t.name]
        assert {n for n, _ in ran.get(name, ())} == set(nodes), f"{name} ran on {ran.get(name)}; tasks {seen}"
        assert len({actor for _, actor in ran[name]}) == 2

    assert main(["status", "raysubmit_doesnotexist", "--address", cluster.url]) == 2
    assert "no such job" in capsys.readouterr().err


# A user's own problem, not installed: a module next to the recipe, named `cluster_wells:TwoWells`.
USER_MODULE = '''\
import numpy as np
from evofair.core.problem import Objective, VectorProblem


class TwoWells(VectorProblem):
    """f1 = |x - 0.5|^2, f2 = |x + 0.5|^2 on [-2, 2]^3."""

    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (30.0, 30.0)
    n_var = 3

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.xl, self.xu = np.full(3, -2.0), np.full(3, 2.0)

    def evaluate(self, genomes, split):
        x = np.asarray(genomes, dtype=float)
        return {"f1": ((x - 0.5) ** 2).sum(1), "f2": ((x + 0.5) ** 2).sum(1)}
'''
USER_RECIPE = """\
name: wells
problem: {name: "cluster_wells:TwoWells"}
algorithm: {pop_size: 8, generations: 3}
operators: {crossover: {name: sbx}, mutation: {name: pm}}
executor: {name: ray, eval_chunk: 2}
seed: 4
"""


@pytest.mark.slow
def test_submitted_job_carries_the_users_module(cluster, tmp_path, capsys, monkeypatch, request):
    """`evofair submit` of a recipe whose problem is a `module:attr` from a file beside it: the job
    ships the file, and the run needs nothing from the user's folder once submitted (it is deleted
    before the job runs). Oracle: the same recipe run serially here."""
    # the serial run and submit's validation import cluster_wells here: forget it afterwards
    monkeypatch.setattr(sys, "path", list(sys.path))
    request.addfinalizer(lambda: sys.modules.pop("cluster_wells", None))
    project = tmp_path / "project"
    project.mkdir()
    (project / "cluster_wells.py").write_text(USER_MODULE)
    (project / "wells.yaml").write_text(USER_RECIPE)
    assert (
        main(["run", str(project / "wells.yaml"), "--executor", "serial", "--out", str(tmp_path / "serial"), "--quiet"])
        == 0
    )
    assert len(cluster.wait_nodes(2, timeout=180)) == 2, cluster.logs()
    capsys.readouterr()

    out = tmp_path / "cluster-run"
    assert main(["submit", str(project / "wells.yaml"), "--address", cluster.url, "--out", str(out)]) == 0
    job = capsys.readouterr().out.strip()
    shutil.rmtree(project)  # from here on, only the job's own copy of cluster_wells.py exists
    code = main(["status", job, "--address", cluster.url, "--wait", "--timeout", "300"])
    status = capsys.readouterr().out
    if code != 0:
        main(["logs", job, "--address", cluster.url])
        pytest.fail(f"job did not succeed: {status}\n{capsys.readouterr().out[-4000:]}")
    front = (out / "front.csv").read_text()
    assert front == (tmp_path / "serial" / "front.csv").read_text() and len(front.splitlines()) > 2
    assert "cluster_wells:TwoWells" in (out / "config.yaml").read_text()


# -- HTTP endpoints that are not a working Jobs API: one line within the timeout ---------------


def never_answer(conn) -> None:
    pass  # accepted, held open, never a byte back


def answer_not_json(conn) -> None:
    conn.settimeout(2)
    with contextlib.suppress(OSError):
        conn.recv(65536)
        body = b"<html>hello</html>"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "raysubmit_x"],
        ["status", "raysubmit_x", "--wait", "--timeout", "5"],
        ["logs", "raysubmit_x", "--follow"],
        ["submit", str(RECIPE)],
    ],
)
def test_endpoint_that_never_answers_is_one_line_within_the_timeout(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EVOFAIR_HTTP_TIMEOUT_S", "2")
    if argv[0] == "submit":
        argv = argv + ["--out", str(tmp_path / "run")]
    with serving(never_answer) as url:
        t0 = time.monotonic()
        assert main(argv + ["--address", url]) == 2
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no answer within 2 s" in err and url in err, err
    assert elapsed < 20, elapsed  # imports and the recipe's validation included; the wait itself is 2 s


@pytest.mark.parametrize("argv", [["status", "raysubmit_x"], ["logs", "raysubmit_x"], ["submit", str(RECIPE)]])
def test_endpoint_answering_200_with_html_is_one_line(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EVOFAIR_HTTP_TIMEOUT_S", "5")
    if argv[0] == "submit":
        argv = argv + ["--out", str(tmp_path / "run")]
    with serving(answer_not_json) as url:
        assert main(argv + ["--address", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the Ray Jobs API" in err and url in err, err


@pytest.mark.slow
def test_submit_names_a_dependency_the_clusters_python_lacks(cluster, tmp_path, capsys):
    """The job's interpreter without site-packages (`python -S`) finds none of evofair's
    dependencies: submit exits 2 before the real job is sent, naming the modules and the fix."""
    python = tmp_path / "bare-python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    assert len(cluster.wait_nodes(2, timeout=180)) == 2, cluster.logs()
    capsys.readouterr()
    assert (
        main(["submit", str(RECIPE), "--address", cluster.url, "--python", str(python), "--out", str(tmp_path / "run")])
        == 2
    )
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and f"--python {python}" in line and "cannot import" in line
    for module in ("torch", "tqdm", "pymoo"):
        assert module in line
    assert "venv" in line
