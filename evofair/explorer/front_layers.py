"""The layers of the front figure, one function each, in the order `front_figure` draws them.

Every point carries its individual's id in `customdata`, which is how a click becomes a model
card; the trace names below are what the page's tests look layers up by. Figures use SVG scatter
(not WebGL) so they render in headless browsers without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from evofair.core.individual import Individual
from evofair.explorer.interval_overlap import error_bars, indistinguishable
from evofair.explorer.snapshot import Snapshot

FRONT = "front"
ALL = "all evaluated"
MEETS = "meets constraints"
INFEASIBLE = "infeasible (violates a recipe constraint)"
SELECTED = "selected"
INDISTINGUISHABLE = "indistinguishable from the selected model (test intervals overlap on every objective)"
#: baseline methods whose predictions read the sensitive attribute: fairlearn's ThresholdOptimizer picks
#: a threshold per group, so deploying it needs each person's group (the legend says so)
READS_GROUP = {"threshold": "reads group at prediction time"}
BASELINE_SYMBOLS = ("x", "diamond", "triangle-up", "square", "cross", "triangle-down", "star-diamond")
COLOURS = {
    "front": "#c0392b",
    "all": "rgba(120,120,120,0.22)",
    "meets": "#1e8449",
    "selected": "#f1c40f",
    "compare": "#2471a3",
    "infeasible": "rgba(192,57,43,0.55)",
    "indistinguishable": "rgba(241,196,15,0.35)",
}


def hover_text(snap: Snapshot, inds: Sequence[Individual], split: str, extra: str = "") -> list[str]:
    """Hover text of each model: its id, generation, objectives and, with recipe constraints, feasibility."""
    names = snap.objective_names
    return [
        f"<b>{i.id}</b> (gen {i.generation}){extra}<br>"
        + "<br>".join(f"{n}: {fmt_value(snap.value(i, n, split))}" for n in names)
        + _feasibility_note(snap, i, split)
        for i in inds
    ]


def _feasibility_note(snap: Snapshot, ind: Individual, split: str) -> str:
    if not snap.constraints:
        return ""
    broken = [str(c) for c in snap.constraints if not c.holds(snap.value(ind, c.metric, split))]
    return f"<br><i>{'violates ' + ', '.join(broken) if broken else 'feasible'} ({split})</i>"


def fmt_value(v: float | None) -> str:
    """A value as hover text shows it: 4 decimals, or – when missing or not finite."""
    return "–" if v is None or not math.isfinite(v) else f"{v:.4f}"


def xy(snap: Snapshot, inds: Sequence[Individual], x: str, y: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The models' values of the two plotted metrics on `split` (NaN where missing)."""
    return snap.values(inds, x, split), snap.values(inds, y, split)


def add_evaluated(
    fig: go.Figure, snap: Snapshot, x: str, y: str, split: str, generation: int | None
) -> list[Individual]:
    """The faded layer of every model evaluated so far (the feasible ones, with recipe
    constraints); returns the infeasible ones on `split`, drawn later as their own layer."""
    pts, infeasible = snap.evaluated(generation), []
    if snap.constraints:  # feasibility on the split shown; selection used validation
        ok = snap.feasible(pts, split)
        infeasible = [i for i, k in zip(pts, ok) if not k]
        pts = [i for i, k in zip(pts, ok) if k]
    xs, ys = xy(snap, pts, x, y, split)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=ALL + (" (feasible)" if snap.constraints else ""),
            customdata=[i.id for i in pts],
            marker=dict(size=6, color=COLOURS["all"]),
            hovertext=hover_text(snap, pts, split),
            hoverinfo="text",
        )
    )
    return infeasible


def add_indistinguishable(
    fig: go.Figure,
    snap: Snapshot,
    ivs: dict[str, Any],
    front: Sequence[Individual],
    selected: Sequence[str],
    x: str,
    y: str,
    split: str,
) -> None:
    """Shade the front models whose intervals overlap the selected model's on every objective."""
    close = indistinguishable(ivs, [i.id for i in front], selected[-1] if selected else None, snap.objective_names)
    if close:
        cx, cy = xy(snap, [snap.individuals[i] for i in close], x, y, split)
        fig.add_trace(
            go.Scatter(
                x=cx,
                y=cy,
                mode="markers",
                name=INDISTINGUISHABLE,
                customdata=close,
                marker=dict(size=24, color=COLOURS["indistinguishable"], line=dict(width=0)),
                hoverinfo="skip",
            )
        )


