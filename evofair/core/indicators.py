"""Pareto utilities and hypervolume. HV always comes from pymoo, on minimised objectives."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of F (minimised); duplicates are all kept."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.array([], dtype=int)
    finite = np.all(np.isfinite(F), axis=1)
    idx = np.flatnonzero(finite)
    if len(idx) == 0:
        return idx
    front = NonDominatedSorting().do(F[idx], only_non_dominated_front=True)
    return np.sort(idx[front])


def just_past(value: float) -> float:
    """The next hundredth at least 0.01 above `value` (0.239 → 0.25, 0.30 → 0.31): a reference
    coordinate that a trivial model's value (a constant predictor's) lies strictly inside, so such
    models earn no hypervolume."""
    return math.ceil(round(value * 100, 9) + 1) / 100


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume of F (minimised) w.r.t. `ref`; points not strictly better than ref add nothing."""
    F = np.asarray(F, dtype=float)
    F = F[np.all(np.isfinite(F), axis=1)] if len(F) else F
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, dtype=float))(F))
