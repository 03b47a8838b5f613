"""Read-only access to a run directory for the explorer, the static report and `evofair export`.

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

import contextlib
import csv
import json
import math
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import yaml

from evofair.core import constraints as cons
from evofair.core.constraints import Constraint  # one definition for recipe, engine, report, explorer (re-exported)
from evofair.errors import UserError
from evofair.analysis.indicators import hypervolume
from evofair.core.individual import Individual
from evofair.core.problem import SPLITS, ModelCards
from evofair.store.run_store import DB_NAME, RunStore

OPERATOR_STEPS = ("init", "crossover", "mutation", "refine")


# -- opening the store without writing to it --------------------------------------------------
@contextlib.contextmanager
def open_store(root: str | os.PathLike) -> Iterator[RunStore]:
    """A read-only RunStore on `root` that creates no file in the run directory (see module doc)."""
    root = Path(root)
    store = RunStore(root, readonly=True)  # immutable (creates no file) when no writer is alive
    try:
        yield store
    finally:
        store.close()


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


# -- the problem (objective directions, optional hooks) ----------------------------------------
def load_recipe_and_problem(root: Path) -> tuple[dict[str, Any], Any, str | None]:
    """(raw recipe dict, problem object or None, note why not). The problem is built, not set up:
    building is cheap (objectives, hooks); setup (data) happens only if a hook needs it."""
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    path = root / "config.yaml"
    if not path.exists():
        return {}, None, f"{path}: missing (objective directions assumed 'min')"
    raw = read_recipe_file(path)
    try:
        from evofair.lifecycle.api import build_problem

        return raw, build_problem(Recipe.model_validate(raw)), None
    except UserError as exc:  # e.g. a problem object passed from Python that config.yaml cannot rebuild
        return raw, None, f"{exc} (shown from the run's store alone)"
    except Exception as exc:  # a problem defined in a script, an optional module missing...
        return raw, None, f"problem {raw.get('problem', {}).get('name')!r} not available here ({exc.__class__.__name__}: {exc})"


# -- formatting used by the UI, the report and export -----------------------------------------
def format_args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())


def operator_steps(operator: Mapping[str, Any]) -> list[str]:
    """One line per step of how a model was made: 'crossover ties(density=0.5) seed 123'."""
    out = []
    for step in OPERATOR_STEPS:
        rec = operator.get(step)
        if rec:
            out.append(f"{step} {rec.get('name', '?')}({format_args(rec.get('args', {}))}) seed {rec.get('seed')}")
    return out


def operator_label(operator: Mapping[str, Any]) -> str:
    return "+".join(operator[s]["name"] for s in OPERATOR_STEPS if operator.get(s)) or "copy"


# -- the snapshot ---------------------------------------------------------------------------
@dataclass
class Snapshot:
    """Everything read from the store at one moment. Treat as immutable."""

    generations: list[dict[str, Any]]
    individuals: dict[str, Individual]
    objectives: tuple[tuple[str, str], ...]  # (name, "min"|"max")
    hv_ref: tuple[float, ...] | None
    version: int = 0
    #: the run's own `constraints:` (its recipe): selection was feasibility-first on validation
    constraints: tuple[Constraint, ...] = ()
    _fronts: dict[int, list[Individual]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- basic facts ---------------------------------------------------------------------
    @property
    def objective_names(self) -> list[str]:
        return [n for n, _ in self.objectives]

    @property
    def last_generation(self) -> int | None:
        return self.generations[-1]["generation"] if self.generations else None

    @cached_property
    def metric_names(self) -> list[str]:
        """Objectives first, then every other metric name stored for any individual or split."""
        names = {n for ind in self.individuals.values() for per in ind.metrics.values() for n in per}
        return self.objective_names + sorted(names - set(self.objective_names))

    @cached_property
    def splits(self) -> list[str]:
        found = {s for ind in self.individuals.values() for s in ind.metrics}
        return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))

    def direction(self, metric: str) -> str:
        return dict(self.objectives).get(metric, "min")

    def get(self, iid: str) -> Individual:
        try:
            return self.individuals[iid]
        except KeyError:
            raise UserError(f"{iid}: no such model in this run (ids look like g0003i0006; see front.csv)") from None

    @staticmethod
    def value(ind: Individual, metric: str, split: str) -> float:
        v = ind.metrics.get(split, {}).get(metric)
        return float("nan") if v is None else float(v)

    def values(self, inds: Sequence[Individual], metric: str, split: str) -> np.ndarray:
        return np.array([self.value(i, metric, split) for i in inds], dtype=float)

    def minimised(self, inds: Sequence[Individual], split: str) -> np.ndarray:
        if not inds:
            return np.zeros((0, len(self.objectives)))
        cols = [self.values(inds, n, split) * (1.0 if d == "min" else -1.0) for n, d in self.objectives]
        return np.stack(cols, axis=1)

    # -- populations and fronts ----------------------------------------------------------
    def _generation_row(self, generation: int | None) -> dict[str, Any] | None:
        if not self.generations:
            return None
        if generation is None:
            return self.generations[-1]
        for row in self.generations:
            if row["generation"] == generation:
                return row
        raise UserError(f"generation {generation}: not in this run (0..{self.last_generation})")

    def population(self, generation: int | None = None) -> list[Individual]:
        row = self._generation_row(generation)
        return [] if row is None else [self.individuals[i] for i in row["population"] if i in self.individuals]

    def front(self, generation: int | None = None) -> list[Individual]:
        """Non-dominated members (validation objectives, as selection used) of a generation's
        population, feasibility-first when the run has constraints; at the last generation this
        is `evofair.analysis.report.final_front`."""
        row = self._generation_row(generation)
        if row is None:
            return []
        g = row["generation"]
        with self._lock:
            if g not in self._fronts:
                pop = self.population(g)
                cv = cons.of_individuals(self.constraints, pop, "val")
                self._fronts[g] = [pop[i] for i in cons.feasible_first(self.minimised(pop, "val"), cv)]
            return list(self._fronts[g])

    def violation(self, inds: Sequence[Individual], split: str = "val") -> np.ndarray:
        """Total constraint violation CV (0: feasible) of each model on `split`; zeros without constraints."""
        cv = cons.of_individuals(self.constraints, inds, split)
        return np.zeros(len(inds)) if cv is None else cv

    def feasible(self, inds: Sequence[Individual], split: str = "val") -> np.ndarray:
        """Does each model satisfy every recipe constraint on `split`? (all True without constraints)"""
        return self.violation(inds, split) <= 0

    def constraint_rows(self, ind: Individual) -> list[dict[str, Any]]:
        """Each recipe constraint with this model's value on every split and whether it holds."""
        rows = []
        for c in self.constraints:
            row: dict[str, Any] = {"constraint": c.text, "metric": c.metric, "op": c.op, "bound": c.bound}
            for s in self.splits or ["val"]:
                v = self.value(ind, c.metric, s)
                row[s] = _json_float(v)
                row[f"satisfied_{s}"] = bool(c.holds(v))
            rows.append(row)
        return rows

    def evaluated(self, up_to: int | None = None) -> list[Individual]:
        """Every individual evaluated up to (and including) generation `up_to`."""
        if up_to is None:
            return list(self.individuals.values())
        return [i for i in self.individuals.values() if i.generation <= up_to]

    def hv_history(self) -> list[dict[str, Any]]:
        """Per generation: HV of the population's front on validation (the engine's number) and
        of the same models on test (computed here), in minimised space against the run's ref."""
        out = []
        for row in self.generations:
            hv_test = None
            if self.hv_ref is not None:  # as the engine's hv_val: the front's feasible members only
                front = self.front(row["generation"])
                scored = [i for i, ok in zip(front, self.feasible(front, "val")) if ok]
                hv_test = hypervolume(self.minimised(scored, "test"), self.hv_ref)
            out.append({"generation": row["generation"], "hv_val": row["hv_val"], "hv_test": hv_test,
                        "n_front": row["n_front"], "evaluations": row["evaluations"], "seconds": row["seconds"]})
        return out

    # -- constraints ---------------------------------------------------------------------
    def satisfying(self, inds: Sequence[Individual], constraints: Sequence[Constraint], split: str,
                   rank_by: str | None = None) -> list[Individual]:
        """The models meeting every constraint on `split`, best first by `rank_by` (its own
        direction; ties broken by the other objectives, then id, so the order is stable)."""
        keep = [i for i in inds if all(c.holds(self.value(i, c.metric, split)) for c in constraints)]
        if rank_by is None:
            constrained = {c.metric for c in constraints}
            rank_by = next((n for n in self.objective_names if n not in constrained), self.objective_names[0])
        keys = [rank_by] + [n for n in self.objective_names if n != rank_by]

        def key(ind):
            vals = []
            for name in keys:
                v = self.value(ind, name, split) * (1.0 if self.direction(name) == "min" else -1.0)
                vals.append(v if math.isfinite(v) else math.inf)
            return (*vals, ind.id)

        return sorted(keep, key=key)

    # -- lineage -------------------------------------------------------------------------
    def lineage(self, iid: str, max_nodes: int | None = None) -> dict[str, Any]:
        """The ancestry of `iid` back to the roots (breadth first; at most `max_nodes` nodes).

        nodes: {id, generation, made_by, steps}; edges: {parent, child, position, label} where the
        label is how the child was made from its parents (operator, its arguments and seed).
        """
        self.get(iid)
        seen, queue, order = {iid}, [iid], []
        truncated = False
        while queue:
            cur = queue.pop(0)
            order.append(cur)
            for parent in self.individuals[cur].parents if cur in self.individuals else ():
                if parent not in seen:
                    if max_nodes is not None and len(seen) >= max_nodes:
                        truncated = True
                        continue
                    seen.add(parent)
                    queue.append(parent)
        nodes, edges = [], []
        for nid in order:
            ind = self.individuals.get(nid)
            if ind is None:  # a parent outside the store (should not happen; verify reports it)
                nodes.append({"id": nid, "generation": None, "made_by": "?", "steps": []})
                continue
            nodes.append({"id": nid, "generation": ind.generation, "made_by": operator_label(ind.operator),
                          "steps": operator_steps(ind.operator)})
            label = "; ".join(s for s in operator_steps(ind.operator) if not s.startswith("init"))
            for pos, parent in enumerate(ind.parents):
                if parent in seen:
                    edges.append({"parent": parent, "child": nid, "position": pos, "label": label})
        roots = [n["id"] for n in nodes if n["id"] in self.individuals and not self.individuals[n["id"]].parents]
        return {"nodes": nodes, "edges": edges, "roots": roots, "truncated": truncated}


