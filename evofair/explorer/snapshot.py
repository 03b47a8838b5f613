"""A run as read from its store at one moment: the explorer's, the static report's and export's view.

Immutable once built (`RunData.refresh` builds a new one when the store changed), so concurrent
page callbacks never see half a reload. Fronts are the reader's (`evofair.analysis.run_reader`),
per generation and cached.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from evofair.analysis.run_reader import feasible_front, minimised, objective_direction
from evofair.core import constraints as cons
from evofair.core.constraints import Constraint
from evofair.core.indicators import hypervolume
from evofair.core.individual import Individual
from evofair.core.problem import SPLITS, Objective
from evofair.errors import UserError
from evofair.explorer.lineage import ancestry


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

    @cached_property
    def _typed_objectives(self) -> tuple[Objective, ...]:
        return tuple(Objective(n, objective_direction(d)) for n, d in self.objectives)

    def minimised(self, inds: Sequence[Individual], split: str) -> np.ndarray:
        """Objective values on `split`, every column minimised (`evofair.analysis.run_reader.minimised`)."""
        return minimised(self._typed_objectives, inds, split)

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
        is `evofair.analysis.run_reader.final_front` (front.csv's models)."""
        row = self._generation_row(generation)
        if row is None:
            return []
        g = row["generation"]
        with self._lock:
            if g not in self._fronts:
                self._fronts[g] = feasible_front(self._typed_objectives, self.population(g), self.constraints)
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
                row[s] = json_float(v)
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
            out.append(
                {
                    "generation": row["generation"],
                    "hv_val": row["hv_val"],
                    "hv_test": hv_test,
                    "n_front": row["n_front"],
                    "evaluations": row["evaluations"],
                    "seconds": row["seconds"],
                }
            )
        return out

    # -- constraints ---------------------------------------------------------------------
    def satisfying(
        self, inds: Sequence[Individual], constraints: Sequence[Constraint], split: str, rank_by: str | None = None
    ) -> list[Individual]:
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
        """The ancestry of `iid` back to the roots (`evofair.explorer.lineage.ancestry`)."""
        self.get(iid)
        return ancestry(self.individuals, iid, max_nodes)


def json_float(v: float | None) -> float | None:
    """A metric for JSON: NaN and infinities (which JSON lacks) become null."""
    return float(v) if v is not None and math.isfinite(v) else None
