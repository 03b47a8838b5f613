"""A run users can script against: `evofair.load(DIR)`, and what `evofair.run(...)` returns.

A run is a directory; this is its Python face, read back from the directory as the report and the
explorer are (the store opened read-only: looking at a run never writes to it, so a colleague's
finished run stays byte-for-byte as received):

    result = evofair.load("out/zdt1-20250101-120000")
    result.F            # (n_front, n_objectives), minimised: `min` objectives as measured, `max` negated
    result.ids          # the front's ids, in the same order as F's rows and `metrics`
    result.metrics      # the front as a DataFrame (= front.csv)
    result.weights(result.ids[0])   # safetensors from the store, checked against their sha256
    result.model(result.ids[0])     # a torch module, for problems that can build one (`Trainable`)
    result.history      # hv_val, n_front, evaluations, seconds per generation (= history.csv)
    result.recipe       # the resolved recipe that reproduces the run (config.yaml), as a dict

F follows pymoo's convention (every column minimised) so it can go straight into pymoo's
indicators and decision-making tools; `metrics` keeps the values as measured.
"""

from __future__ import annotations

import csv
import io
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evofair.core import constraints as cons
from evofair.errors import UserError
from evofair.core.individual import Individual, Weights
from evofair.core.problem import Objective, Problem
from evofair.store.run_store import DB_NAME, RunStore

OBJECTIVES_META = "objectives"  # store meta key: [[name, direction], ...], written when a run starts


class _Objectives:
    """The part of a problem that fronts need (names, directions), for runs whose problem class is
    not available: enough for `evofair.analysis.report.final_front` and its CSV rows."""

    objective_names = Problem.objective_names
    minimised = Problem.minimised

    def __init__(self, objectives: tuple[Objective, ...]):
        self.objectives = objectives


