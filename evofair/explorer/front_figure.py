"""The front figure shared by the live explorer and the static HTML report: a generation's front
(selected on validation) drawn on a split, with its context layers (`evofair.explorer.front_layers`),
the user's bounds shaded, and axes fitted to the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from evofair.core.constraints import Constraint
from evofair.core.individual import Individual
from evofair.explorer.front_layers import (
    add_baselines,
    add_evaluated,
    add_front,
    add_indistinguishable,
    add_infeasible,
    add_meets,
    add_selected,
    xy,
)
from evofair.explorer.front_matrix import matrix_figure
from evofair.explorer.interval_overlap import error_bars
from evofair.explorer.snapshot import Snapshot


def axis_title(snap: Snapshot, metric: str, split: str) -> str:
    """`metric (split)`, with an arrow saying which way is better for an objective."""
    arrow = {"min": " ↓", "max": " ↑"}[snap.direction(metric)] if metric in snap.objective_names else ""
    return f"{metric} ({split}){arrow}"


def front_figure(
    snap: Snapshot,
    *,
    x: str,
    y: str,
    colour: str | None,
    split: str,
    generation: int | None,
    show_all: bool = True,
    baselines: Sequence[dict[str, Any]] = (),
    meets: Sequence[Individual] | None = None,
    constraints: Sequence[Constraint] = (),
    selected: Sequence[str] = (),
    height: int = 520,
    intervals: dict[str, Any] | None = None,
) -> go.Figure:
    """The front of `generation` (selected on validation) drawn on `split`, with context layers;
    with `intervals` (intervals.json) and the split they are on, error bars and the front members
    indistinguishable from the selected model (`indistinguishable`). Three or more objectives:
    a scatter matrix of every pair instead (`front_matrix`; `x` and `y` are then not used).

    Trace order is fixed (the replay's frames update the first traces by index): all evaluated,
    indistinguishable (with intervals), front, infeasible (with recipe constraints), baselines,
    meeting the user's bounds, selected."""
    if len(snap.objective_names) >= 3:
        return matrix_figure(
            snap,
            colour=colour,
            split=split,
            generation=generation,
            show_all=show_all,
            baselines=baselines,
            meets=meets,
            selected=selected,
            height=height,
            axis_title=axis_title,
        )
    fig = go.Figure()
    infeasible = add_evaluated(fig, snap, x, y, split, generation) if show_all else []
    front = snap.front(generation)
    xs, ys = xy(snap, front, x, y, split)
    order = np.argsort(xs, kind="stable") if len(front) else np.array([], dtype=int)
    front, xs, ys = [front[i] for i in order], xs[order], ys[order]
    ivs = intervals if intervals is not None and intervals.get("split") == split else None
    if ivs is not None:
        add_indistinguishable(fig, snap, ivs, front, selected, x, y, split)
    bars = error_bars(ivs["models"] if ivs else {}, [i.id for i in front], xs, ys, x, y)
    add_front(fig, snap, front, xs, ys, colour=colour, split=split, bars=bars)
    if snap.constraints and show_all:  # always present (maybe empty): replay frames update it by index
        add_infeasible(fig, snap, infeasible, x, y, split)
    add_baselines(fig, baselines, x, y, split, ivs)
    if meets is not None:
        add_meets(fig, snap, meets, x, y, split)
    add_selected(fig, snap, selected, x, y, split)
    for c in constraints:
        if c.metric in (x, y):
            _shade_excluded(fig, c, "x" if c.metric == x else "y")
    _autorange(fig, snap, x, y, split, generation, show_all, baselines)
    _style(fig, snap, x, y, split, height)
    return fig


def _style(fig: go.Figure, snap: Snapshot, x: str, y: str, split: str, height: int) -> None:
    """Axis titles, legend and grid; `uirevision` keeps the user's zoom while only the data change."""
    fig.update_layout(
        height=height,
        margin=dict(l=60, r=20, t=30, b=50),
        hovermode="closest",
        clickmode="event",
        xaxis_title=axis_title(snap, x, split),
        yaxis_title=axis_title(snap, y, split),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)),
        plot_bgcolor="white",
        uirevision=f"{x}|{y}|{split}",
    )
    fig.update_xaxes(gridcolor="#eee", zeroline=False)
    fig.update_yaxes(gridcolor="#eee", zeroline=False)


def _shade_excluded(fig: go.Figure, c: Constraint, axis: str) -> None:
    """Shade the region a bound on a plotted axis excludes, with a dashed line at the bound."""
    far = dict(x=("x0", "x1"), y=("y0", "y1"))[axis]
    rect: dict[str, Any] = {
        "type": "rect",
        "xref": "x" if axis == "x" else "paper",
        "yref": "y" if axis == "y" else "paper",
        "fillcolor": "rgba(200,0,0,0.045)",
        "line": {"width": 0},
        "layer": "below",
        "x0": 0,
        "x1": 1,
        "y0": 0,
        "y1": 1,
    }
    big = 1e9
    rect[far[0]], rect[far[1]] = (c.bound, big) if c.op == "<=" else (-big, c.bound)
    fig.add_shape(rect)
    line: dict[str, Any] = dict(
        type="line",
        line=dict(color="rgba(200,0,0,0.6)", dash="dash", width=1.5),
        xref="x" if axis == "x" else "paper",
        yref="y" if axis == "y" else "paper",
    )
    if axis == "x":
        line.update(x0=c.bound, x1=c.bound, y0=0, y1=1)
    else:
        line.update(y0=c.bound, y1=c.bound, x0=0, x1=1)
    fig.add_shape(line)


def _autorange(
    fig: go.Figure,
    snap: Snapshot,
    x: str,
    y: str,
    split: str,
    generation: int | None,
    show_all: bool,
    baselines: Sequence[dict[str, Any]],
) -> None:
    """Fix the axes to the data so constraint shading (drawn to ±1e9) does not stretch them."""
    pts = snap.evaluated(generation) if show_all else snap.front(generation)
    xs, ys = xy(snap, pts, x, y, split)
    for r in baselines:
        xs = np.append(xs, r["metrics"].get(split, {}).get(x, np.nan))
        ys = np.append(ys, r["metrics"].get(split, {}).get(y, np.nan))
    for axis, vals in (("x", xs), ("y", ys)):
        vals = vals[np.isfinite(vals)]
        if len(vals):
            lo, hi = float(vals.min()), float(vals.max())
            pad = (hi - lo) * 0.06 or 0.01
            fig.update_layout({f"{axis}axis": {"range": [lo - pad, hi + pad]}})