def add_front(
    fig: go.Figure,
    snap: Snapshot,
    front: list[Individual],
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    colour: str | None,
    split: str,
    bars: dict[str, Any],
) -> None:
    """The front's markers (coloured by a metric or the generation), an ✕ for a member infeasible
    on `split`, joined by a line on validation only."""
    marker: dict[str, Any] = dict(size=11, line=dict(width=1, color="white"))
    if colour:
        cvals = [i.generation for i in front] if colour == "generation" else snap.values(front, colour, split)
        marker.update(
            color=cvals,
            colorscale="Viridis",
            showscale=True,
            colorbar=dict(
                title=dict(text=colour if colour == "generation" else f"{colour} ({split})", side="right"),
                thickness=12,
                len=0.8,
            ),
        )
    else:
        marker.update(color=COLOURS["front"])
    name = FRONT
    if snap.constraints:  # an infeasible front member (on this split) is drawn as an ✕
        ok = snap.feasible(front, split)
        marker.update(symbol=["circle" if k else "x" for k in ok])
        if len(front) and not snap.feasible(front, "val").any():
            name = f"{FRONT}: least violating (nothing feasible)"
    # The front is non-dominated on validation; on test the same models need not be, so joining
    # them by a line there would draw a misleading staircase. With three or more objectives the
    # front is a surface, and a line through its projection on two of them zig-zags.
    staircase = split == "val" and len(snap.objective_names) == 2
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+lines" if staircase else "markers",
            name=name,
            customdata=[i.id for i in front],
            marker=marker,
            line=dict(color=COLOURS["front"], width=1.5, dash="dot"),
            hovertext=hover_text(snap, front, split),
            hoverinfo="text",
            **bars,
        )
    )


def add_infeasible(
    fig: go.Figure, snap: Snapshot, infeasible: Sequence[Individual], x: str, y: str, split: str
) -> None:
    """The evaluated models that violate a recipe constraint on `split`, as ✕ marks."""
    ix, iy = xy(snap, infeasible, x, y, split)
    fig.add_trace(
        go.Scatter(
            x=ix,
            y=iy,
            mode="markers",
            name=f"{INFEASIBLE}, {split}",
            customdata=[i.id for i in infeasible],
            marker=dict(symbol="x", size=7, color=COLOURS["infeasible"]),
            hovertext=hover_text(snap, infeasible, split),
            hoverinfo="text",
        )
    )


def add_baselines(
    fig: go.Figure, baselines: Sequence[dict[str, Any]], x: str, y: str, split: str, ivs: dict[str, Any] | None
) -> None:
    """One marker layer per baseline method of baselines.csv, with its test intervals when shown."""
    for k, (method, rows) in enumerate(group_baselines(baselines).items()):
        bx = [r["metrics"].get(split, {}).get(x, float("nan")) for r in rows]
        by = [r["metrics"].get(split, {}).get(y, float("nan")) for r in rows]
        fig.add_trace(
            go.Scatter(
                x=bx,
                y=by,
                mode="markers",
                name=baseline_name(method),
                customdata=[f"baseline:{r['id']}" for r in rows],
                marker=dict(symbol=BASELINE_SYMBOLS[k % len(BASELINE_SYMBOLS)], size=10, line=dict(width=1)),
                hovertext=[
                    f"<b>{method}</b> {r['id']}<br>{x}: {fmt_value(a)}<br>{y}: {fmt_value(b)}"
                    for r, a, b in zip(rows, bx, by)
                ],
                hoverinfo="text",
                **error_bars(
                    ivs.get("baselines", {}) if ivs else {},
                    [r["id"] for r in rows],
                    np.asarray(bx, float),
                    np.asarray(by, float),
                    x,
                    y,
                ),
            )
        )


def add_meets(fig: go.Figure, snap: Snapshot, meets: Sequence[Individual], x: str, y: str, split: str) -> None:
    """Rings around the models that meet every bound the user typed."""
    mx, my = xy(snap, meets, x, y, split)
    fig.add_trace(
        go.Scatter(
            x=mx,
            y=my,
            mode="markers",
            name=MEETS,
            customdata=[i.id for i in meets],
            marker=dict(symbol="circle-open", size=19, line=dict(width=2.5, color=COLOURS["meets"])),
            hovertext=hover_text(snap, meets, split, " meets all constraints"),
            hoverinfo="text",
        )
    )


def add_selected(fig: go.Figure, snap: Snapshot, selected: Sequence[str], x: str, y: str, split: str) -> None:
    """Stars on the open model and the compared ones (A, B)."""
    chosen = [snap.individuals[i] for i in selected if i in snap.individuals]
    if chosen:
        sx, sy = xy(snap, chosen, x, y, split)
        fig.add_trace(
            go.Scatter(
                x=sx,
                y=sy,
                mode="markers+text",
                name=SELECTED,
                customdata=[i.id for i in chosen],
                text=["A", "B", "C"][: len(chosen)] if len(chosen) > 1 else ["selected"],
                textposition="top center",
                marker=dict(symbol="star", size=18, color=COLOURS["selected"], line=dict(width=1, color="black")),
                hovertext=hover_text(snap, chosen, split),
                hoverinfo="text",
            )
        )


def baseline_name(method: str) -> str:
    """A baseline's legend entry: `baseline: threshold (reads group at prediction time)`."""
    note = READS_GROUP.get(method)
    return f"baseline: {method}" + (f" ({note})" if note else "")


def group_baselines(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return out
