"""The run's seal: what decides a result, recorded in the index so that `verify` sees it change.

A seal (meta key ``seal``) holds the sha256 of config.yaml's bytes as run, the objectives and their
directions, the number of committed generations (updated in each generation's own transaction),
that the run has per-generation checksums, and the generation whose front front.csv shows. It is
not a signature: whoever can write the folder can write a consistent seal; it catches edits and
damage that leave a run looking valid (an edited seed, a flipped direction, a deleted last
generation, a dropped checksum table).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

SEAL_META = "seal"
OBJECTIVES_META = "objectives"
OLDER = "no seal: written by an older evofair (config.yaml, objectives and generation count not checked)"


def read_seal(db: sqlite3.Connection) -> dict[str, Any] | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (SEAL_META,)).fetchone()
    if row is None:
        return None
    try:
        seal = json.loads(row[0])
    except (TypeError, ValueError):
        return {"unreadable": True}
    return seal if isinstance(seal, dict) else {"unreadable": True}


def write_seal(db: sqlite3.Connection, config: bytes, objectives: list[list[str]]) -> None:
    """Seal the run as it is now (call inside a transaction, or it is one by itself)."""
    count = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    old = read_seal(db) or {}
    seal = {
        "config_sha256": hashlib.sha256(config).hexdigest(),
        "objectives": [list(o) for o in objectives],
        "generations": count,
        "checksums": True,
        "front_generation": old.get("front_generation"),
    }
    db.execute("REPLACE INTO meta(key, value) VALUES(?, ?)", (SEAL_META, json.dumps(seal)))


def update_seal(db: sqlite3.Connection, **fields: Any) -> None:
    """Change fields of an existing seal (no seal: nothing); inside the caller's transaction."""
    seal = read_seal(db)
    if seal is None or seal.get("unreadable"):
        return
    if "generations" in fields and fields["generations"] is None:
        fields["generations"] = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    seal.update(fields)
    db.execute("REPLACE INTO meta(key, value) VALUES(?, ?)", (SEAL_META, json.dumps(seal)))


def seal_problems(db: sqlite3.Connection, root: Path, notes: list[str]) -> list[str]:
    """The run against its seal: config.yaml's bytes, the objectives, the generation count and the
    checksum table; one line per difference."""
    seal = read_seal(db)
    if seal is None:
        notes.append(OLDER)
        return []
    if seal.get("unreadable"):
        return ["seal: unreadable (database damaged or edited)"]
    problems = []
    config = root / "config.yaml"
    try:
        actual = hashlib.sha256(config.read_bytes()).hexdigest()
    except OSError:
        actual = None
    if actual != seal.get("config_sha256"):
        problems.append(f"{config}: differs from the recipe the run was sealed with (edited after the run?)")
    row = db.execute("SELECT value FROM meta WHERE key=?", (OBJECTIVES_META,)).fetchone()
    try:
        recorded = json.loads(row[0]) if row else None
    except (TypeError, ValueError):
        recorded = None
    if recorded != seal.get("objectives"):
        problems.append(
            f"objectives: the stored objectives/directions {recorded} differ from the sealed {seal.get('objectives')}"
        )
    count = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    if count != seal.get("generations"):
        problems.append(
            f"generations: {count} committed, the seal says {seal.get('generations')} (generations deleted or added)"
        )
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checksums'").fetchone()
    if seal.get("checksums") and not has_table:
        problems.append("checksums: the table is missing, but the run was sealed with per-generation checksums")
        notes[:] = [n for n in notes if not n.startswith("no per-generation checksums")]  # not an older run
    return problems
