"""Opening a run directory runs no code from it.

A folder received from someone else may carry a module and a config.yaml that names it (as the
problem, a callback, an operator or the executor, found through `paths` or the folder itself).
The commands that read a run (report, export, explore, verify, `evofair.load`) and `run --resume`
must not import it unless the user says `--trust-code` / `trust_code=True`; they say so in one
line, and still show what the store holds.

Oracle: the planted module writes a marker file outside the run when imported; the marker must not
exist afterwards, and `evilmod` must not be in `sys.modules`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.store.run_store import DB_NAME
from evofair.store.seal import write_seal

ZDT = {
    "name": "zdt-hostile",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "hv_ref": [1.1, 1.1],
}

PLANT = """
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
from evofair.problems.classic.benchmarks import ZDT1 as P
def cb(*args, **kwargs):
    return None
"""

#: where config.yaml names the planted module: key path -> value
PLANTINGS = {
    "problem": {"problem": {"name": "evilmod:P", "args": {"n_var": 4}}},
    "paths": {"problem": {"name": "evilsub:P", "args": {"n_var": 4}}, "paths": ["sub"]},
    "callback": {"callbacks": [{"name": "evilmod:cb"}]},
    "operator": {"operators": {**ZDT["operators"], "mutation": {"name": "evilmod:cb"}}},
    "executor": {"executor": {"name": "evilmod:cb"}},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("untrusted") / "zdt"
    evofair.run(ZDT, out, progress=False)
    return out


@pytest.fixture
def planted(finished_run, tmp_path, monkeypatch):
    """A copy of the run with evilmod.py (and sub/evilsub.py) and a marker path outside it."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "PLANTED_CODE_RAN"
    (run / "sub").mkdir()
    for path in (run / "evilmod.py", run / "sub" / "evilsub.py"):
        path.write_text(PLANT.format(marker=str(marker)))
    monkeypatch.setattr(sys, "path", list(sys.path))  # a trusted import extends sys.path: restored after
    for name in ("evilmod", "evilsub"):
        sys.modules.pop(name, None)
    yield run, marker
    for name in ("evilmod", "evilsub"):
        sys.modules.pop(name, None)


def plant(run: Path, which: str) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.update(PLANTINGS[which])
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    reseal(run)


def reseal(run: Path) -> None:
    """Seal the planted config.yaml, as a sender who built the folder would (a seal is no signature:
    test_sealed_run.py covers an edit that was not resealed)."""
    con = sqlite3.connect(run / DB_NAME)
    with con:
        objectives = json.loads(con.execute("SELECT value FROM meta WHERE key='objectives'").fetchone()[0])
        write_seal(con, (run / "config.yaml").read_bytes(), objectives)
    con.close()


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def assert_nothing_ran(marker: Path) -> None:
    assert not marker.exists()
    assert "evilmod" not in sys.modules and "evilsub" not in sys.modules


@pytest.mark.parametrize("which", list(PLANTINGS))
def test_reading_commands_import_nothing_the_folder_names(planted, which, tmp_path, capsys):
    run, marker = planted
    plant(run, which)
    names_problem = which in ("problem", "paths")
    front_id = evofair.load(run).ids[0]

    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    notes = err_lines(capsys)
    assert (tmp_path / "r.html").is_file()
    assert main(["export", str(run), front_id, "--to", str(tmp_path / "exported")]) == 0
    notes += err_lines(capsys)
    assert (tmp_path / "exported" / "genome.json").is_file()
    if names_problem:  # one note per command: what was refused and how to allow it
        assert len(notes) == 2, notes
        assert all("not imported" in line and "--trust-code" in line for line in notes)
    else:
        assert notes == []

    assert main(["verify", str(run)]) == 0
    verify = err_lines(capsys)
    assert len(verify) == 1 and "names code by module path" in verify[0] and "--trust-code" in verify[0]

    result = evofair.load(run)
    assert list(result.ids)  # the front, from the store
    if names_problem:
        with pytest.raises(UserError, match="trust_code=True"):
            _ = result.problem
    assert_nothing_ran(marker)


@pytest.mark.parametrize("which", list(PLANTINGS))
def test_explore_serves_the_run_without_its_code(planted, which):
    from evofair.explorer import create_server

    run, marker = planted
    plant(run, which)
    srv = create_server(run, port=0)
    try:
        page = srv.app.server.test_client().get("/", headers={"Host": f"127.0.0.1:{srv.port}"})
        assert page.status_code == 200
        assert srv.data.snapshot.front()
        if which in ("problem", "paths"):
            assert srv.data.problem is None and "--trust-code" in srv.data.note and "\n" not in srv.data.note
    finally:
        srv.stop()
    assert_nothing_ran(marker)


@pytest.mark.parametrize("which", list(PLANTINGS))
def test_resume_refuses_in_one_line_and_writes_nothing(planted, which, capsys):
    run, marker = planted
    plant(run, which)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert main(["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet"]) == 2
    lines = err_lines(capsys)
    assert len(lines) == 1 and "not imported" in lines[0] and "--trust-code" in lines[0], lines
    with pytest.raises(UserError, match="trust_code=True"):
        evofair.run(resume=run, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    assert_nothing_ran(marker)


def test_trust_code_imports_what_the_user_allowed(planted, tmp_path, capsys):
    run, marker = planted
    plant(run, "problem")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--trust-code"]) == 0
    assert err_lines(capsys) == [] and marker.exists()
    assert type(evofair.load(run, trust_code=True).problem).__name__ == "ZDT1"
    assert main(["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet", "--trust-code"]) == 0
    assert len(evofair.load(run).history) == 3


def test_a_recipe_the_user_runs_may_name_modules(tmp_path, monkeypatch):
    """A fresh run trusts its recipe: the user chose it (and its folder's modules)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "mine.py").write_text("from evofair.problems.classic.benchmarks import ZDT1 as Mine\n")
    recipe = {**ZDT, "problem": {"name": "mine:Mine", "args": {"n_var": 4}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    try:
        assert main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    finally:
        sys.modules.pop("mine", None)
    assert (tmp_path / "out" / "front.csv").is_file()
