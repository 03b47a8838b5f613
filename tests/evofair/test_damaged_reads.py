"""Reading a damaged run: `evofair.load(DIR).front` is computed from the store (an edited
front.csv does not change it) and a damaged store is one `UserError` line, never a sqlite3,
Unicode or Key error; `--resume` after a dropped table or deleted rows says "run database
damaged" (exit 2, one line), for sealed runs and for older runs that have no checksums to
catch the deletion.

The oracle for the front is front.csv as the undamaged run wrote it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.store.run_store import DB_NAME

ZDT = {
    "name": "zdt-reads",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 4,
    "hv_ref": [1.1, 1.1],
}
OLDER = ("DELETE FROM meta WHERE key='seal'", "DROP TABLE checksums")  # as an older evofair left a run


@pytest.fixture(scope="module")
def zdt_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reads") / "zdt"
    evofair.run(ZDT, out, progress=False)
    return out


@pytest.fixture
def run(zdt_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(zdt_run, dest)
    return dest


def written_front(run: Path) -> list[str]:
    return [line.split(",")[0] for line in (run / "front.csv").read_text().splitlines()[1:]]


def execute(run: Path, *statements: str) -> None:
    con = sqlite3.connect(run / DB_NAME)
    with con:
        for statement in statements:
            con.execute(statement)
    con.close()


def test_front_is_computed_from_the_store_not_from_front_csv(run):
    expected = written_front(run)
    assert len(expected) >= 2
    (run / "front.csv").write_text("id,generation,f1_val,f2_val\ng0000i0000,0,0.0,0.0\n")
    result = evofair.load(run)
    assert [ind.id for ind in result.front] == expected
    assert all(set(ind.metrics["val"]) >= {"f1", "f2"} for ind in result.front)


def garbage_config(run: Path) -> None:
    (run / "config.yaml").write_bytes(b"name: \xff\xfe\x00broken\n")


DAMAGED_STORE = {
    "dropped meta table": lambda run: execute(run, "DROP TABLE meta"),
    "dropped metrics table": lambda run: execute(run, "DROP TABLE batch_metrics"),
    "deleted metric rows": lambda run: execute(run, "DELETE FROM batch_metrics"),
    "deleted population rows": lambda run: execute(run, "DELETE FROM batches"),
    "deleted last generation row": lambda run: execute(run, "DELETE FROM generations WHERE generation=1"),
    "config.yaml not text": garbage_config,
    "database not SQLite": lambda run: (run / DB_NAME).write_bytes(b"\x00not sqlite\xff" * 200),
}


@pytest.mark.parametrize("which", list(DAMAGED_STORE))
def test_load_front_reports_a_damaged_store_as_one_user_error(run, which):
    DAMAGED_STORE[which](run)
    with pytest.raises(UserError, match="damaged") as caught:
        evofair.load(run).front  # noqa: B018 - the read is the test
    assert "\n" not in str(caught.value) and str(run) in str(caught.value)


DAMAGED_ROWS = {
    "dropped metrics table": "DROP TABLE batch_metrics",
    "deleted metric rows": "DELETE FROM batch_metrics",
    "dropped population table": "DROP TABLE batches",
    "deleted population rows": "DELETE FROM batches",
    "dropped individuals table": "DROP TABLE individuals",
    "dropped lineage table": "DROP TABLE lineage",
}


@pytest.mark.parametrize("older", [False, True], ids=["sealed", "older"])
@pytest.mark.parametrize("which", list(DAMAGED_ROWS))
def test_resume_after_dropped_tables_or_deleted_rows_says_damaged(run, which, older, capsys):
    execute(run, *(OLDER if older else ()), DAMAGED_ROWS[which])
    before = (run / DB_NAME).read_bytes()
    assert main(["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "run database damaged" in lines[0], lines
    assert (run / DB_NAME).read_bytes() == before
