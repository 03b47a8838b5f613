"""Logging and progress: run.log, -v/-q, --version, worker errors in
run.log, and progress lines inside a generation on non-TTY output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

import evofair
from evofair.executors.base import WorkerError
from evofair.tracking.progress import LogLines

HERE = Path(__file__).parent


def slow_recipe(tmp_path, **args) -> Path:
    """3 generations of 8 ZDT1 genomes that sleep while evaluated: a generation of ~1.5 s."""
    path = tmp_path / "slow.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "slow",
                "problem": {"name": "tracking_parts:SlowZDT1", "args": {"n_var": 5, **args}},
                "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 3},
                "operators": {"crossover": {"name": "sbx"}, "crossover_prob": 1.0, "mutation": {"name": "pm"}},
                "executor": {"eval_chunk": 2},
                "seed": 1,
                "hv_ref": [10.0, 10.0],
                "paths": [str(HERE)],
            }
        )
    )
    return path


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "evofair.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_progress_lines_inside_a_generation_on_non_tty_output(tmp_path):
    """stderr is a pipe (no TTY): no tqdm redraws, but a line per interval naming the phase and the
    offspring done / total within the generation; -q silences them; run.log keeps them."""
    recipe = slow_recipe(tmp_path, sleep_s=0.05)
    proc = run_cli("run", str(recipe), "--out", str(tmp_path / "run"), env={"EVOFAIR_PROGRESS_INTERVAL": "0.3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    inner = [ln for ln in lines if ln.startswith("evofair: generation 2/3: evaluate: ")]
    assert inner, proc.stderr
    done = [int(ln.split("evaluate: ")[1].split("/")[0]) for ln in inner]
    assert all(0 < d <= 8 for d in done) and all(ln.split("/")[2].startswith("8 models") for ln in inner), inner
    assert any(ln.startswith("evofair: slow: ") and "/3 gen" in ln for ln in lines)  # the name once
    assert "\r" not in proc.stderr  # no progress-bar redraws in a log file
    assert "generation 2/3: evaluate" in (tmp_path / "run" / "run.log").read_text()
    assert proc.stdout.strip().startswith("evofair: wrote ")

    quiet = run_cli("run", str(recipe), "--out", str(tmp_path / "q"), "-q", env={"EVOFAIR_PROGRESS_INTERVAL": "0.3"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_verbose_shows_each_generation_and_run_log_keeps_warnings(tmp_path, capsys):
    from evofair.cli import main

    recipe = slow_recipe(tmp_path, sleep_s=0.0, warn=True)
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "evofair: generation 2: hv_val " in err  # DEBUG, shown with -v only
    log = (tmp_path / "run" / "run.log").read_text()
    assert "WARNING py.warnings" in log and "slow_zdt1: a warning from inside evaluate" in log
    assert "DEBUG evofair.engine: generation 0: hv_val" in log and "generation 2: hv_val" in log
    assert main(["run", str(recipe), "--out", str(tmp_path / "plain")]) == 0
    assert "hv_val" not in capsys.readouterr().err


def test_version(capsys):
    from evofair.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"evofair {version('evofair')}"


def test_worker_error_goes_to_run_log_with_its_traceback(tmp_path, zdt_recipe, monkeypatch, capsys):
    """The executor's `worker_error` (as the Ray executor raises it) is in run.log with the worker's
    traceback, while the console gets the one line only."""
    from evofair.cli import main
    from evofair.executors.serial import SerialExecutor

    calls = {"n": 0}
    original = SerialExecutor.evaluate

    def failing(self, genomes):
        calls["n"] += 1
        if calls["n"] == 3:
            raise WorkerError(
                "a task failed on a Ray worker: ValueError: boom-4711",
                'Traceback (most recent call last):\n  File "w.py", line 1, in raise_on_worker\nValueError: boom-4711',
            )
        return original(self, genomes)

    monkeypatch.setattr(SerialExecutor, "evaluate", failing)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(zdt_recipe))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evofair: error: a task failed") and "boom-4711" in err[0]
    log = (out / "run.log").read_text()
    assert "ERROR evofair.events: worker_error: a task failed on a Ray worker: ValueError: boom-4711" in log
    assert "in raise_on_worker" in log


def test_run_log_planted_as_a_link_is_refused(tmp_path, zdt_recipe, capsys):
    from evofair.cli import main

    short = {**zdt_recipe, "algorithm": {**zdt_recipe["algorithm"], "generations": 2}}
    out = tmp_path / "run"
    evofair.run(short, out, progress=False)
    target = tmp_path / "victim.txt"
    target.write_text("mine")
    (out / "run.log").unlink()
    (out / "run.log").symlink_to(target)
    assert main(["run", "--resume", str(out), "--set", "algorithm.generations=3", "-q"]) == 2
    assert "run.log: is a symbolic link" in capsys.readouterr().err
    assert target.read_text() == "mine"


def test_library_runs_leave_logging_as_they_found_it(tmp_path, zdt_recipe):
    logger = logging.getLogger("evofair")
    before = (logger.level, logger.propagate, list(logger.handlers))
    evofair.run(
        {**zdt_recipe, "algorithm": {**zdt_recipe["algorithm"], "generations": 2}}, tmp_path / "run", progress=False
    )
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    assert "generation 1: hv_val" in (tmp_path / "run" / "run.log").read_text()


def test_log_lines_are_throttled_and_close_with_the_final_count(caplog):
    now = {"t": 0.0}
    bar = LogLines(10, "generation 2/5: local learning", "offspring", interval=5.0, clock=lambda: now["t"])
    with caplog.at_level(logging.INFO, logger="evofair.progress"):
        for _ in range(10):
            now["t"] += 1.0
            bar.update(1)
        bar.close()
    assert [r.getMessage() for r in caplog.records] == [
        "generation 2/5: local learning: 5/10 offspring (5 s, about 5 s left)",
        "generation 2/5: local learning: 10/10 offspring (10 s)",
    ]
    short = LogLines(10, "fast", interval=5.0, clock=lambda: 0.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="evofair.progress"):
        short.update(10)
        short.close()
    assert caplog.records == []  # a phase shorter than the interval is not mentioned


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_keeps_its_long_and_short_form(flag):
    from evofair.cli import build_parser

    args = build_parser().parse_args(["run", "toy", flag])
    assert args.quiet is True and args.verbose == 0
