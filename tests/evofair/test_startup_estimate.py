"""What a user is told before and while a long run works: the estimate (hand-computed from a fake
clock), the note for a recipe sized for a GPU, progress lines that come without updates, and other
libraries' warnings kept in run.log instead of the console."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from evofair.errors import UserError
from evofair.lifecycle.recipe import load_recipe, parse_recipe
from evofair.tracking.estimate import RunEstimate, format_seconds, hardware_note
from evofair.tracking.progress import LogLines

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_estimate_is_seconds_per_offspring_times_offspring_to_come(caplog):
    """5 generations of 16: the initial population's 16 evaluations take 8 s (0.5 s a model); the
    first offspring of generation 1 takes 3 s. To come: 15 + 3*16 = 63 offspring to make and
    16 + 3*16 = 64 models to evaluate, 3*63 + 0.5*64 = 221 s."""
    now = {"t": 0.0}
    est = RunEstimate(5, clock=lambda: now["t"])
    with caplog.at_level(logging.INFO, logger="evofair.estimate"):
        est.begin(0)
        now["t"] = 0.2
        est.observe("variation", 16, 16)  # making the initial population: not what later offspring cost
        now["t"] = 8.2
        est.observe("evaluate", 16, 16)
        assert caplog.records == []
        est.begin(1)
        now["t"] = 11.2
        est.observe("local learning", 1, 16)
        now["t"] = 20.0
        est.observe("local learning", 2, 16)  # said once
    assert [r.getMessage() for r in caplog.records] == [
        "estimate: about 3.7 min to go: 3 s per offspring (local learning) + 0.5 s per model evaluated, "
        "63 offspring to come (timed on generation 2's first)"
    ]
    assert format_seconds(221) == "3.7 min" and format_seconds(7200) == "2.0 h" and format_seconds(59) == "59 s"


def test_a_locally_trained_initial_population_is_timed_at_once():
    now = {"t": 0.0}
    est = RunEstimate(2, clock=lambda: now["t"])
    est.begin(0)
    now["t"] = 4.0
    est.observe("local learning", 1, 4)  # 3 + 4 offspring to make, evaluation not timed: 4 * 7 = 28 s
    assert est.said is not None and est.said.startswith("estimate: about 28 s to go: 4 s per offspring")
    assert "(evaluation not timed yet), 7 offspring to come" in est.said


def test_gpu_note_names_the_trial_flags_and_only_applies_without_a_gpu():
    recipe = load_recipe(ROOT / "runs" / "fapareto_biasbios_lora.yaml")
    dumped = recipe.model_dump(mode="json")
    note = hardware_note(recipe.name, recipe.sized_for, "serial", dumped, has_gpu=lambda: False)
    assert note == (
        "fapareto_biasbios_lora is sized for a GPU and none is visible (CPU only): expect it to run for hours; "
        "for a small trial on this machine: evofair run fapareto_biasbios_lora --set problem.args.limit=48 "
        "--set algorithm.pop_size=4 --set algorithm.generations=2 "
        "--set problem.args.baselines.lora.enabled=false"
    )
    assert hardware_note(recipe.name, recipe.sized_for, "serial", dumped, has_gpu=lambda: True) is None
    assert hardware_note(recipe.name, recipe.sized_for, "ray", dumped, has_gpu=lambda: False) is None
    trial = {**dumped, "algorithm": {**dumped["algorithm"], "pop_size": 4, "generations": 2}}
    args = {**dumped["problem"]["args"], "limit": 48, "baselines": {"lora": {"enabled": False}}}
    trial["problem"] = {**dumped["problem"], "args": args}
    assert "running its small trial settings" in hardware_note(
        recipe.name, recipe.sized_for, "serial", trial, has_gpu=lambda: False
    )
    plain = load_recipe(ROOT / "runs" / "fapareto_biasbios.yaml")
    assert plain.sized_for is None and hardware_note(plain.name, None, "serial", has_gpu=lambda: False) is None


def test_sized_for_accepts_only_gpu():
    with pytest.raises(UserError, match="sized_for.device"):
        parse_recipe({"problem": {"name": "zdt1"}, "sized_for": {"device": "tpu"}})


def test_a_bar_with_a_heartbeat_speaks_without_updates(caplog):
    """A step that reports nothing (one long evaluation) still gets a line per interval, which stops
    when the bar is closed."""
    with caplog.at_level(logging.INFO, logger="evofair.progress"):
        bar = LogLines(None, "loading the encoder", "", interval=0.05, heartbeat=True)
        deadline = time.monotonic() + 20
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        bar.close()
        said = len(caplog.records)
        time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records]
    assert said >= 2 and len(lines) == said, lines
    assert all(ln.startswith("loading the encoder (") and ln.endswith(" s)") for ln in lines), lines


def test_third_party_warnings_go_to_run_log_not_the_console(tmp_path):
    """A Python warning, a propagating library logger (fairlearn's kind) and a library logger with
    its own stderr handler (transformers' kind): none on the console, all three in run.log."""
    path = tmp_path / "noisy.yaml"
    recipe = {
        "name": "noisy",
        "problem": {"name": "startup_parts:NoisyZDT1", "args": {"n_var": 4}},
        "algorithm": {"pop_size": 6, "generations": 2},
        "paths": [str(HERE)],
    }
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.run(
        [sys.executable, "-m", "evofair.cli", "run", str(path), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "noisy:" not in proc.stderr, proc.stderr
    log = (tmp_path / "run" / "run.log").read_text()
    for text in ("UserWarning: noisy: a python warning", "noisy: a grid warning", "noisy: a library handler warning"):
        assert log.count(text) == 1, (text, log)
