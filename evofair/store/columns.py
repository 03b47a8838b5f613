"""The columnar layout of array genomes: one row per committed batch of vectors, not per individual.

A ZDT-sized run makes tens of thousands of cheap individuals; one JSON value and several SQLite
rows each made committing, checksumming and reading them back cost more than evolving them. An
array genome's individual has no weights, parents or operator record: it is an id, a seed, a
vector and its metrics. So a generation's batch is stored as arrays: its ids (one JSON list), its
seeds (int64 bytes), its vectors (one float64 matrix) and, in `batch_metrics`, one float64 column
per (split, metric). Non-finite metric values are stored as NaN, as the row layout reads them back.
Checkpoint genomes (weights, lineage, operator records) keep one row per individual (rows.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from evofair.core.heap import gc_paused
from evofair.core.individual import Individual, array_individual
from evofair.store.rows import StoredValueError, loads

COLUMN_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
    batch INTEGER PRIMARY KEY, generation INTEGER NOT NULL, ids TEXT NOT NULL, seeds BLOB NOT NULL,
    x BLOB NOT NULL, n_var INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batch_metrics(
    batch INTEGER NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY(batch, split, name));
CREATE INDEX IF NOT EXISTS batches_by_generation ON batches(generation);
"""

_F64 = np.dtype("<f8")
_I64 = np.dtype("<i8")


def columnar(new: Sequence[Individual], batch: Batch | None = None) -> bool:
    """Whether `new` fits the columnar layout: vectors of one length and one generation, the same
    metric names each, and nothing only rows hold (weights, parents, an operator record). `batch`:
    `new` as the arrays the engine made them from (engine/offspring.py), which fit by construction,
    so the per-individual check is skipped."""
    if not new:
        return False
    if batch is not None and len(batch.ids) == len(new):
        return True
    first = new[0]
    if first.x is None:
        return False
    n_var, gen = len(first.x), first.generation
    keys = _metric_keys(first)
    return all(
        ind.x is not None
        and len(ind.x) == n_var
        and ind.generation == gen
        and ind.weights_hash is None
        and not ind.parents
        and not ind.operator
        and _metric_keys(ind) == keys
        for ind in new
    )


def _metric_keys(ind: Individual) -> list[tuple[str, str]]:
    return [(split, name) for split, values in ind.metrics.items() for name in values]


@dataclass(frozen=True)
class Batch:
    """A generation's array individuals as the arrays one `batches` row and its metric columns
    store: ids, seeds (int64), vectors (float64, one row each) and one float64 column per (split,
    metric) in the individuals' metric order. The engine builds it from the arrays it evaluated,
    so committing needs no pass over the individuals; `batch_of` builds it from individuals."""

    generation: int
    ids: list[str]
    seeds: np.ndarray
    x: np.ndarray
    metrics: list[tuple[str, str, np.ndarray]]

    def reads_back_as_made(self) -> bool:
        """Whether reading the batch back gives every value as made: an infinite metric is stored
        (and read back) as NaN, as the row layout reads it."""
        return not any(np.isinf(values).any() for _, _, values in self.metrics)


def batch_of(new: Sequence[Individual]) -> Batch:
    """`new` (`columnar(new)` holds) as a `Batch`."""
    return Batch(
        generation=new[0].generation,
        ids=[ind.id for ind in new],
        seeds=np.asarray([ind.seed for ind in new], dtype=_I64),
        x=np.asarray([ind.x for ind in new], dtype=_F64),
        metrics=[
            (split, name, np.asarray([ind.metrics[split][name] for ind in new], dtype=_F64))
            for split, name in _metric_keys(new[0])
        ],
    )


def insert_batch(db: sqlite3.Connection, batch: Batch, now: float) -> None:
    """Store `batch` as one batch row and one metric column per (split, name)."""
    x, seeds = np.asarray(batch.x, dtype=_F64), np.asarray(batch.seeds, dtype=_I64)
    cur = db.execute(
        "INSERT INTO batches(generation, ids, seeds, x, n_var, created) VALUES(?,?,?,?,?,?)",
        (batch.generation, json.dumps(batch.ids), seeds.tobytes(), x.tobytes(), x.shape[1], now),
    )
    columns = []
    for split, name, made in batch.metrics:
        values = np.array(made, dtype=_F64)  # a copy: the batch's own arrays stay as made
        values[~np.isfinite(values)] = np.nan
        columns.append((cur.lastrowid, split, name, values.tobytes()))
    db.executemany("INSERT INTO batch_metrics(batch, split, name, value) VALUES(?,?,?,?)", columns)


