"""Checksums of committed generations: what `verify` compares and `--resume` trusts."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any


def generation_digest(db: sqlite3.Connection, generation: int) -> str:
    """sha256 of one generation's stored rows: its individuals (seed, operator, weights hash, x),
    their metrics and lineage, and the generation row (population, stats, engine state)."""
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
    return h.hexdigest()


def _jsonable(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)  # a BLOB where a damaged row has one
