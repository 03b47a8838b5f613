"""Bootstrap test intervals on the front: error bars, and which models the data cannot tell apart.

Both read intervals.json's document (`evofair.analysis.uncertainty`): `models` (and `baselines`)
map an id to `{metric: [lo, hi]}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def error_bars(
    table: dict[str, dict[str, list[float]]], ids: Sequence[str], xs: np.ndarray, ys: np.ndarray, x: str, y: str
) -> dict[str, Any]:
    """Plotly error_x/error_y of each point from its [lo, hi] interval (none when nothing has one)."""
    out: dict[str, Any] = {}
    for key, metric, vals in (("error_x", x, xs), ("error_y", y, ys)):
        lo = np.array([table.get(i, {}).get(metric, [np.nan, np.nan])[0] for i in ids], dtype=float)
        hi = np.array([table.get(i, {}).get(metric, [np.nan, np.nan])[1] for i in ids], dtype=float)
        if len(ids) and np.isfinite(lo).any():
            out[key] = dict(
                type="data",
                symmetric=False,
                array=np.nan_to_num(hi - vals).clip(min=0).tolist(),
                arrayminus=np.nan_to_num(vals - lo).clip(min=0).tolist(),
                thickness=1,
                width=2,
                color="rgba(192,57,43,0.45)",
                visible=True,
            )
    return out


def indistinguishable(
    intervals: dict[str, Any], ids: Sequence[str], selected: str | None, objectives: Sequence[str]
) -> list[str]:
    """The models among `ids` (not `selected` itself) whose interval overlaps the selected model's on
    every objective: the data cannot tell them apart from it."""
    table = intervals.get("models", {})
    mine = table.get(selected) if selected else None
    if not mine or not all(o in mine for o in objectives):
        return []
    return [
        i
        for i in ids
        if i != selected
        and i in table
        and all(o in table[i] and table[i][o][0] <= mine[o][1] and mine[o][0] <= table[i][o][1] for o in objectives)
    ]
