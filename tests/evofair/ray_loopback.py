"""A Ray cluster of `ray start` processes on loopback, for tests (shared by the cluster test modules).

Each node is its own session so that teardown stops exactly the processes the test started — never
`ray stop`, which kills every Ray process on the machine, other users' included.
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

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this process: the OS may return a port it just
    released, and Ray refuses two of its components on one port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class LoopbackCluster:
    """A head and a second node started with `ray start --block`, each as its own session."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="efray-", dir="/tmp")  # short: Ray's socket paths ≤ 107 bytes
        self.gcs_port, self.dash_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.dash_port}"
        bindir = str(Path(sys.executable).parent)  # `python` on the nodes is this venv's, as for a user
        self.env = dict(
            os.environ,
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
            PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
        )
        self.env.pop("RAY_ADDRESS", None)
        self.ray = str(Path(bindir) / "ray")
        self.procs: list[subprocess.Popen] = []
        self.failed: list[subprocess.Popen] = []  # nodes that exited while starting
        self.dashboard = True

    def _node_ports(self) -> list[str]:
        names = (
            "node-manager-port",
            "object-manager-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
        )
        return [f"--{n}={free_port()}" for n in names]

    def _start(self, args: list[str], log: str, cpus: float = 1, gpus: float = 0) -> None:
        with open(Path(self.temp) / log, "w") as out:
            self.procs.append(
                subprocess.Popen(
                    [
                        self.ray,
                        "start",
                        "--block",
                        f"--num-cpus={cpus:g}",
                        f"--num-gpus={gpus:g}",
                        "--node-ip-address=127.0.0.1",
                        f"--temp-dir={self.temp}",
                        "--disable-usage-stats",
                        *self._node_ports(),
                        *args,
                    ],
                    env=self.env,
                    cwd=self.temp,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def start(self, second_node: bool = True, dashboard: bool = True) -> None:
        """The head (one CPU, no GPU) and, unless told otherwise, a second node like it. Without the
        dashboard (no Jobs or state API) the head starts in far less time and memory."""
        self.dashboard = dashboard
        view = ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dash_port}"]
        self._start(
            [
                "--head",
                f"--port={self.gcs_port}",
                *(view if dashboard else ["--include-dashboard=false"]),
                f"--ray-client-server-port={free_port()}",
            ],
            "head.log",
        )
        self._wait_port(self.gcs_port, 120)
        if second_node:
            self.add_node()

    def start_head(self, dashboard: bool = True, timeout: float = 180, attempts: int = 3) -> None:
        """The head alone, alive when this returns; a head that gave up registering (Ray's fixed 30 s,
        which a loaded machine can exceed) is started again on fresh ports."""
        for attempt in range(attempts):
            self.start(second_node=False, dashboard=dashboard)
            try:
                if self.wait_nodes(1, timeout):
                    return
            except (RuntimeError, TimeoutError):
                if attempt == attempts - 1:
                    raise
            self.failed.append(self.procs.pop())
            self.gcs_port, self.dash_port = free_port(), free_port()
            self.url = f"http://127.0.0.1:{self.dash_port}"
        raise TimeoutError(f"no live head after {attempts} tries; logs in {self.temp}")

    def add_node(self, cpus: float = 1, gpus: float = 0) -> None:
        """Another node joining the head; `gpus` are declared, not real: Ray schedules on them all the same."""
        self._start(
            [f"--address=127.0.0.1:{self.gcs_port}"], f"node{len(self.procs) + len(self.failed) + 1}.log", cpus, gpus
        )

    def join(self, n_nodes: int, timeout: float, cpus: float = 1, gpus: float = 0, attempts: int = 3) -> list[str]:
        """Add a node and wait until `n_nodes` are alive. Ray gives a joining raylet a fixed 30 s to
        register; on a loaded machine that can pass, so a node that gave up is started again."""
        for attempt in range(attempts):
            self.add_node(cpus, gpus)
            try:
                return self.wait_nodes(n_nodes, timeout)
            except RuntimeError:
                if attempt == attempts - 1 or self.procs[0].poll() is not None:
                    raise  # the head itself is gone: nothing to join
                self.failed.append(self.procs.pop())  # its leftovers are still ours() (by session)
        return []

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

    def alive_nodes(self) -> list[str]:
        if self.dashboard:
            from ray.util.state import list_nodes

            return [x.node_id for x in list_nodes(address=self.url) if x.state == "ALIVE"]
        # no dashboard: ask the GCS itself (ray is pinned, so its internal client is stable here)
        from ray._private.services import _get_gcs_client_options
        from ray._private.state import GlobalState

        state = GlobalState()
        state._initialize_global_state(_get_gcs_client_options(f"127.0.0.1:{self.gcs_port}"))
        return [n["NodeID"] for n in state.node_table() if n["Alive"]]

    def wait_nodes(self, n: int, timeout: float) -> list[str]:
        self._wait_port(self.dash_port if self.dashboard else self.gcs_port, timeout)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                alive = self.alive_nodes()
            except Exception:  # the dashboard's state API comes up a little after its port
                alive = []
            if len(alive) >= n or time.monotonic() > deadline:
                return alive
            time.sleep(1)

    def ours(self) -> list[psutil.Process]:
        """Every live process this cluster started: members of our sessions, or processes
        whose command line or working directory is inside our temp dir (a job's driver)."""
        sessions = {p.pid for p in self.procs + self.failed}
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
