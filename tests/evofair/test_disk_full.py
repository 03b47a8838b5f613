"""Disk full and early kills, simulated with evofair/core/failpoints.py: one line and
exit 2, never a SQLite traceback; the folder is left resumable (a generation was committed) or
reusable by `run --out` (nothing was); `verify` answers in one line either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.core import failpoints

ZDT = {
    "name": "zdt-disk",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 4},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 8,
    "hv_ref": [1.1, 1.1],
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("disk") / "ref"
    evofair.run(ZDT, out, progress=False)
    return (out / "front.csv").read_text()


@pytest.fixture
def recipe(tmp_path) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(ZDT))
    return str(path)


def fail_at(monkeypatch, spec: str) -> None:
    monkeypatch.setattr(failpoints, "_counts", {})
    monkeypatch.setenv("EVOFAIR_FAILPOINT", spec)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_disk_full_in_a_commit_is_one_line_and_the_run_resumes_to_the_same_front(
    tmp_path, recipe, reference, monkeypatch, capsys
):
    out = tmp_path / "run"
    fail_at(monkeypatch, "sqlite_full_commit@3")
    assert main(["run", recipe, "--out", str(out), "--quiet"]) == 2
    line = one_line(capsys)
    assert "disk is full" in line and "--resume" in line
    monkeypatch.delenv("EVOFAIR_FAILPOINT")
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert (out / "front.csv").read_text() == reference


@pytest.mark.parametrize("spec", ["sqlite_full_open", "enospc_config"])
def test_disk_full_before_the_run_starts_leaves_a_reusable_folder(
    tmp_path, recipe, reference, monkeypatch, capsys, spec
):
    out = tmp_path / "run"
    fail_at(monkeypatch, spec)
    assert main(["run", recipe, "--out", str(out), "--quiet"]) == 2
    assert "nothing was computed" in one_line(capsys)
    monkeypatch.delenv("EVOFAIR_FAILPOINT")
    assert main(["run", "--resume", str(out), "--quiet"]) == 2
    assert "stopped before it started" in one_line(capsys)
    assert main(["run", recipe, "--out", str(out), "--quiet"]) == 0
    assert (out / "front.csv").read_text() == reference


def test_kill_before_config_exists_is_explained_and_reusable(tmp_path, recipe, reference, capsys):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "evofair.cli", "run", recipe, "--out", str(out), "--quiet"],
        env={**os.environ, "EVOFAIR_FAILPOINT": "kill_before_config"},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "config.yaml").exists()
    assert main(["verify", str(out)]) in (0, 1)
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--quiet"]) == 2
    assert "stopped before it started" in one_line(capsys)
    assert main(["run", recipe, "--out", str(out), "--quiet"]) == 0
    assert (out / "front.csv").read_text() == reference


def test_a_folder_with_other_files_is_still_never_reused(tmp_path, recipe, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("")
    (out / "notes.txt").write_text("mine")
    assert main(["run", recipe, "--out", str(out), "--quiet"]) == 2
    assert "not empty" in one_line(capsys)
