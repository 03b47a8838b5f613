"""A damaged run database: `verify` catches every single-bit flip that changes
a stored metric, seed, lineage edge or generation; every command says "run database damaged" in
one line (exit 2) instead of a traceback; a 0-byte database is never started over; report and
explore warn about front models whose weights fail their hash.

The oracle for "the flip changed something" is an independent read of the copy with plain
sqlite3 (every row of the four tables the results live in), compared with the undamaged file.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

import evofair
from evofair.cli import main
from evofair.store.run_store import DB_NAME, RunStore

ZDT = {
    "name": "zdt-damage",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 3},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 2,
    "hv_ref": [1.1, 1.1],
}
TABLES = {
    "individuals": "id",
    "metrics": "individual, split, name",
    "lineage": "child, position",
    "generations": "generation",
    "batches": "batch",
    "batch_metrics": "batch, split, name",
}


@pytest.fixture(scope="module")
def zdt_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("damage") / "zdt"
    evofair.run(ZDT, out, progress=False)
    assert not (out / f"{DB_NAME}-wal").exists()
    return out


def stored_rows(db: Path):
    """Every row results depend on, read independently of evofair (immutable: writes nothing)."""
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}
    finally:
        con.close()


def test_verify_catches_every_flip_that_changes_stored_results(zdt_run, tmp_path, capsys):
    original_rows = stored_rows(zdt_run / DB_NAME)
    original = (zdt_run / DB_NAME).read_bytes()
    run = tmp_path / "run"
    shutil.copytree(zdt_run, run)
    rng = random.Random(15)
    changed = caught = 0
    for _ in range(150):
        bit = rng.randrange(len(original) * 8)
        data = bytearray(original)
        data[bit // 8] ^= 1 << (bit % 8)
        (run / DB_NAME).write_bytes(bytes(data))
        try:
            differs = stored_rows(run / DB_NAME) != original_rows
        except (sqlite3.DatabaseError, ValueError):
            differs = True
        code = main(["verify", str(run)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if code == 2:
            assert "run database damaged" in err and len(err.strip().splitlines()) == 1, err
        if differs:
            changed += 1
            assert code != 0, f"bit {bit}: stored rows changed but verify said ok"
            caught += 1
    assert changed >= 10, changed  # the test exercised real damage, not only free space


def test_older_runs_without_checksums_verify_with_a_note(zdt_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(zdt_run, run)
    with sqlite3.connect(run / DB_NAME) as con:
        con.execute("DROP TABLE checksums")
        con.execute(
            "DELETE FROM meta WHERE key='seal'"
        )  # an older run has neither (test_sealed_run.py: a dropped table)
    con.close()
    assert main(["verify", str(run)]) == 0
    captured = capsys.readouterr()
    assert "note:" in captured.err and "checksum" in captured.err and "ok" in captured.out


@pytest.mark.parametrize("table, column", [("batch_metrics", "value"), ("batches", "x"), ("batches", "seeds")])
def test_a_flipped_bit_in_a_stored_array_is_caught(zdt_run, tmp_path, capsys, table, column):
    """A vector problem's metrics, vectors and seeds are stored as arrays: one bit flipped in one
    stored float (or seed) makes that generation's checksum fail."""
    run = tmp_path / "run"
    shutil.copytree(zdt_run, run)
    with sqlite3.connect(run / DB_NAME) as con:
        rowid, blob = con.execute(f"SELECT rowid, {column} FROM {table} ORDER BY rowid LIMIT 1").fetchone()
        flipped = bytearray(blob)
        flipped[3] ^= 0x01
        con.execute(f"UPDATE {table} SET {column}=? WHERE rowid=?", (bytes(flipped), rowid))
    con.close()
    assert main(["verify", str(run)]) == 1
    assert "checksum" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
@pytest.mark.parametrize("command", ["verify", "report", "export", "resume"])
def test_every_command_says_damaged_in_one_line(zdt_run, tmp_path, capsys, damage, command):
    run = tmp_path / "run"
    shutil.copytree(zdt_run, run)
    db = run / DB_NAME
    if damage == "garbage":
        db.write_bytes(b"\x00not sqlite at all\xff" * 300)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:1500])
    else:
        db.write_bytes(b"")
    before = db.read_bytes()
    argv = {
        "verify": ["verify", str(run)],
        "report": ["report", str(run), "--out", str(tmp_path / "r.html")],
        "export": ["export", str(run), "g0000i0000", "--to", str(tmp_path / "x")],
        "resume": ["run", "--resume", str(run), "--quiet"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run database damaged" in err, err
    assert db.read_bytes() == before  # never started over, never repaired behind the user's back


def test_explore_says_damaged(zdt_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(zdt_run, run)
    (run / DB_NAME).write_bytes(b"\x00not sqlite at all\xff" * 300)
    assert main(["explore", str(run), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run database damaged" in err


def test_report_and_explore_warn_about_weights_that_fail_their_hash(tmp_path, capsys):
    import yaml

    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=4, generations=1)
    recipe["problem"]["args"] = {"n_train": 64, "n_eval": 32}
    run = tmp_path / "toy"
    evofair.run(recipe, run, progress=False)
    store = RunStore(run, readonly=True)
    front_id = (run / "front.csv").read_text().splitlines()[1].split(",")[0]
    digest = store.individuals([front_id])[0].weights_hash
    path = store.weights_path(digest)
    store.close()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and front_id in err
    assert "fail their hash" in out.read_text(encoding="utf-8") and front_id in out.read_text(encoding="utf-8")
    from evofair.explorer import weights_warning
    from evofair.explorer.data import RunData

    assert front_id in weights_warning(RunData(run))
