"""How individuals are laid out in the index: the SQLite schema and the rows ↔ `Individual` mapping.

JSON columns (operator records, `x`, engine state) are parsed here, and a value that no longer
parses is a `StoredValueError`: the database was damaged or edited, which `verify` reports.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evofair.core.individual import Individual

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS individuals(
    id TEXT PRIMARY KEY, generation INTEGER NOT NULL, seed INTEGER NOT NULL,
    operator TEXT NOT NULL, weights_hash TEXT, x TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metrics(
    individual TEXT NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY(individual, split, name));
CREATE TABLE IF NOT EXISTS lineage(
    child TEXT NOT NULL, parent TEXT NOT NULL, position INTEGER NOT NULL, operator TEXT NOT NULL,
    PRIMARY KEY(child, position));
CREATE TABLE IF NOT EXISTS generations(
    generation INTEGER PRIMARY KEY, population TEXT NOT NULL, hv_val REAL, n_front INTEGER,
    evaluations INTEGER, seconds REAL, engine_state TEXT);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, generation INTEGER,
    individual TEXT, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics(split, name);
CREATE TABLE IF NOT EXISTS checksums(generation INTEGER PRIMARY KEY, digest TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS individuals_by_generation ON individuals(generation);
"""


class StoredValueError(sqlite3.DatabaseError):
    """A stored JSON value that no longer parses: the database was damaged or edited."""


def loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise StoredValueError(f"a stored value does not parse: {exc}") from None


def assemble(rows, metric_rows, lineage_rows) -> dict[str, Individual]:
    """Individuals from their table rows plus their metric and lineage rows."""
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for ind, split, name, value in metric_rows:
        metrics.setdefault(ind, {}).setdefault(split, {})[name] = float("nan") if value is None else value
    parents: dict[str, list[str]] = {}
    for child, parent in lineage_rows:
        parents.setdefault(child, []).append(parent)
    return {
        r[0]: Individual(
            id=r[0],
            generation=r[1],
            seed=r[2],
            operator=loads(r[3]),
            weights_hash=r[4],
            x=None if r[5] is None else tuple(loads(r[5])),
            parents=tuple(parents.get(r[0], ())),
            metrics=metrics.get(r[0], {}),
        )
        for r in rows
    }


def finite_or_none(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def operator_label(operator: Mapping[str, Any]) -> str:
    """A short label such as 'ties+gaussian+sft' for lineage edges."""
    parts = [operator[k]["name"] for k in ("init", "crossover", "mutation", "refine") if operator.get(k)]
    return "+".join(parts) or "copy"


GENERATIONS_SQL = "SELECT generation, population, hv_val, n_front, evaluations, seconds, engine_state FROM generations"
STAT_KEYS = ("generation", "hv_val", "n_front", "evaluations", "seconds")
STATS_SQL = f"SELECT {', '.join(STAT_KEYS)} FROM generations"


def generation_row(r: Sequence[Any]) -> dict[str, Any]:
    """A `generations` row (GENERATIONS_SQL's columns) as the store returns it: ids and state decoded."""
    return dict(
        generation=r[0],
        population=loads(r[1]),
        hv_val=r[2],
        n_front=r[3],
        evaluations=r[4],
        seconds=r[5],
        engine_state=loads(r[6]) if r[6] else {},
    )
