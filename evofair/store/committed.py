"""What a writer committed to the run it created, kept as reading the index back would give it.

A ZDT-sized run ends by reading back every individual it just wrote (the report's tables and
plots, the final front) and decoding tens of thousands of them cost as much as a tenth of the
run. The engine's array individuals are already in the form the columnar layout reads back
(`columns.Batch`: ids, int seeds, float vectors and metrics), so the writer keeps them and serves
full and by-id reads from memory. The copy holds at most `MAX_VALUES` stored numbers (vector
entries plus metric values, about 32 bytes each as Python floats); past that, or after anything
the columnar layout would not read back unchanged (a row-stored individual, an infinite metric),
it is dropped for good and reads go to the index, as a reader in another process always does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from evofair.core.individual import Individual
from evofair.store.columns import Batch, has_batches

MAX_VALUES = 4_000_000  # ~130 MB as Python floats; a report holds them all at the end anyway


class CommittedRun:
    """The individuals committed so far, in creation order, and each by id."""

    def __init__(self) -> None:
        self._individuals: list[Individual] = []
        self._by_id: dict[str, Individual] = {}
        self._values = 0

    def add(self, new: Sequence[Individual], batch: Batch | None) -> bool:
        """Keep `new` (just committed); False when the copy can no longer stand for the index.
        `batch`: `new` as arrays, made from the same values (None: `new` went in as rows)."""
        if batch is None or not batch.reads_back_as_made():
            return False
        self._values += batch.x.size + len(batch.metrics) * len(batch.ids)
        if self._values > MAX_VALUES:
            return False
        self._individuals += new
        self._by_id.update(zip(batch.ids, new))
        return True

    def individuals(self, ids: Iterable[str] | None = None) -> list[Individual]:
        """All, sorted by id as the index returns them (creation order), or those in `ids`, in that
        order; an unknown id raises KeyError as the index read does."""
        if ids is None:
            return sorted(self._individuals, key=_by_id)
        return [self._by_id[i] for i in ids]


def _by_id(ind: Individual) -> str:
    return ind.id


def run_is_empty(db: sqlite3.Connection) -> bool:
    """Whether the index holds no individual yet (a new run, not one being resumed)."""
    if db.execute("SELECT 1 FROM individuals LIMIT 1").fetchone():
        return False
    return not (has_batches(db) and db.execute("SELECT 1 FROM batches LIMIT 1").fetchone())
