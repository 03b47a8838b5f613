"""Array genomes are stored as columns (one batch of arrays per generation); runs written before
that, one row per individual, still open, verify, report and resume, with the same results.

The old layout is written by the row path itself (`columnar` forced off) and, for a run from an
evofair that predates the columnar tables, with those tables dropped afterwards.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import evofair
import evofair.store.run_store as run_store
from evofair.cli import main
from evofair.core.individual import Individual
from evofair.store.run_store import DB_NAME, RunStore

ZDT = {
    "name": "zdt-columns",
    "problem": {"name": "zdt1", "args": {"n_var": 5}},
    "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 4},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 3,
    "hv_ref": [1.1, 1.1],
}


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same recipe written columnar (now), as rows, and as rows by an evofair without the tables."""
    root = tmp_path_factory.mktemp("columns")
    evofair.run(ZDT, root / "columns", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_store, "columnar", lambda new, batch=None: False)
        evofair.run(ZDT, root / "rows", progress=False)
    shutil.copytree(root / "rows", root / "older")
    with sqlite3.connect(root / "older" / DB_NAME) as con:
        con.executescript("DROP TABLE batch_metrics; DROP TABLE batches;")
    con.close()
    return {name: root / name for name in ("columns", "rows", "older")}


def _individuals(run: Path) -> list[Individual]:
    store = RunStore(run, readonly=True)
    try:
        return store.individuals()
    finally:
        store.close()


def test_layouts_hold_what_they_say(runs):
    db = runs["columns"] / DB_NAME
    assert _count(db, "individuals") == 0 and _count(db, "batches") == ZDT["algorithm"]["generations"]
    assert _count(runs["rows"] / DB_NAME, "individuals") == 8 * 4 and _count(runs["rows"] / DB_NAME, "batches") == 0


def test_both_layouts_read_back_the_same_individuals_and_front(runs):
    columns = _individuals(runs["columns"])
    assert len(columns) == 32 and [i.id for i in columns] == sorted(i.id for i in columns)
    for name in ("rows", "older"):
        assert _individuals(runs[name]) == columns
        assert (runs[name] / "front.csv").read_bytes() == (runs["columns"] / "front.csv").read_bytes()
    ids = [columns[-1].id, columns[0].id, columns[-1].id]
    for name in runs:
        store = RunStore(runs[name], readonly=True)
        assert store.individuals(ids) == [columns[-1], columns[0], columns[-1]]
        with pytest.raises(KeyError):
            store.individuals(["g9999i9999"])
        store.close()


@pytest.mark.parametrize("name", ["rows", "older"])
def test_an_old_run_loads_verifies_reports_and_resumes(runs, name, tmp_path, capsys):
    run = tmp_path / name
    shutil.copytree(runs[name], run)
    result = evofair.load(run)
    assert list(result.ids) == list(evofair.load(runs["columns"]).ids)
    assert main(["verify", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert (run / "front.csv").read_bytes() == (runs["columns"] / "front.csv").read_bytes()
    # more generations: the new ones are stored as columns, next to the old rows
    assert main(["run", "--resume", str(run), "--quiet", "--set", "algorithm.generations=6"]) == 0
    assert _count(run / DB_NAME, "batches") == 2 and _count(run / DB_NAME, "individuals") == 32
    assert main(["verify", str(run)]) == 0
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    evofair.run({**ZDT, "algorithm": {**ZDT["algorithm"], "generations": 6}}, fresh, progress=False)
    assert _individuals(run) == _individuals(fresh)
    assert (run / "front.csv").read_bytes() == (fresh / "front.csv").read_bytes()
