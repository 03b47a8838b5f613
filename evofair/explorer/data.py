"""A run directory as the explorer, the static report and `evofair export` see it: the run reader
(`evofair.analysis.run_reader`) plus the problem built for its hooks, live snapshots of the store,
and the files beside it (baselines.csv, intervals.json).

Why a layer of its own: the explorer must follow a run that is still being written, by another
process, without ever writing to it. Two facts of SQLite shape this module:

- a plain read-only connection (``mode=ro``) to a WAL database *creates* ``evofair.sqlite-wal``
  and ``-shm`` files when the writer has gone (a finished run), cannot remove them again, and
  updates ``-shm`` on every read; so when no ``-wal`` file exists, or an empty one (left by such
  a reader), we open with ``immutable=1``, which reads the main file and touches nothing. Only a
  non-empty ``-wal`` (a live writer's, or a crashed one's) holds data the main file lacks; then a
  normal read-only connection shares it, as the WAL protocol intends for readers;
- the writer appends every commit to ``-wal`` (and checkpoints into the main file), so the files'
  (mtime, size) change whenever the store does. `RunData.refresh()` polls only those `stat`s and
  re-reads the store (through a short-lived read-only `RunStore`) when they moved, so an idle
  explorer costs two `stat` calls per poll and never holds a connection a writer could trip over.

Everything the UI shows comes from an immutable `Snapshot` of the store, so concurrent callbacks
never see half a reload.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from evofair.analysis.run_reader import RunReader, check_run_dir, open_store, recipe_constraints
from evofair.core.constraints import Constraint  # noqa: F401 (one definition for recipe, engine, report, explorer)
from evofair.errors import UserError
from evofair.explorer.snapshot import Snapshot
from evofair.store.run_store import DB_NAME

__all__ = ["Constraint", "RunData", "Snapshot", "load_recipe_and_problem", "open_store"]


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def load_recipe_and_problem(root: Path, trust_code: bool = False) -> tuple[dict[str, Any], Any, str | None]:
    """(raw recipe dict, problem object or None, note why not). The problem is built, not set up:
    building is cheap (objectives, hooks); setup (data) happens only if a hook needs it. A problem
    named by `module:Class` is imported only with `trust_code` (the folder may come from anyone)."""
    from evofair.core.plugins import code_trust
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    path = root / "config.yaml"
    if not path.exists():
        return {}, None, f"{path}: missing (objective directions assumed 'min')"
    raw = read_recipe_file(path)
    try:
        from evofair.lifecycle.rebuild import build_problem

        with code_trust(trust_code, path):
            return raw, build_problem(Recipe.model_validate(raw)), None
    except UserError as exc:  # e.g. a problem object passed from Python that config.yaml cannot rebuild
        return raw, None, f"{exc} (shown from the run's store alone)"
    except Exception as exc:  # a problem defined in a script, an optional module missing...
        return (
            raw,
            None,
            f"problem {raw.get('problem', {}).get('name')!r} not available here ({exc.__class__.__name__}: {exc})",
        )


# -- the run ------------------------------------------------------------------------------
class RunData(RunReader):
    """A run directory as the explorer sees it: the reader, refreshed snapshots, and the files around the store."""

    def __init__(self, root: str | os.PathLike, *, problem=None, trust_code: bool = False):
        root = check_run_dir(root)
        note = None
        if problem is None:  # built, not set up: its objectives and hooks, no data yet
            _raw, problem, note = load_recipe_and_problem(root, trust_code)
        super().__init__(root, problem=problem)
        self.note: str | None = note  # why the run is shown without its problem or constraints
        try:
            self.constraints = recipe_constraints(self.recipe)
        except UserError as exc:  # a hand-edited config.yaml: show the run without them
            self.constraints = ()
            self.note = f"{exc} (constraints ignored)"
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._snapshot: Snapshot | None = None
        self._version = 0
        self._baselines: tuple[Any, list[dict[str, Any]]] = (None, [])
        self._intervals: tuple[Any, dict[str, Any] | None] = (None, None)
        self.refresh()

    # -- reloading -------------------------------------------------------------------------
    def _files_signature(self) -> tuple:
        db = self.root / DB_NAME
        return (_stat_key(db), _stat_key(Path(f"{db}-wal")))

    def refresh(self) -> Snapshot:
        """The current snapshot, re-read from the store if its files changed since the last read."""
        with self._lock:
            sig = self._files_signature()
            if self._snapshot is not None and sig == self._signature:
                return self._snapshot
            try:
                with self.store() as store:
                    gens = store.generations()  # before individuals: every id a population names exists
                    inds = store.individuals()
            except sqlite3.DatabaseError:
                if self._snapshot is not None:  # caught a writer mid-checkpoint: keep the last view
                    return self._snapshot
                raise
            self._version += 1
            self._signature = sig
            objectives = tuple((o.name, o.direction) for o in self.objectives)
            self._snapshot = Snapshot(
                gens,
                {i.id: i for i in inds},
                objectives,
                self.hv_ref,
                version=self._version,
                constraints=self.constraints,
            )
            return self._snapshot

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot if self._snapshot is not None else self.refresh()

    # -- facts around the store ---------------------------------------------------------------
    def in_progress(self, snap: Snapshot | None = None) -> bool:
        """True while the run has fewer generations than planned and no final report yet."""
        snap = snap or self.snapshot
        planned = self.planned_generations
        done = (snap.last_generation + 1) if snap.last_generation is not None else 0
        return not (self.root / "report.md").exists() and (planned is None or done < planned)

    def recipe_text(self) -> str:
        path = self.root / "config.yaml"
        return path.read_text() if path.exists() else "(no config.yaml)"

    def baselines(self) -> list[dict[str, Any]]:
        """Rows of baselines.csv (`method,id,` + `{metric}_{split}` columns), re-read when it changes."""
        path = self.root / "baselines.csv"
        key = _stat_key(path)
        if key == self._baselines[0]:
            return self._baselines[1]
        rows: list[dict[str, Any]] = []
        if key is not None:
            with open(path, newline="") as fh:
                for row in csv.DictReader(fh):
                    metrics: dict[str, dict[str, float]] = {}
                    for col, text in row.items():
                        if col in ("method", "id") or col is None or "_" not in col:
                            continue
                        name, split = col.rsplit("_", 1)
                        try:
                            metrics.setdefault(split, {})[name] = float(text)
                        except (TypeError, ValueError):
                            metrics.setdefault(split, {})[name] = float("nan")
                    rows.append({"method": row.get("method", "?"), "id": row.get("id", "?"), "metrics": metrics})
        self._baselines = (key, rows)
        return rows

    def intervals(self) -> dict[str, Any] | None:
        """intervals.json (bootstrap intervals on test, evofair/analysis/uncertainty.py), re-read when it changes;
        None for problems without per-example outputs."""
        from evofair.analysis.uncertainty import INTERVALS_FILE, read_intervals

        key = _stat_key(self.root / INTERVALS_FILE)
        if key != self._intervals[0]:
            self._intervals = (key, read_intervals(self.root) if key is not None else None)
        return self._intervals[1]

    def intervals_of(self, iid: str) -> dict[str, Any] | None:
        """{split, level, n_boot, method, metrics: {metric: [lo, hi]}} of a model or `baseline:<id>`."""
        doc = self.intervals()
        if doc is None:
            return None
        table = doc.get("baselines", {}) if iid.startswith("baseline:") else doc["models"]
        mine = table.get(iid.split(":", 1)[1] if iid.startswith("baseline:") else iid)
        if mine is None:
            return None
        return {k: doc.get(k) for k in ("split", "level", "n_boot", "method")} | {"metrics": mine}