class Result:
    """A run directory, read-only. `problem=`: the object the run used (needed by `model` when the
    run's config.yaml cannot rebuild it, e.g. a problem over an in-memory DataFrame)."""

    def __init__(self, out_dir: str | Path, *, problem=None):
        self.out_dir = Path(out_dir)
        if not (self.out_dir / DB_NAME).is_file():
            raise UserError(f"{self.out_dir}: not an evofair run directory (no {DB_NAME})")
        self._problem = problem
        self.note: str | None = None  # what could not be read as recorded
        config = self.out_dir / "config.yaml"
        self.recipe_yaml: str = config.read_text() if config.is_file() else ""
        recipe = yaml.safe_load(self.recipe_yaml) if self.recipe_yaml else {}
        self.recipe: dict[str, Any] = recipe if isinstance(recipe, dict) else {}
        self.objectives: tuple[Objective, ...] = self._find_objectives()

    def __repr__(self) -> str:
        return f"Result({str(self.out_dir)!r}: {len(self.ids)} models on the front, objectives " \
               f"{', '.join(f'{o.name} ({o.direction})' for o in self.objectives)})"

    @property
    def out(self) -> str:
        return str(self.out_dir)

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    # -- the front -----------------------------------------------------------------------------
    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The front (validation non-dominated members of the final population): front.csv, or the
        same table computed from the store when the run has not written it yet."""
        path = self.out_dir / "front.csv"
        text = path.read_text() if path.is_file() else self._table_from_store("front")
        return pd.read_csv(io.StringIO(text), dtype={"id": str})

    @property
    def ids(self) -> np.ndarray:
        return self.metrics["id"].to_numpy(dtype=object)

    @property
    def F(self) -> np.ndarray:
        """(n_front, n_objectives) validation objectives, every column minimised (max ones negated)."""
        cols = [self.metrics[f"{o.name}_val"].to_numpy(dtype=float) * o.sign for o in self.objectives]
        return np.stack(cols, axis=1) if cols else np.zeros((len(self.metrics), 0))

    @cached_property
    def archive(self) -> pd.DataFrame:
        """Every evaluated model no other evaluated model dominates (= archive.csv)."""
        path = self.out_dir / "archive.csv"
        text = path.read_text() if path.is_file() else self._table_from_store("archive")
        return pd.read_csv(io.StringIO(text), dtype={"id": str})

    @cached_property
    def history(self) -> pd.DataFrame:
        """generation, hv_val, n_front, evaluations, seconds (= history.csv)."""
        cols = ["generation", "hv_val", "n_front", "evaluations", "seconds"]
        path = self.out_dir / "history.csv"
        if path.is_file():
            return pd.read_csv(path)
        return pd.DataFrame([{c: g[c] for c in cols} for g in self.generations], columns=cols)

    @cached_property
    def generations(self) -> list[dict[str, Any]]:
        """The store's generation rows (population ids, stats, backend state), oldest first."""
        with self._store() as store:
            return store.generations()

    @cached_property
    def front(self) -> list[Individual]:
        """The front's individuals (ids, metrics on every split, lineage), in `ids` order."""
        return self.individuals(list(self.ids))

    # -- one model -------------------------------------------------------------------------------
    def individuals(self, ids: list[str]) -> list[Individual]:
        with self._store() as store:
            try:
                return store.individuals([str(i) for i in ids])
            except KeyError as exc:
                raise UserError(f"{exc.args[0]}: no such model in {self.out_dir} (ids look like g0003i0006; "
                                "see result.ids or front.csv)") from None

    def individual(self, iid: str) -> Individual:
        return self.individuals([iid])[0]

    def weights(self, iid: str) -> Weights:
        """The model's genome from weights/<sha256>.safetensors; a file that does not hash to its
        name raises `WeightsIntegrityError` (a `UserError`, one line)."""
        ind = self.individual(iid)
        if ind.weights_hash is None:
            raise UserError(f"{iid}: has no weights (a vector problem's genome is x: use result.x({iid!r}))")
        with self._store() as store:
            return store.get_weights(ind.weights_hash)

    def x(self, iid: str) -> np.ndarray:
        """A vector problem's genome."""
        ind = self.individual(iid)
        if ind.x is None:
            raise UserError(f"{iid}: has no x (a weights genome: use result.weights({iid!r}))")
        return np.asarray(ind.x, dtype=float)

    def model(self, iid: str):
        """A torch module holding the model's weights (eval mode), built by the problem's
        `build_model` (the `Trainable` protocol); the problem is set up first (its data, its base model)."""
        problem = self.problem
        if not callable(getattr(problem, "build_model", None)):
            raise UserError(f"model({iid!r}): problem {type(problem).__name__} cannot build a model (no build_model; "
                            f"see evofair.core.problem.Trainable); result.weights({iid!r}) gives its weights")
        weights = self.weights(iid)
        problem.ensure_setup()
        module = problem.build_model(weights)
        return module.eval() if hasattr(module, "eval") else module

    @property
    def problem(self):
        """The run's problem: the object given, or rebuilt (not set up) from config.yaml."""
        if self._problem is None:
            from evofair.lifecycle.rebuild import build_problem
            from evofair.lifecycle.recipe import Recipe

            if not self.recipe:
                raise UserError(f"{self.out_dir}: no config.yaml, so the problem cannot be rebuilt; "
                                "pass it: evofair.load(DIR, problem=...)")
            cfg = self.recipe.get("problem") if isinstance(self.recipe.get("problem"), dict) else {}
            if cfg.get("not_rebuildable"):
                raise UserError(f"{self.out_dir}: its problem {cfg.get('name')} cannot be rebuilt from config.yaml "
                                f"({cfg['not_rebuildable']}); pass it: evofair.load(DIR, problem=<the same object>)")
            try:
                recipe = Recipe.model_validate(self.recipe)
            except Exception as exc:  # pydantic's ValidationError: an edited config.yaml
                raise UserError(f"{self.out_dir / 'config.yaml'}: not a valid resolved recipe "
                                f"({exc.__class__.__name__}); was it edited?") from None
            self._problem = build_problem(recipe)
        return self._problem

    # -- internals -------------------------------------------------------------------------------
    def _store(self) -> RunStore:
        return _ReadOnly(self.out_dir)

    def _find_objectives(self) -> tuple[Objective, ...]:
        """From the problem given, else the store's record of the run's objectives, else the
        problem rebuilt from config.yaml (runs from before that record existed)."""
        if self._problem is not None:
            return tuple(self._problem.objectives)
        with self._store() as store:
            stored = store.get_meta(OBJECTIVES_META)
        if stored:
            return tuple(Objective(str(n), str(d)) for n, d in stored)
        try:
            return tuple(self.problem.objectives)
        except UserError:
            names = _front_csv_objectives(self.out_dir / "front.csv")
            if not names:
                raise
            self.note = "objective directions unknown (no record in the store, problem not rebuilt): assumed min"
            return tuple(Objective(n) for n in names)

    def _table_from_store(self, which: str) -> str:
        """front.csv / archive.csv as evofair.analysis.report writes them, computed from the store."""
        from evofair.analysis.report import archive, individual_rows, sorted_front

        stand_in = _Objectives(self.objectives)
        constraints = cons.parse_all(self.recipe.get("constraints") or [], "config.yaml: constraints")
        with self._store() as store:
            if which == "front":
                inds = sorted_front(store, stand_in, constraints)
            else:
                inds = archive(store, stand_in, None, constraints)
        header, rows = individual_rows(stand_in, inds, constraints)
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        return buf.getvalue()


def _front_csv_objectives(path: Path) -> list[str]:
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh))
    except (OSError, StopIteration):
        return []
    return list(dict.fromkeys(h[:-4] for h in header[2:] if h.endswith("_val") and h != "cv_val"))


class _ReadOnly:
    """`with`: a read-only RunStore that creates no file in the run directory (immutable when no
    writer is alive; see evofair/explorer/data.py)."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> RunStore:
        self.store = RunStore(self.root, readonly=True)
        return self.store

    def __exit__(self, *exc) -> None:
        self.store.close()


def load(out_dir: str | Path, *, problem=None) -> Result:
    """Open a run directory (finished, interrupted or still running) as a `Result`, read-only."""
    return Result(out_dir, problem=problem)
