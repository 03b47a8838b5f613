"""A run users can script against: `evofair.load(DIR)`, and what `evofair.run(...)` returns.

A run is a directory; this is its Python face, read back by the reader the report and the explorer
use too (`evofair.analysis.run_reader`: the store opened read-only, so looking at a run never
writes to it and a colleague's finished run stays byte-for-byte as received):

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

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evofair.analysis.run_check import population_problems
from evofair.analysis.run_reader import OBJECTIVES_META, RunReader  # noqa: F401 (OBJECTIVES_META: API)
from evofair.analysis.tables import csv_text, individual_rows
from evofair.core.individual import Individual, Weights
from evofair.errors import UserError


class Result(RunReader):
    """A run directory, read-only. `problem=`: the object the run used (needed by `model` when the
    run's config.yaml cannot rebuild it, e.g. a problem over an in-memory DataFrame).
    `trust_code=True`: rebuild a problem that config.yaml names by `module:Class` (importing that
    module runs code from wherever the folder came from, so it is refused by default; installed
    problems need no trust)."""

    def __init__(self, out_dir: str | Path, *, problem=None, trust_code: bool = False):
        self.trust_code = trust_code  # before the reader, which may rebuild the problem for old runs
        with damage_as_user_error(out_dir):
            super().__init__(out_dir, problem=problem)
            self.out_dir = self.root
            # read now, so that a run whose objectives cannot be known fails at load, not later
            self.note: str | None = self.objectives_note  # what could not be read as recorded

    def __repr__(self) -> str:
        return (
            f"Result({str(self.out_dir)!r}: {len(self.ids)} models on the front, objectives "
            f"{', '.join(f'{o.name} ({o.direction})' for o in self.objectives)})"
        )

    @property
    def out(self) -> str:
        return str(self.out_dir)

    # -- the front -----------------------------------------------------------------------------
    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The front (validation non-dominated members of the final population): front.csv, or the
        same table computed from the store when the run has not written it yet."""
        path = self.out_dir / "front.csv"
        with damage_as_user_error(self.out_dir):
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
        return self.read_generations()

    @cached_property
    def front(self) -> list[Individual]:
        """The front's individuals (ids, metrics on every split, lineage), computed from the store
        (not read from front.csv, a table written for people: `evofair verify` compares the two),
        in front.csv's order. A store that cannot give it (a dropped table, deleted rows, a damaged
        file) raises a one-line `UserError`."""
        with damage_as_user_error(self.out_dir):
            with self.store() as store:
                problems = population_problems(store)
            if problems:
                raise UserError(f"{self.out_dir}: run database damaged ({problems[0]})")
            return self.read_front()

    # -- one model -------------------------------------------------------------------------------
    def individuals(self, ids: list[str]) -> list[Individual]:
        with self.store() as store:
            try:
                return store.individuals([str(i) for i in ids])
            except KeyError as exc:
                raise UserError(
                    f"{exc.args[0]}: no such model in {self.out_dir} (ids look like g0003i0006; "
                    "see result.ids or front.csv)"
                ) from None

    def individual(self, iid: str) -> Individual:
        return self.individuals([iid])[0]

    def weights(self, iid: str) -> Weights:
        """The model's genome from weights/<sha256>.safetensors; a file that does not hash to its
        name raises `WeightsIntegrityError` (a `UserError`, one line)."""
        ind = self.individual(iid)
        if ind.weights_hash is None:
            raise UserError(f"{iid}: has no weights (a vector problem's genome is x: use result.x({iid!r}))")
        with self.store() as store:
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
            raise UserError(
                f"model({iid!r}): problem {type(problem).__name__} cannot build a model (no build_model; "
                f"see evofair.core.problem.Trainable); result.weights({iid!r}) gives its weights"
            )
        weights = self.weights(iid)
        problem.ensure_setup()
        module = problem.build_model(weights)
        return module.eval() if hasattr(module, "eval") else module

    def split(self, name: str) -> np.ndarray:
        """Row positions (0-based, in the data file as read) of split `name` ("train", "val",
        "test"), from the run's splits.json (evofair.analysis.splits_file)."""
        from evofair.analysis.splits_file import SPLITS_META, read_splits

        with self.store() as store:
            recorded = store.get_meta(SPLITS_META)
        rows = read_splits(self.out_dir, recorded)["rows"]
        if name not in rows:
            raise UserError(f"split({name!r}): no such split in {self.out_dir} (splits: {', '.join(rows)})")
        return np.asarray(rows[name], dtype=np.int64)

    @property
    def problem(self):
        """The run's problem: the object given, or rebuilt (not set up) from config.yaml."""
        if self._problem is None:
            from evofair.lifecycle.rebuild import build_problem
            from evofair.lifecycle.recipe import Recipe

            if not self.recipe:
                raise UserError(
                    f"{self.out_dir}: no config.yaml, so the problem cannot be rebuilt; "
                    "pass it: evofair.load(DIR, problem=...)"
                )
            recorded = self.recipe.get("problem")
            cfg: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
            if cfg.get("not_rebuildable"):
                raise UserError(
                    f"{self.out_dir}: its problem {cfg.get('name')} cannot be rebuilt from config.yaml "
                    f"({cfg['not_rebuildable']}); pass it: evofair.load(DIR, problem=<the same object>)"
                )
            try:
                recipe = Recipe.model_validate(self.recipe)
            except Exception as exc:  # pydantic's ValidationError: an edited config.yaml
                raise UserError(
                    f"{self.out_dir / 'config.yaml'}: not a valid resolved recipe "
                    f"({exc.__class__.__name__}); was it edited?"
                ) from None
            from evofair.core.plugins import code_trust

            with code_trust(self.trust_code, self.out_dir / "config.yaml"):
                self._problem = build_problem(recipe)
        return self._problem

    # -- internals -------------------------------------------------------------------------------
    def rebuilt_problem(self):
        """Asked by `RunReader.objectives` only for runs whose store did not record them."""
        return self.problem

    def _table_from_store(self, which: str) -> str:
        """front.csv / archive.csv as evofair.analysis.tables writes them, computed from the store."""
        inds = self.read_front() if which == "front" else self.read_archive()
        return csv_text(*individual_rows(self, inds, self.constraints))


@contextlib.contextmanager
def damage_as_user_error(root: str | Path) -> Iterator[None]:
    """What a damaged run directory raises while being read (SQLite's errors, bytes that are not
    text, a table or row that is gone) as one `UserError` line, as the CLI reports it."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{root}: run directory damaged (a file that should be text is not UTF-8: {exc.reason})"
        ) from None
    except (sqlite3.DatabaseError, KeyError) as exc:
        why = f"missing {exc.args[0] if exc.args else ''!r}" if isinstance(exc, KeyError) else str(exc)
        raise UserError(f"{root}: run database damaged ({' '.join(why.split())[:200]})") from None


def load(out_dir: str | Path, *, problem=None, trust_code: bool = False) -> Result:
    """Open a run directory (finished, interrupted or still running) as a `Result`, read-only; a
    staged run's folder (lifecycle/stages.py) opens its final stage. `result.problem` imports a
    `module:Class` problem only with `trust_code=True`."""
    from evofair.lifecycle.stages import run_to_read

    return Result(run_to_read(out_dir), problem=problem, trust_code=trust_code)
