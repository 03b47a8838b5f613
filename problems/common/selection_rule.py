"""The selection rule every method's models are scored by, the evolution's and the baselines' alike.

A set of candidate models is first reduced to its members that are non-dominated on the validate
split; only those are scored on test. One rule for every set keeps the comparison fair: a method
cannot win on test by keeping models that validation would not have chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evofair.core.indicators import hypervolume, non_dominated


def objective_matrix(problem, rows: Sequence[dict[str, dict[str, float]]], split: str) -> np.ndarray:
    """The minimised objectives (n, n_obj) of `rows` ({split: {metric: value}} each) on `split`."""
    if not rows:
        return np.zeros((0, len(problem.objectives)))
    return problem.minimised({n: np.array([r[split][n] for r in rows]) for n in problem.objective_names})


def val_selected(problem, rows: Sequence[dict[str, dict[str, float]]]) -> list[int]:
    """Indices of the rows non-dominated on the validate split (the common selection rule)."""
    return non_dominated(objective_matrix(problem, rows, "val")).tolist()


def hv_of(problem, rows, ref, split: str = "test") -> tuple[float, int]:
    """(hypervolume on `split` of the val-selected rows, how many were selected)."""
    keep = val_selected(problem, rows)
    return hypervolume(objective_matrix(problem, [rows[i] for i in keep], split), ref), len(keep)
