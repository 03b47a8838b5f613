"""`evofair run fapareto_biasbios_lora` as a user without a GPU starts it, pointed by `--set` at a
tiny encoder and a slice of BiasBios: the console (a pipe, not a TTY) says at once that the recipe
is sized for a GPU and how to run a small trial, says each setup phase as it starts, and gives the
run's estimate before the first generation is over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import biasbios_subset, tiny_bert

PHASES = (
    "embedding 24 texts",  # the head features every run computes (8 bios of each split)
    "loading the encoder from",
    "tokenising 8 texts (at most 32 tokens each)",
    "frozen prefix: running layers below 1 over 24 texts",
    # generation lines are written at most once per interval, so a fast generation may have none;
    # the phase after the evolution always announces itself
    "after the run: ",
)


def _timed_lines(argv, env) -> tuple[int, list[tuple[float, str]]]:
    """Run `argv`, reading stderr line by line as it comes: (exit code, [(seconds since start, line)])."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stderr]
    return proc.wait(timeout=300), lines


def test_cpu_user_is_told_the_estimate_the_gpu_note_and_each_phase(tmp_path):
    model = tiny_bert(tmp_path / "model")
    data = biasbios_subset(tmp_path / "bios.jsonl", per_split=8)
    args = {
        "model_dir": str(model),
        "data_file": str(data),
        "cache_dir": str(tmp_path / "cache"),
        "limit": 8,
        "max_length": 32,
        "hidden": [8],
        "lora": {"r": 2, "alpha": 4, "top_layers": 1, "targets": ["query", "value"]},
        "baselines": {"vanilla": 1, "lambdas": [1.0], "epochs": 1, "threshold": [], "lora": {"enabled": False}},
    }
    sets = [f"problem.args.{k}={json.dumps(v)}" for k, v in args.items()] + [
        "algorithm.pop_size=4",
        "algorithm.generations=2",
        'operators.refine.args={"steps": 2, "optimizer": "adamw", "lr": 0.01, "batch_size": 6}',
        "intervals.enabled=false",
    ]
    argv = [sys.executable, "-m", "evofair.cli", "run", "fapareto_biasbios_lora", "--out", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    env = {**os.environ, "EVOFAIR_PROGRESS_INTERVAL": "0.2", "CUDA_VISIBLE_DEVICES": ""}
    code, timed = _timed_lines(argv, env)
    lines = [line for _, line in timed]
    assert code == 0, "\n".join(lines[-30:])
    gaps = [b - a for (a, _), (b, _) in zip(timed, timed[1:])]
    print(f"{len(lines)} lines; longest silence {max(gaps):.1f} s")  # noqa: T201 - seen with -s

    assert lines[0] == (
        "evofair: note: fapareto_biasbios_lora is sized for a GPU and none is visible (CPU only): expect it to "
        "run for hours; for a small trial on this machine: evofair run fapareto_biasbios_lora "
        "--set problem.args.limit=48 --set algorithm.pop_size=4 --set algorithm.generations=2 "
        "--set problem.args.baselines.lora.enabled=false"
    )
    at = {p: next((k for k, line in enumerate(lines) if p in line), None) for p in PHASES}
    assert all(k is not None for k in at.values()), (at, lines)
    assert list(at.values()) == sorted(at.values()), at  # the phases in the order they happen
    estimate = [k for k, line in enumerate(lines) if line.startswith("evofair: estimate: about ")]
    assert len(estimate) == 1 and at["frozen prefix: running layers below 1 over 24 texts"] < estimate[0], lines
    assert estimate[0] < at["after the run: "], lines  # told while the evolution runs, not after it
    # the initial population is locally trained (refine_initial): 4 offspring of generation 1, the
    # first timed, 3 + 4 still to make
    assert "per offspring (local learning)" in lines[estimate[0]] and "7 offspring to come" in lines[estimate[0]]
    assert not any(line.startswith("evofair: evofair ") for line in lines)  # the name is said once
    assert "\r" not in "".join(lines)
