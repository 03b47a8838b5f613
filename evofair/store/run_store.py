"""The run store: a SQLite index plus content-addressed safetensors weights.

The store is the single source of truth of a run. The engine writes it (one writer: the driver
process); reports, resume and the explorer only read it. Weights are saved once per distinct
content, under the sha256 of the file's bytes, so loading can verify integrity.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from evofair.core import failpoints
from evofair.core.heap import gc_paused
from evofair.core.individual import Individual, Weights
from evofair.errors import UserError, WeightsIntegrityError
from evofair.store.columns import (
    COLUMN_SCHEMA,
    Batch,
    batch_members,
    batch_of,
    columnar,
    has_batches,
    insert_batch,
    read_batches,
)
from evofair.store.committed import CommittedRun, run_is_empty
from evofair.store.digests import generation_digest
from evofair.store.rows import (
    GENERATIONS_SQL,
    SCHEMA,
    STAT_KEYS,
    STATS_SQL,
    assemble,
    finite_or_none,
    generation_row,
    loads,
    operator_label,
)
from evofair.store.safe_io import refuse_links
from evofair.store.seal import seal_problems, update_seal, write_seal
from evofair.store.verification import checksum_mismatches, dangling_references
from evofair.store.weights_files import atomic_write, read_weights_file, weights_bytes, weights_file
from evofair.store.writer_lock import DB_NAME, acquire_lock, writer_alive

_IN_CHUNK = 500  # ids per IN (...) query: under SQLite's historical limit of 999 parameters


class ReadOnlyStoreError(PermissionError):
    """A write to a store opened with ``readonly=True`` (reports, the explorer, verification)."""


class RunStore:
    """Read/write access to one run directory."""

    def __init__(self, root: str | os.PathLike, *, readonly: bool = False, cache_size: int = 256):
        self.root = Path(root)
        self.readonly = readonly
        db = self.root / DB_NAME
        if readonly:
            if not db.exists():
                raise UserError(f"{self.root}: not an evofair run directory (no {DB_NAME})")
            # With no live writer, `immutable=1` reads without creating -wal/-shm files, so looking
            # at a finished run leaves its directory byte-for-byte unchanged.
            mode = "ro" if writer_alive(self.root) else "ro&immutable=1"
            self._db = sqlite3.connect(f"file:{db}?mode={mode}", uri=True, check_same_thread=False)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = acquire_lock(self.root)
            try:
                refuse_links(db, f"{db}-wal", f"{db}-shm")  # SQLite would write through them
            except UserError:
                self._lock.close()
                raise
            self._db = sqlite3.connect(db, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            failpoints.hit("sqlite_full_open")
            self._db.executescript(SCHEMA + COLUMN_SCHEMA)
        # A run written before the columnar layout has no `batches` table: all its individuals are rows.
        self._columnar = has_batches(self._db)
        # a writer that starts an empty run serves reads of what it commits from memory (committed.py)
        self._committed = CommittedRun() if not readonly and run_is_empty(self._db) else None
        self.notes: list[str] = []  # what `verify` could not check (e.g. a run from an older evofair)
        self._cache: OrderedDict[str, Weights] = OrderedDict()
        self._cache_size = cache_size
        self._pending: dict[str, Future] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evofair-weights")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
            self._db.close()
            if getattr(self, "_lock", None) is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    # -- weights -----------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStoreError(f"{self.root}: store opened read-only")

    def weights_path(self, digest: str) -> Path:
        return weights_file(self.root, digest)

    def put_weights(self, weights: Mapping[str, torch.Tensor]) -> str:
        """Save weights once per distinct content; returns their sha256.

        The file is written by a background thread so disk I/O overlaps the next offspring's
        training; `commit_generation` waits for every pending write before any row refers to it.
        Callers must not modify `weights` afterwards (operators never edit weights in place).
        """
        self._check_writable()
        data = weights_bytes(weights)
        digest = hashlib.sha256(data).hexdigest()
        path = self.weights_path(digest)
        if digest not in self._pending and not path.exists():
            fsync = os.environ.get("EVOFAIR_FSYNC") == "1"
            self._pending[digest] = self._writer.submit(atomic_write, path, data, fsync, self.root)
        self._remember(digest, dict(weights))
        return digest

    def flush(self) -> None:
        """Wait for pending weight writes; re-raises the first write error (e.g. disk full)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            future.result()

    def get_weights(self, digest: str) -> Weights:
        """Load weights, checking that the file's content still hashes to its name."""
        if digest in self._pending:
            self._pending[digest].result()
        if digest in self._cache:
            self._cache.move_to_end(digest)
            return dict(self._cache[digest])
        weights = read_weights_file(self.root, digest)
        self._remember(digest, weights)
        return dict(weights)

    def require_weights(self, digests: Iterable[str]) -> None:
        """Before a row names weights that workers wrote: each file must be there (a stat each;
        their hashes were computed by the workers from the bytes they wrote, and `verify` re-checks)."""
        self._check_writable()
        for digest in dict.fromkeys(digests):
            if digest not in self._pending and not self.weights_path(digest).is_file():
                raise UserError(
                    f"{self.weights_path(digest)}: a worker reported writing these weights, but the "
                    "driver does not see the file (is the run directory on storage every node shares?)"
                )

    def _remember(self, digest: str, weights: Weights) -> None:
        self._cache[digest] = weights
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def verify(self, *, hash_weights: bool = True) -> list[str]:
        """Problems found in the run directory: a damaged database (SQLite's integrity check, and
        each generation's rows against their commit-time checksum), the run against its seal
        (config.yaml, objectives, generation count, checksum table: seal.py), missing or corrupted
        weights (`hash_weights=False`: missing only), dangling rows. A database SQLite cannot read
        at all raises sqlite3.DatabaseError."""
        problems = []
        check = [r[0] for r in self._db.execute("PRAGMA integrity_check(20)")]
        if check != ["ok"]:
            problems.append(f"{self.root / DB_NAME}: SQLite integrity check: {'; '.join(check)[:300]}")
        problems += checksum_mismatches(self._db, self.notes)
        try:
            problems += seal_problems(self._db, self.root, self.notes)
            problems += dangling_references(self._db, self.root, self.generations(), hash_weights=hash_weights)
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            problems.append(f"{self.root / DB_NAME}: index unreadable ({exc})")
        return problems

    def failed_weights(self, digests: Iterable[str]) -> list[str]:
        """Those of `digests` whose weights file is missing or no longer hashes to its name."""
        bad = []
        for digest in dict.fromkeys(d for d in digests if d):
            try:
                path = self.weights_path(digest)
                ok = hashlib.sha256(path.read_bytes()).hexdigest() == digest
            except (OSError, WeightsIntegrityError):
                ok = False
            if not ok:
                bad.append(digest)
        return bad

    # -- meta --------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._check_writable()
        with self._db:
            self._db.execute("REPLACE INTO meta(key, value) VALUES(?, ?)", (key, json.dumps(value)))

    def seal(self, config: bytes, objectives: list[list[str]]) -> None:
        """Seal the run (config.yaml's bytes as run, the objectives): `verify` compares them."""
        self._check_writable()
        with self._db:
            write_seal(self._db, config, objectives)

    def seal_front(self, generation: int) -> None:
        """front.csv now shows the front of `generation`."""
        self._check_writable()
        with self._db:
            update_seal(self._db, front_generation=generation)

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return loads(row[0]) if row else default

    # -- individuals and generations ---------------------------------------------------------
    def commit_generation(
        self,
        generation: int,
        new: Sequence[Individual],
        population: Sequence[str],
        stats: Mapping[str, Any],
        engine_state: Mapping[str, Any] | None = None,
        batch: Batch | None = None,
    ) -> None:
        """Record a generation's new individuals and the surviving population atomically.

        One transaction. Array genomes' individuals go in as one batch of arrays (columns.py):
        `batch`, `new` as the arrays they were made from (the engine's), or built from `new`;
        others as rows, each table's in one `executemany`: a few SQLite row inserts per individual
        (benchmarks/scale_plan.py measures it with 10,000 genomes)."""
        self._check_writable()
        self.flush()
        now = time.time()
        arrays = (batch if batch is not None else batch_of(new)) if columnar(new, batch) else None  # columnar: one rule
        with self._db:
            if arrays is not None:
                insert_batch(self._db, arrays, now)
            else:
                self._insert_rows(new, now)
            for _ in new if failpoints.armed() else ():  # a kill inside the transaction, once per individual
                failpoints.hit("kill_mid_commit")
            self._db.execute(
                "INSERT INTO generations(generation, population, hv_val, n_front, evaluations, seconds,"
                " engine_state) VALUES(?,?,?,?,?,?,?)",
                (
                    generation,
                    json.dumps(list(population)),
                    stats.get("hv_val"),
                    stats.get("n_front"),
                    stats.get("evaluations"),
                    stats.get("seconds"),
                    json.dumps(engine_state or {}),
                ),
            )
            failpoints.hit("sqlite_full_commit")
            for g in {generation} | {ind.generation for ind in new}:  # rows as committed, read back
                self._db.execute(
                    "REPLACE INTO checksums(generation, digest) VALUES(?,?)", (g, generation_digest(self._db, g))
                )
            update_seal(self._db, generations=None)  # the count, in the generation's own transaction
        if self._committed is not None and not self._committed.add(new, batch if arrays is batch else None):
            self._committed = None  # no longer what the index holds: reads go to the index from now on

    def _insert_rows(self, new: Sequence[Individual], now: float) -> None:
        """One row per individual, its metrics and its parents: the layout of checkpoint genomes."""
        individuals, metrics, lineage = [], [], []
        for ind in new:
            x = None if ind.x is None else json.dumps(list(ind.x))
            individuals.append((ind.id, ind.generation, ind.seed, json.dumps(ind.operator), ind.weights_hash, x, now))
            metrics += [
                (ind.id, split, name, finite_or_none(v))
                for split, values in ind.metrics.items()
                for name, v in values.items()
            ]
            op_name = operator_label(ind.operator)
            lineage += [(ind.id, p, i, op_name) for i, p in enumerate(ind.parents)]
        self._db.executemany(
            "INSERT INTO individuals(id, generation, seed, operator, weights_hash, x, created) VALUES(?,?,?,?,?,?,?)",
            individuals,
        )
        self._db.executemany("INSERT INTO metrics(individual, split, name, value) VALUES(?,?,?,?)", metrics)
        self._db.executemany("INSERT INTO lineage(child, parent, position, operator) VALUES(?,?,?,?)", lineage)

    def log_event(
        self, kind: str, message: str, *, generation: int | None = None, individual: str | None = None, data: Any = None
    ) -> None:
        self._check_writable()
        with self._db:
            self._db.execute(
                "INSERT INTO events(time, generation, individual, kind, message, data) VALUES(?,?,?,?,?,?)",
                (time.time(), generation, individual, kind, message, json.dumps(data)),
            )
        _log_event(kind, message, generation, individual, data)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT time, generation, individual, kind, message, data FROM events"
        rows = self._db.execute(
            sql + (" WHERE kind=?" if kind else "") + " ORDER BY id", (kind,) if kind else ()
        ).fetchall()
        return [
            dict(
                time=r[0], generation=r[1], individual=r[2], kind=r[3], message=r[4], data=loads(r[5]) if r[5] else None
            )
            for r in rows
        ]

    def individuals(self, ids: Iterable[str] | None = None) -> list[Individual]:
        """Individuals (with all metrics): all in creation order, or those in `ids`, in that order.

        With `ids`, only those rows and batches are read (chunked ``IN`` queries on the primary
        keys; a batch decodes at once), so asking for a 100-member population costs milliseconds
        however large the run; an unknown id raises KeyError as a dict lookup would.
        """
        if self._committed is not None:
            return self._committed.individuals(ids)
        if ids is None:
            rows = self._db.execute(
                "SELECT id, generation, seed, operator, weights_hash, x FROM individuals ORDER BY id"
            ).fetchall()
            metrics = self._db.execute("SELECT individual, split, name, value FROM metrics")
            lineage = self._db.execute("SELECT child, parent FROM lineage ORDER BY child, position")
            with gc_paused():
                found = list(assemble(rows, metrics, lineage).values())
            if not self._columnar:
                return found
            return sorted(found + read_batches(self._db), key=_by_id)
        ids = list(ids)
        wanted = list(dict.fromkeys(ids))
        members = batch_members(self._db) if self._columnar else {}
        in_batches = {i for i in wanted if i in members}
        by_id = {ind.id: ind for ind in read_batches(self._db, {members[i] for i in in_batches}, in_batches)}
        by_id.update(self._rows_of([i for i in wanted if i not in members]))
        return [by_id[i] for i in ids]

    def _rows_of(self, wanted: list[str]) -> dict[str, Individual]:
        found: dict[str, Individual] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, generation, seed, operator, weights_hash, x FROM individuals WHERE id IN ({marks})", chunk
            ).fetchall()
            metrics = self._db.execute(
                f"SELECT individual, split, name, value FROM metrics WHERE individual IN ({marks})", chunk
            )
            lineage = self._db.execute(
                f"SELECT child, parent FROM lineage WHERE child IN ({marks}) ORDER BY child, position", chunk
            )
            found.update(assemble(rows, metrics, lineage))
        return found

    def generations(self) -> list[dict[str, Any]]:
        """Every committed generation's row (population ids, stats, engine state), oldest first."""
        rows = self._db.execute(GENERATIONS_SQL + " ORDER BY generation").fetchall()
        with gc_paused():
            return [generation_row(r) for r in rows]

    def generation_stats(self) -> list[dict[str, Any]]:
        """Every generation's stats (`STAT_KEYS`), oldest first: what history.csv and the report show,
        without decoding populations and engine states (`generations`: 15 ms for ZDT1's 200)."""
        rows = self._db.execute(STATS_SQL + " ORDER BY generation").fetchall()
        return [dict(zip(STAT_KEYS, r)) for r in rows]

    def last_generation(self) -> dict[str, Any] | None:
        """The newest generation's row: one row read, however many generations the run has."""
        row = self._db.execute(GENERATIONS_SQL + " ORDER BY generation DESC LIMIT 1").fetchone()
        return None if row is None else generation_row(row)


def _by_id(ind: Individual) -> str:
    return ind.id  # SQLite's `ORDER BY id` (BINARY: UTF-8 bytes) and str order agree


def _log_event(kind: str, message: str, generation: int | None, individual: str | None, data: Any) -> None:
    """Every event also goes to the `evofair.events` logger (so to run.log): errors with their traceback
    (run.log only: the CLI prints the one-line error itself), notes as INFO, the rest as warnings."""
    import logging

    where = "".join(
        [
            f" (generation {generation}" if generation is not None else "",
            f", {individual}" if individual and generation is not None else (f" ({individual}" if individual else ""),
            ")" if generation is not None or individual else "",
        ]
    )
    logger = logging.getLogger("evofair.events")
    if kind.endswith("_error"):
        tb = data.get("traceback") if isinstance(data, dict) else None
        logger.error("%s%s: %s%s", kind, where, message, f"\n{tb}" if tb else "", extra={"run_log_only": True})
    elif kind in ("note", "resume_recipe_changed"):
        logger.info("%s%s: %s", kind, where, message)
    else:
        logger.warning("%s%s: %s", kind, where, message)
