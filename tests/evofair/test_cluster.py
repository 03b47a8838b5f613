"""`evofair submit/status/logs` against a real two-node Ray cluster on loopback.

The cluster is two `ray start` processes on this machine (a head and a second node, one CPU each,
token auth off, dashboard on 127.0.0.1), each in its own session so that teardown can stop exactly
the processes this test started — never `ray stop`, which kills every Ray process on the machine,
other users' included. The oracle for the submitted run is a local serial run of the same recipe
and seed: the fronts must be byte-identical.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from evofair.cli import main
from evofair.jobs import JOB_RECIPE, dashboard_url, entrypoint, stage_project

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "runs" / "toy_ray.yaml"
SEED = 11


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fast checks, no cluster -------------------------------------------------------------------

def test_bad_recipe_exits_2_before_contacting_the_cluster(capsys):
    port = free_port()  # nothing listens: had submit got that far, the error would name --address
    assert main(["submit", str(RECIPE), "--address", f"http://127.0.0.1:{port}",
                 "--set", "algorithm.pop_size=-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evofair: error:") and "algorithm.pop_size" in err and "\n" not in err
    assert main(["submit", str(RECIPE), "--address", f"http://127.0.0.1:{port}",
                 "--set", "problem.name=no_such_problem"]) == 2
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
    for module in ("evofair/cli.py", "evofair/executors/ray_executor.py", "evofair/operators/__init__.py",
                   "evofair/problems/classic/toy.py", "evofair/recipes/toy.yaml",
                   "evofair/datasets/mulan_yeast/yeast.xml"):
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

class LoopbackCluster:
    """A head and a second node started with `ray start --block`, each as its own session."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="efray-", dir="/tmp")  # short: Ray's socket paths ≤ 107 bytes
        self.gcs_port, self.dash_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.dash_port}"
        bindir = str(Path(sys.executable).parent)  # `python` on the nodes is this venv's, as for a user
        self.env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                        PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        self.env.pop("RAY_ADDRESS", None)
        self.ray = str(Path(bindir) / "ray")
        self.procs: list[subprocess.Popen] = []

    def _node_ports(self) -> list[str]:
        names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")
        return [f"--{n}={free_port()}" for n in names]

    def _start(self, args: list[str], log: str) -> None:
        with open(Path(self.temp) / log, "w") as out:
            self.procs.append(subprocess.Popen(
                [self.ray, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                 f"--temp-dir={self.temp}", "--disable-usage-stats", *self._node_ports(), *args],
                env=self.env, cwd=self.temp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> None:
        self._start(["--head", f"--port={self.gcs_port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={self.dash_port}", f"--ray-client-server-port={free_port()}"], "head.log")
        self._wait_port(self.gcs_port, 120)
        self._start([f"--address=127.0.0.1:{self.gcs_port}"], "node2.log")

    def _wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"port {port} not up after {timeout} s; logs in {self.temp}")

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"`ray start` exited with {p.returncode}: {self.logs()}")

    def logs(self) -> str:
        return " | ".join(f.read_text()[-2000:] for f in Path(self.temp).glob("*.log"))

    def wait_nodes(self, n: int, timeout: float) -> list[str]:
        from ray.util.state import list_nodes

        self._wait_port(self.dash_port, timeout)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                alive = [x.node_id for x in list_nodes(address=self.url) if x.state == "ALIVE"]
            except Exception:  # the dashboard's state API comes up a little after its port
                alive = []
            if len(alive) >= n or time.monotonic() > deadline:
                return alive
            time.sleep(1)

    def ours(self) -> list[psutil.Process]:
        """Every live process this cluster started: members of our sessions, or processes
        whose command line or working directory is inside our temp dir (a job's driver)."""
        sessions = {p.pid for p in self.procs}
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
            try:
                if proc.pid == os.getpid():
                    continue
                mine = os.getsid(proc.pid) in sessions
                mine = mine or any(self.temp in a for a in proc.info["cmdline"] or ())
                mine = mine or (proc.info["cwd"] or "").startswith(self.temp)
                if mine and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found

    def stop(self) -> list[str]:
        """SIGTERM to each `ray start --block` (it stops its node), then SIGKILL stragglers by pid.
        Returns what was still alive after all that (should be nothing)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.ours() and time.monotonic() < deadline:
            time.sleep(0.5)
        for proc in self.ours():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        time.sleep(1)
        left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in self.ours()]
        shutil.rmtree(self.temp, ignore_errors=True)
        return left


@pytest.fixture(scope="module")
def cluster():
    c = LoopbackCluster()
    try:
        c.start()
        yield c
    finally:
        left = c.stop()
        assert not left, f"processes left behind: {left}"


@pytest.mark.slow
def test_submitted_job_on_two_nodes_matches_serial_run(cluster, tmp_path, capsys):
    # The oracle, computed while the cluster boots: the same recipe and seed, serial, locally.
    assert main(["run", str(RECIPE), "--executor", "serial", "--seed", str(SEED),
                 "--out", str(tmp_path / "serial"), "--quiet"]) == 0
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

    # The work really was spread: realise and evaluate tasks ran on both nodes, in two actors.
    from ray.util.state import list_tasks

    deadline, ran = time.monotonic() + 30, {}
    while time.monotonic() < deadline:  # task events reach the dashboard asynchronously
        tasks = list_tasks(address=cluster.url, limit=10_000)
        ran = {}
        for t in tasks:
            if t.name in ("_Worker.realise", "_Worker.evaluate"):
                if t.state == "FINISHED" and t.node_id and t.actor_id:  # events may lack them yet
                    ran.setdefault(t.name, set()).add((t.node_id, t.actor_id))
        if all(len({n for n, _ in ran.get(k, ())}) == 2 for k in ("_Worker.realise", "_Worker.evaluate")):
            break
        time.sleep(1)
    for name in ("_Worker.realise", "_Worker.evaluate"):
        seen = [(t.name, t.state, t.node_id and t.node_id[:8], t.actor_id) for t in tasks if "_Worker" in t.name]
        assert {n for n, _ in ran.get(name, ())} == set(nodes), f"{name} ran on {ran.get(name)}; tasks {seen}"
        assert len({actor for _, actor in ran[name]}) == 2

    assert main(["status", "raysubmit_doesnotexist", "--address", cluster.url]) == 2
    assert "no such job" in capsys.readouterr().err


# A user's own problem, not installed: a module next to the recipe, named `cluster_wells:TwoWells`.
USER_MODULE = '''\
import numpy as np
from evofair.problem import Objective, VectorProblem


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
    assert main(["run", str(project / "wells.yaml"), "--executor", "serial", "--out", str(tmp_path / "serial"),
                 "--quiet"]) == 0
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
