"""Checksums of committed generations: what `verify` compares and `--resume` trusts."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from evofair.store.columns import batch_digest


def generation_digest(db: sqlite3.Connection, generation: int) -> str:
    """sha256 of one generation's stored rows: its individuals (seed, operator, weights hash, x),
    their metrics and lineage, the generation row (population, stats, engine state) and, when it
    has any, its batches' arrays (their bytes as stored, so a flipped bit anywhere changes it)."""
    h = hashlib.sha256()
    queries = [
        (
            "SELECT id, generation, seed, operator, weights_hash, x, created FROM individuals"
            " WHERE generation=? ORDER BY id",
            (generation,),
        ),
        (
            "SELECT m.individual, m.split, m.name, m.value FROM metrics m JOIN individuals i ON i.id = m.individual"
            " WHERE i.generation=? ORDER BY m.individual, m.split, m.name",
            (generation,),
        ),
        (
            "SELECT l.child, l.parent, l.position, l.operator FROM lineage l JOIN individuals i ON i.id = l.child"
            " WHERE i.generation=? ORDER BY l.child, l.position",
            (generation,),
        ),
        (
            "SELECT generation, population, hv_val, n_front, evaluations, seconds, engine_state FROM generations"
            " WHERE generation=?",
            (generation,),
        ),
    ]
    for sql, params in queries:
        for row in db.execute(sql, params):
            h.update(json.dumps(row, default=_jsonable).encode())  # floats as repr: exact
        h.update(b"|")
    h.update(batch_digest(db, generation))  # b"" without batches: a row-stored generation's digest is as before
    return h.hexdigest()


def _jsonable(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)  # a BLOB where a damaged row has one
