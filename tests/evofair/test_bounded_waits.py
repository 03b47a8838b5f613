"""Bounded waits: a tracking server or Ray dashboard that accepts connections and never answers is
one line within 30 s (exit 2), and a recipe callback with `timeout_s` that hangs stops the run with
its generation committed, so `--resume` finishes it. Every wait here is a second or two: the tests
set small timeouts and check the defaults stay within 30 s without waiting for them."""

from __future__ import annotations

import contextlib
import csv
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from loopback_http import serving

import evofair
from evofair.cli import main
from evofair.store.run_store import RunStore
from evofair.tracking.callbacks import TIME_LIMIT_ATTR, CallbackError, CallbackList

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def silent_port(seconds: float = 30):
    """A loopback socket that accepts connections, holds them open and never sends a byte."""
    return serving(lambda conn: None, seconds)


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def write_recipe(tmp_path: Path, recipe: dict, callbacks: list) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**recipe, "paths": [str(HERE)], "callbacks": callbacks}))
    return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("endpoint", ["silent", "closed"])
def test_mlflow_logger_against_an_endpoint_that_never_answers_is_one_line(tmp_path, zdt_recipe, capsys, endpoint):
    pytest.importorskip("mlflow")
    with silent_port() if endpoint == "silent" else contextlib.nullcontext(closed_port()) as url:
        cb = {"name": "mlflow", "args": {"tracking_uri": url, "timeout_s": 1, "max_retries": 1}}
        path = write_recipe(tmp_path, zdt_recipe, [cb])
        t0 = time.monotonic()
        assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
        elapsed = time.monotonic() - t0
    line = one_line(capsys)
    assert f"MLflow tracking server {url}" in line and "on_run_start" in line, line
    assert ("no answer within 1 s" if endpoint == "silent" else "cannot connect") in line, line
    assert elapsed < 15, elapsed  # two 1-second tries, the run's start-up included


def test_mlflow_logger_puts_back_the_callers_http_settings(monkeypatch):
    pytest.importorskip("mlflow")
    from evofair.tracking.mlflow_logger import MlflowArgs, MlflowLogger, TrackingServerUnreachable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    logger = MlflowLogger(MlflowArgs(tracking_uri=closed_port(), timeout_s=1))
    info = evofair.tracking.RunStartInfo(Path("x"), {}, "p", ("a",), 0, 1)
    with pytest.raises(TrackingServerUnreachable):
        logger.on_run_start(info)
    logger.close()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77" and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_default_waits_stay_within_30_seconds(monkeypatch):
    from evofair.executors import ray_client, ray_cluster
    from evofair.tracking.mlflow_logger import MlflowArgs

    monkeypatch.delenv("EVOFAIR_HTTP_TIMEOUT_S", raising=False)
    connect, read = ray_client.http_timeout()
    assert max(connect, read) + 5 <= 30  # one request: the probe's connect or the answer's read
    assert 2 * ray_cluster.CONNECT_TIMEOUT_S <= 30  # TCP connect, then the gRPC handshake
    args = MlflowArgs()
    assert args.timeout_s * (args.max_retries + 1) <= 30


def test_submit_to_an_endpoint_that_never_answers_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EVOFAIR_HTTP_TIMEOUT_S", "1")
    with silent_port() as url:
        t0 = time.monotonic()
        code = main(["submit", str(REPO / "runs" / "toy_ray.yaml"), "--address", url, "--out", str(tmp_path / "r")])
        elapsed = time.monotonic() - t0
    assert code == 2
    line = one_line(capsys)
    assert url in line and "no answer within 1 s" in line, line
    assert elapsed < 30, elapsed


def test_a_hanging_callback_stops_the_run_at_its_time_limit_and_resume_finishes(tmp_path, zdt_recipe, capsys):
    cb = {"name": "bounded_wait_parts:SleepAt", "args": {"at_generation": 2, "sleep_s": 5}, "timeout_s": 0.5}
    path = write_recipe(tmp_path, zdt_recipe, [cb])
    out = tmp_path / "run"
    t0 = time.monotonic()
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    assert time.monotonic() - t0 < 4.5  # the 5 s sleep was not waited for
    line = one_line(capsys)
    assert (
        "callbacks[0] (bounded_wait_parts:SleepAt): on_generation_end did not return within 0.5 s "
        "(callbacks[0].timeout_s); generation 2 is committed" in line
    ), line
    store = RunStore(out, readonly=True)
    try:
        assert store.verify() == [] and store.last_generation()["generation"] == 2
        assert store.events("callback_error")
    finally:
        store.close()
    assert main(["run", "--resume", str(out), "--set", "callbacks=[]", "--quiet"]) == 0
    reference = tmp_path / "reference"
    evofair.run(zdt_recipe, reference, progress=False)
    assert (out / "front.csv").read_bytes() == (reference / "front.csv").read_bytes()
    assert generations(out) == generations(reference)


def generations(out: Path) -> list[str]:
    with open(out / "history.csv") as fh:
        return [row["generation"] for row in csv.DictReader(fh)]


def test_a_time_limited_callback_runs_every_call_on_one_thread_of_its_own():
    from bounded_wait_parts import SleepArgs, SleepAt

    cb = SleepAt(SleepArgs(at_generation=99, sleep_s=0))
    setattr(cb, TIME_LIMIT_ATTR, 5.0)
    calls = CallbackList([cb])
    calls.call("on_run_start", None)
    for g in range(3):
        calls.call("on_generation_end", type("G", (), {"generation": g})())
    calls.close()
    (name,) = cb.threads
    assert name != threading.current_thread().name


def test_a_callback_that_exits_does_not_end_the_run_as_a_success():
    class Exits(evofair.tracking.Callback):
        def on_generation_end(self, info):
            raise SystemExit(0)

    with pytest.raises(CallbackError, match="on_generation_end raised SystemExit"):
        CallbackList([Exits()]).call("on_generation_end", None)


@pytest.mark.parametrize("value", [0, -1, True, "soon", 1e9])
def test_bad_callback_time_limits_are_one_line_and_write_nothing(tmp_path, zdt_recipe, capsys, value):
    path = write_recipe(tmp_path, zdt_recipe, [{"name": "bounded_wait_parts:SleepAt", "timeout_s": value}])
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys)
    assert "timeout_s" in line, line
    assert not (tmp_path / "out").exists()
