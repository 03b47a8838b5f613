"""One reader of a run directory: what `evofair.load` (`Result`), the report, the explorer and
export read back from a run.

Why one: a run's objectives, its constraints and its front must mean the same thing everywhere a
user sees them. If the report selected the front one way and the explorer another, a model could
be "on the front" in front.csv and not on the page. So this module holds the single definition of

- the objectives and their directions (the problem's, else the store's record of them, else the
  columns front.csv was written with, assumed minimised);
- the recipe's constraints (config.yaml's `constraints:`);
- a front: the non-dominated members on validation, feasibility-first when the run has
  constraints (pymoo's optimum, as selection ran), of the final population (`final_front`) or of
  every evaluated model (`archive`);
- the store opened read-only, creating no file in the run directory (`open_store`).

Everything here only reads: a run directory stays byte- and mtime-identical while it is read.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from evofair.core import constraints as cons
from evofair.core.individual import Individual
from evofair.core.problem import Objective
from evofair.errors import UserError
from evofair.store.run_store import DB_NAME, RunStore
from evofair.store.seal import OBJECTIVES_META  # store meta key: [[name, direction], ...], written when a run starts

CONFIG_NAME = "config.yaml"
HV_REF_META = "hv_ref"  # store meta key: the reference point a problem derived from its data (no recipe hv_ref)
ASSUMED_MIN = "objective directions unknown (no record in the store, problem not rebuilt): assumed min"


@contextlib.contextmanager
def open_store(root: str | os.PathLike) -> Iterator[RunStore]:
    """A read-only RunStore on `root` that creates no file there: `RunStore(readonly=True)` opens
    SQLite with `immutable=1` when no writer is alive, so no `-wal`/`-shm` files appear."""
    store = RunStore(Path(root), readonly=True)
    try:
        yield store
    finally:
        store.close()


# -- fronts --------------------------------------------------------------------------------------
def objective_direction(recorded: object) -> Literal["min", "max"]:
    """An objective's direction as a record holds it ("min" or "max", as text): "min" is minimised,
    anything else maximised, which is how `Objective.sign` reads a direction that is not "min"."""
    return "min" if recorded == "min" else "max"


def minimised(objectives: Sequence[Objective], inds: Sequence[Individual], split: str) -> np.ndarray:
    """(len(inds), len(objectives)) objective values on `split`, every column minimised (`max`
    objectives negated); a metric a model lacks is NaN (never non-dominated)."""
    if not inds:
        return np.zeros((0, len(objectives)))
    per = [i.metrics.get(split) or {} for i in inds]  # a missing value (None) becomes NaN in the float array
    cols = [np.array([m.get(o.name) for m in per], dtype=float) * o.sign for o in objectives]
    return np.stack(cols, axis=1)


def feasible_front(
    objectives: Sequence[Objective], inds: Sequence[Individual], constraints: Sequence[cons.Constraint] = ()
) -> list[Individual]:
    """The non-dominated members of `inds` on validation, feasibility-first with constraints (the
    non-dominated feasible ones, or the least violating when none is feasible), in `inds` order."""
    cv = cons.of_individuals(constraints, inds, "val")
    return [inds[i] for i in cons.feasible_first(minimised(objectives, inds, "val"), cv)]


def final_front(store: RunStore, problem, constraints: Sequence[cons.Constraint] | None = None) -> list[Individual]:
    """The front of the last generation's population. `problem`: anything with `objectives` (a
    Problem, a RunReader); `constraints` None: those in the run's config.yaml."""
    last = store.last_generation()
    if last is None:
        return []
    return feasible_front(problem.objectives, store.individuals(last["population"]), _constraints(store, constraints))


def genomes(store: RunStore, individuals: Sequence[Individual]) -> list[Any] | None:
    """What the problem evaluated for each individual: its stored weights, or its vector x (a
    vector genome, e.g. a merge recipe, whose problem rebuilds the model from it). None when one
    has neither (nothing to predict with)."""
    out: list[Any] = []
    for ind in individuals:
        if ind.weights_hash is not None:
            out.append(store.get_weights(ind.weights_hash))
        elif ind.x is not None:
            out.append(np.asarray(ind.x, dtype=float))
        else:
            return None
    return out


def sorted_front(store: RunStore, problem, constraints: Sequence[cons.Constraint] = ()) -> list[Individual]:
    """`final_front` in front.csv's order: by the validation objectives, first objective first."""
    names = [o.name for o in problem.objectives]
    return sorted(final_front(store, problem, constraints), key=lambda i: [i.metrics["val"][n] for n in names])


def archive(
    store: RunStore,
    problem,
    inds: Sequence[Individual] | None = None,
    constraints: Sequence[cons.Constraint] | None = None,
) -> list[Individual]:
    """Every individual ever evaluated (or `inds`) that no other dominates, feasibility-first as
    in `final_front`."""
    inds = store.individuals() if inds is None else inds
    return feasible_front(problem.objectives, inds, _constraints(store, constraints))


def _constraints(store: RunStore, constraints) -> tuple[cons.Constraint, ...]:
    return cons.of_run(store.root) if constraints is None else tuple(constraints)


