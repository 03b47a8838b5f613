"""Constraints on metrics (`constraints: ["dpd <= 0.05"]` in a recipe): parsing, violations, feasibility.

One module for the engine, the report, the explorer and export, so that "feasible" means the same
everywhere. The semantics are pymoo's: each constraint becomes an inequality `g <= 0`
(`g = value - bound` for `<=`, `bound - value` for `>=`), the constraint violation of a model is
`CV = sum(max(0, g))` (pymoo's default `Individual.default_config()`: `cv_ieq` with eps 0, no
scaling, `np.sum`), a model is feasible when `CV <= 0`, and selection is feasibility-first
(feasible models by dominance; infeasible ones by CV, the least violating first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evofair.core.indicators import non_dominated
from evofair.errors import UserError

#: stands in for the violation of a non-finite metric, so such a model ranks behind every finite one
BAD_G = 1e12
EXPECTED = "expected '<metric> <= <number>' or '<metric> >= <number>'"
_FORM = re.compile(r"^\s*([^<>=\s][^<>=]*?)\s*(<=|>=|≤|≥)\s*(\S+)\s*$")


class MalformedConstraint(ValueError):
    """A constraint string not of the form `<metric> <= <number>` / `>=` (message: what was expected)."""


@dataclass(frozen=True)
class Constraint:
    """`metric op bound` on one split, e.g. error <= 0.10."""

    metric: str
    op: str  # "<=" or ">="
    bound: float

    def holds(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def violation(self, values) -> np.ndarray:
        """pymoo's `g` (feasible when <= 0); non-finite values get BAD_G."""
        v = np.asarray(values, dtype=float)
        g = v - self.bound if self.op == "<=" else self.bound - v
        return np.where(np.isfinite(g), g, BAD_G)

    @classmethod
    def parse(cls, text: str, where: str = "constraint") -> Constraint:
        """'error <= 0.10', 'auc >= 0.8' (also ≤/≥, as the explorer's bounds are typed)."""
        try:
            return cls.parse_or_reason(text)
        except MalformedConstraint as exc:
            raise UserError(f"{where}: {exc}, got {text!r}") from None

    @classmethod
    def parse_or_reason(cls, text: str) -> Constraint:
        """As `parse`, raising `MalformedConstraint(what was expected)` (the recipe validator
        adds the location and the value itself)."""
        m = _FORM.match(text) if isinstance(text, str) else None
        if m is None:
            raise MalformedConstraint(EXPECTED)
        name, op, bound_text = m.groups()
        try:
            bound = float(bound_text)
        except ValueError:
            raise MalformedConstraint(f"{EXPECTED} (the bound is not a number)") from None
        if not math.isfinite(bound):
            raise MalformedConstraint("the bound must be a finite number")
        return cls(name.strip(), {"≤": "<=", "≥": ">="}.get(op, op), bound)

    def __str__(self) -> str:
        return f"{self.metric} {'≤' if self.op == '<=' else '≥'} {self.bound:g}"

    @property
    def text(self) -> str:
        """The ASCII form a recipe uses."""
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_all(texts: Sequence[str], where: str = "constraints") -> tuple[Constraint, ...]:
    return tuple(Constraint.parse(t, f"{where}[{k}]") for k, t in enumerate(texts))


def violations(constraints: Sequence[Constraint], metrics: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """G, shape (n, len(constraints)), from one split's metrics (name → array of n values).
    A metric missing from `metrics` counts as non-finite (a large violation)."""
    cols = [c.violation(metrics.get(c.metric, np.full(n, np.nan))) for c in constraints]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def total_violation(G: np.ndarray) -> np.ndarray:
    """pymoo's CV with its default config (sum of the positive parts); 0 when feasible."""
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[1] == 0:
        return np.zeros(len(G))
    return np.maximum(G, 0.0).sum(axis=1)


def feasible_first(F: np.ndarray, CV: np.ndarray | None) -> np.ndarray:
    """Indices of the 'optimum' pymoo reports (`filter_optimum(pop, least_infeasible=True)`):
    the non-dominated feasible rows; when none is feasible, the least violating ones (all rows
    tied at the smallest CV, where pymoo keeps the first of them). Without constraints: the
    non-dominated rows."""
    F = np.asarray(F, dtype=float)
    if CV is None:
        return non_dominated(F)
    CV = np.asarray(CV, dtype=float)
    feasible = np.flatnonzero(CV <= 0)
    if len(feasible):
        return np.sort(feasible[non_dominated(F[feasible])])
    if len(CV) == 0:
        return np.array([], dtype=int)
    return np.flatnonzero(CV == CV.min())


def check_metrics(constraints: Sequence[Constraint], known: Sequence[str] | None, problem_name: str) -> None:
    """Every constrained metric must be one the problem stores (unknown: `known` is None)."""
    if known is None:
        return
    for k, c in enumerate(constraints):
        if c.metric not in known:
            import difflib

            lower = {k.lower(): k for k in known}
            close = difflib.get_close_matches(c.metric.lower(), list(lower), n=1, cutoff=0.6)
            hint = f"; did you mean {lower[close[0]]!r}?" if close else ""
            raise UserError(
                f"constraints[{k}]: problem {problem_name} has no metric {c.metric!r} "
                f"(it stores: {', '.join(known)}){hint}"
            )


def of_run(root) -> tuple[Constraint, ...]:
    """The constraints recorded in a run directory's config.yaml (none if it has none)."""
    from pathlib import Path

    import yaml

    path = Path(root) / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ()
    texts = raw.get("constraints") if isinstance(raw, dict) else None
    return parse_all(texts, f"{path}: constraints") if texts else ()


def of_individuals(constraints: Sequence[Constraint], inds, split: str) -> np.ndarray | None:
    """CV of stored individuals on `split` (None without constraints)."""
    if not constraints:
        return None
    metrics = {
        c.metric: np.array([i.metrics.get(split, {}).get(c.metric, np.nan) for i in inds], dtype=float)
        for c in constraints
    }
    return total_violation(violations(constraints, metrics, len(inds)))