# -- the run ------------------------------------------------------------------------------
class RunData:
    """A run directory as the explorer sees it: refreshed snapshots plus the files around the store."""

    def __init__(self, root: str | os.PathLike, *, problem=None):
        self.root = Path(root)
        if not (self.root / DB_NAME).exists():
            raise UserError(f"{self.root}: not an evofair run directory (no {DB_NAME})")
        raw, built, note = load_recipe_and_problem(self.root) if problem is None else (
            self._raw_recipe(), problem, None)
        self.recipe: dict[str, Any] = raw
        self.problem = built
        self.note = note
        try:
            self.constraints = cons.parse_all(raw.get("constraints") or [], "config.yaml: constraints")
        except UserError as exc:  # a hand-edited config.yaml: show the run without them
            self.constraints = ()
            self.note = f"{exc} (constraints ignored)"
        self._objectives = self._find_objectives()
        ref = raw.get("hv_ref") or (getattr(built, "default_hv_ref", None) if built is not None else None)
        self.hv_ref = tuple(float(v) for v in ref) if ref else None
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._snapshot: Snapshot | None = None
        self._version = 0
        self._baselines: tuple[Any, list[dict[str, Any]]] = (None, [])
        self._intervals: tuple[Any, dict[str, Any] | None] = (None, None)
        self.refresh()

    def _raw_recipe(self) -> dict[str, Any]:
        path = self.root / "config.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else {}

    def _find_objectives(self) -> tuple[tuple[str, str], ...]:
        if self.problem is not None:
            return tuple((o.name, o.direction) for o in self.problem.objectives)
        # Without the problem class: the objectives the run recorded in its store, else the
        # objective columns front.csv was written with, as minimised.
        from evofair.analysis.result import OBJECTIVES_META

        with open_store(self.root) as store:
            stored = store.get_meta(OBJECTIVES_META)
        if stored:
            return tuple((str(n), str(d)) for n, d in stored)
        try:
            with open(self.root / "front.csv", newline="") as fh:
                header = next(csv.reader(fh))
            names = list(dict.fromkeys(h.rsplit("_", 1)[0] for h in header[2:]
                                       if h not in ("feasible", "cv_val", "cv_test")
                                       and not h.endswith(("_test_lo", "_test_hi"))))
            if names:
                return tuple((n, "min") for n in names)
        except (FileNotFoundError, StopIteration):
            pass
        with open_store(self.root) as store:
            inds = store.individuals()
        names = sorted({n for i in inds[:1] for n in i.metrics.get("val", {})})
        return tuple((n, "min") for n in names)

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
                with open_store(self.root) as store:
                    gens = store.generations()  # before individuals: every id a population names exists
                    inds = store.individuals()
            except sqlite3.DatabaseError:
                if self._snapshot is not None:  # caught a writer mid-checkpoint: keep the last view
                    return self._snapshot
                raise
            self._version += 1
            self._signature = sig
            self._snapshot = Snapshot(gens, {i.id: i for i in inds}, self._objectives, self.hv_ref,
                                      version=self._version, constraints=self.constraints)
            return self._snapshot

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot if self._snapshot is not None else self.refresh()

    # -- facts around the store ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.recipe.get("name") or self.root.name)

    @property
    def planned_generations(self) -> int | None:
        algo = self.recipe.get("algorithm") or {}
        return algo.get("generations")

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

    # -- one model ---------------------------------------------------------------------------
    def problem_card(self, ind: Individual) -> tuple[dict[str, Any] | None, str | None]:
        """The problem's own `model_card(individual, store)` (per-group confusion numbers...).

        Hook contract: returns {title: rows} where rows is a list of flat dicts (a table) or a
        string (markdown). The problem is built but not set up; the hook calls
        `self.ensure_setup()` itself if it needs data. Errors are reported, never raised, so a
        broken hook cannot take the explorer down.
        """
        hook = self.problem.model_card if isinstance(self.problem, ModelCards) else None
        if hook is None:
            return None, None
        try:
            with open_store(self.root) as store:
                return dict(hook(ind, store) or {}), None
        except Exception as exc:  # noqa: BLE001 - shown to the user instead
            return None, f"{type(self.problem).__name__}.model_card failed: {exc.__class__.__name__}: {exc}"

    def model_card(self, iid: str, *, with_problem_card: bool = True, max_lineage: int | None = 80) -> dict[str, Any]:
        """Everything known about one model, as plain JSON-able data (UI and export share it)."""
        snap = self.snapshot
        ind = snap.get(iid)
        card: dict[str, Any] = {
            "id": ind.id, "generation": ind.generation, "seed": ind.seed, "parents": list(ind.parents),
            "made_by": operator_label(ind.operator), "steps": operator_steps(ind.operator),
            "operator": json.loads(json.dumps(ind.operator, default=str)),
            "weights_sha256": ind.weights_hash, "x": list(ind.x) if ind.x is not None else None,
            "objectives": [{"name": n, "direction": d} for n, d in snap.objectives],
            "metrics": {s: {k: _json_float(v) for k, v in per.items()} for s, per in ind.metrics.items()},
            "on_final_front": ind.id in {i.id for i in snap.front()},
            "constraints": snap.constraint_rows(ind),
            "feasible": bool(snap.feasible([ind], "val")[0]) if snap.constraints else None,
            "lineage": snap.lineage(iid, max_nodes=max_lineage),
            "intervals": self.intervals_of(iid),
        }
        if with_problem_card:
            card["problem_card"], card["problem_card_error"] = self.problem_card(ind)
        return card


def _json_float(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None