# -- the run directory ---------------------------------------------------------------------------
class RunReader:
    """A run directory (finished, interrupted or still being written), read-only.

    `problem`: the object the run used, when the caller has it; otherwise objectives come from the
    store's record. Subclasses that can rebuild the problem from config.yaml override
    `rebuilt_problem`, which is asked only when the store has no record (older runs)."""

    def __init__(self, root: str | os.PathLike, *, problem=None):
        self.root = check_run_dir(root)
        self._problem = problem
        config = self.root / CONFIG_NAME
        self.recipe_yaml: str = config.read_text() if config.is_file() else ""
        self.recipe: dict[str, Any] = _parse_recipe(self.recipe_yaml, config)

    @property
    def problem(self):
        """The problem object given (None: only the directory is known)."""
        return self._problem

    def store(self) -> contextlib.AbstractContextManager[RunStore]:
        """`with reader.store() as store:` a read-only store that writes nothing (`open_store`)."""
        return open_store(self.root)

    # -- what the run optimised ---------------------------------------------------------------
    @property
    def objectives(self) -> tuple[Objective, ...]:
        """From the problem given, else the store's record of the run's objectives, else the problem
        rebuilt, else front.csv's objective columns or the first model's metrics (assumed `min`)."""
        return self._objectives_and_note[0]

    @property
    def objectives_note(self) -> str | None:
        """Why the objectives are not as the run recorded them (directions assumed), or None."""
        return self._objectives_and_note[1]

    @cached_property
    def _objectives_and_note(self) -> tuple[tuple[Objective, ...], str | None]:
        if self._problem is not None:
            return tuple(self._problem.objectives), None
        with self.store() as store:
            stored = store.get_meta(OBJECTIVES_META)
        if stored:
            return tuple(Objective(str(n), objective_direction(d)) for n, d in stored), None
        failure = None
        try:
            rebuilt = self.rebuilt_problem()
        except UserError as exc:
            rebuilt, failure = None, exc
        if rebuilt is not None:
            return tuple(rebuilt.objectives), None
        names = front_csv_objectives(self.root / "front.csv")
        if not names and failure is not None:
            raise failure
        if not names:
            with self.store() as store:
                first = store.individuals()[:1]
            names = sorted({n for i in first for n in i.metrics.get("val", {})})
        return tuple(Objective(n) for n in names), ASSUMED_MIN

    def rebuilt_problem(self):
        """The problem rebuilt from config.yaml, or None where this reader cannot rebuild it."""
        return None

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @cached_property
    def constraints(self) -> tuple[cons.Constraint, ...]:
        """The recipe's `constraints:` (`recipe_constraints`)."""
        return recipe_constraints(self.recipe)

    @property
    def hv_ref(self) -> tuple[float, ...] | None:
        """The recipe's reference point, else the problem's default, else the one a problem derived
        from its data and recorded (None: HV off)."""
        ref = self.recipe.get("hv_ref") or getattr(self._problem, "default_hv_ref", None) or self._recorded_hv_ref
        return tuple(float(v) for v in ref) if ref else None

    @cached_property
    def _recorded_hv_ref(self) -> list[float] | None:
        with self.store() as store:
            return store.get_meta(HV_REF_META)

    @property
    def name(self) -> str:
        return str(self.recipe.get("name") or self.root.name)

    @property
    def planned_generations(self) -> int | None:
        algo = self.recipe.get("algorithm") or {}
        return algo.get("generations") if isinstance(algo, dict) else None

    # -- what the store holds --------------------------------------------------------------------
    def read_generations(self) -> list[dict[str, Any]]:
        """The store's generation rows (population ids, stats, backend state), oldest first."""
        with self.store() as store:
            return store.generations()

    def read_front(self) -> list[Individual]:
        """The final population's front in front.csv's order (`sorted_front`)."""
        with self.store() as store:
            return sorted_front(store, self, self.constraints)

    def read_archive(self) -> list[Individual]:
        """Every evaluated model no other evaluated model dominates (archive.csv's rows)."""
        with self.store() as store:
            return archive(store, self, None, self.constraints)


def check_run_dir(root: str | os.PathLike) -> Path:
    """`root` as a Path, if it holds a run's store; else a one-line `UserError`."""
    root = Path(root)
    if not (root / DB_NAME).is_file():
        raise UserError(f"{root}: not an evofair run directory (no {DB_NAME})")
    return root


def recipe_constraints(recipe: dict[str, Any]) -> tuple[cons.Constraint, ...]:
    """A resolved recipe's `constraints:` (a malformed one, in an edited config.yaml: `UserError`)."""
    return cons.parse_all(recipe.get("constraints") or [], f"{CONFIG_NAME}: constraints")


def front_csv_objectives(path: Path) -> list[str]:
    """The objective names front.csv was written with (its `<name>_val` columns), or []."""
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh))
    except (OSError, StopIteration):
        return []
    return list(dict.fromkeys(h[:-4] for h in header[2:] if h.endswith("_val") and h != "cv_val"))


def _parse_recipe(text: str, path: Path) -> dict[str, Any]:
    if not text:
        return {}
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__}); was it edited?") from None
    return recipe if isinstance(recipe, dict) else {}