def has_batches(db: sqlite3.Connection) -> bool:
    """Whether the index has the columnar tables (a run written before them has rows only)."""
    return bool(db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='batches'").fetchone())


def batch_digest(db: sqlite3.Connection, generation: int) -> bytes:
    """The bytes a generation's checksum covers for its batches (b"" when it has none, so a
    generation stored as rows keeps the checksum it was committed with)."""
    h = hashlib.sha256()
    found = False
    if not has_batches(db):
        return b""
    for batch, ids, seeds, x, n_var, created in db.execute(
        "SELECT batch, ids, seeds, x, n_var, created FROM batches WHERE generation=? ORDER BY batch", (generation,)
    ):
        found = True
        h.update(repr((batch, ids, n_var, created)).encode())
        h.update(_raw(seeds) + b"|" + _raw(x) + b"|")
        for split, name, value in db.execute(
            "SELECT split, name, value FROM batch_metrics WHERE batch=? ORDER BY split, name", (batch,)
        ):
            h.update(repr((split, name)).encode() + _raw(value) + b"|")
    return h.digest() if found else b""


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else repr(value).encode()  # a damaged row may hold text


def batch_members(db: sqlite3.Connection) -> dict[str, int]:
    """Every batch-stored id and its batch (one JSON list per batch)."""
    return {iid: batch for batch, ids in db.execute("SELECT batch, ids FROM batches") for iid in _ids(ids)}


def read_batches(
    db: sqlite3.Connection, batches: Iterable[int] | None = None, keep: set[str] | None = None
) -> list[Individual]:
    """The individuals of `batches` (None: all; `keep`: only those ids), each batch decoded at once."""
    select = "SELECT batch, generation, ids, seeds, x, n_var FROM batches"
    metric_sql = "SELECT batch, split, name, value FROM batch_metrics"
    if batches is None:
        rows = db.execute(select + " ORDER BY batch").fetchall()
        metric_rows = db.execute(metric_sql + " ORDER BY rowid").fetchall()
    else:
        wanted = sorted(set(batches))
        rows = [row for b in wanted for row in db.execute(select + " WHERE batch=?", (b,))]
        metric_rows = [row for b in wanted for row in db.execute(metric_sql + " WHERE batch=? ORDER BY rowid", (b,))]
    metrics: dict[int, list[tuple[str, str, bytes]]] = {}
    for batch, split, name, value in metric_rows:
        metrics.setdefault(batch, []).append((split, name, value))
    out: list[Individual] = []
    with gc_paused():
        for batch, generation, ids, seeds, x, n_var in rows:
            out += _decode(generation, _ids(ids), seeds, x, n_var, metrics.get(batch, []), keep)
    return out


def _ids(text: object) -> list[str]:
    ids = loads(text)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise StoredValueError("a stored batch's ids are not a list of strings")
    return ids


def _decode(generation, ids, seeds, x, n_var, metric_columns, keep) -> list[Individual]:
    n = len(ids)
    try:
        seed_values = np.frombuffer(seeds, dtype=_I64).tolist()
        vectors = np.frombuffer(x, dtype=_F64).reshape(n, int(n_var)).tolist()
        columns = [(split, name, np.frombuffer(v, dtype=_F64).tolist()) for split, name, v in metric_columns]
    except (TypeError, ValueError) as exc:
        raise StoredValueError(f"a stored batch does not decode: {exc}") from None
    if len(seed_values) != n or any(len(c) != n for *_, c in columns):
        raise StoredValueError("a stored batch's columns differ in length")
    per_split: dict[str, list[dict[str, float]]] = {}
    for split in dict.fromkeys(split for split, _, _ in columns):
        names = [name for s, name, _ in columns if s == split]
        per_split[split] = [dict(zip(names, values)) for values in zip(*(c for s, _, c in columns if s == split))]
    return [
        array_individual(ids[i], generation, seed_values[i], tuple(vectors[i]), {s: r[i] for s, r in per_split.items()})
        for i in range(n)
        if keep is None or ids[i] in keep
    ]
