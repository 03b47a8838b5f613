"""The front of three or more objectives as a scatter matrix: every pair of objectives in its own
panel (lower triangle), with the same layers as the 2-D figure.

Why not the 2-D figure: a front of three objectives is a surface; projected onto two of them its
members do not form a staircase, and a line joining them by one axis zig-zags through points that
look dominated but are not. Why not plotly's `Splom` or parallel coordinates: both draw with
WebGL, which headless browsers and machines without a GPU may lack; these are SVG scatter panels,
so clicks (a point's `customdata`), tests and the static report work as for the 2-D figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from evofair.core.individual import Individual
from evofair.explorer.front_layers import (
    ALL,
    BASELINE_SYMBOLS,
    COLOURS,
    FRONT,
    INFEASIBLE,
    MEETS,
    SELECTED,
    baseline_name,
    group_baselines,
    hover_text,
)
from evofair.explorer.snapshot import Snapshot

Values = dict[str, np.ndarray]


def panels(names: Sequence[str]) -> list[tuple[int, int, str, str]]:
    """(row, col, x metric, y metric) of each panel: column c plots objective c across, row r
    objective r + 1 up, so a column shares its x axis and a row its y axis."""
    return [(r + 1, c + 1, names[c], names[r + 1]) for r in range(len(names) - 1) for c in range(r + 1)]


def matrix_figure(
    snap: Snapshot,
    *,
    colour: str | None,
    split: str,
    generation: int | None,
    show_all: bool = True,
    baselines: Sequence[dict[str, Any]] = (),
    meets: Sequence[Individual] | None = None,
    selected: Sequence[str] = (),
    height: int = 520,
    axis_title: Callable[[Snapshot, str, str], str] | None = None,
) -> go.Figure:
    """The front of `generation` on `split`, every objective against every other.

    Layers in `front_figure`'s order, each as one trace per panel (legend entry on the first):
    all evaluated, front, infeasible (with recipe constraints), baselines, meeting the user's
    bounds, selected."""
    names = list(snap.objective_names)
    cells = panels(names)
    size = len(names) - 1
    fig = make_subplots(
        rows=size, cols=size, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=0.04
    )
    title = axis_title or (lambda s, n, sp: f"{n} ({sp})")

    def layer(inds: Sequence[Individual], name: str, marker: dict[str, Any], **extra: Any) -> None:
        values = {n: snap.values(inds, n, split) for n in names}
        _add_layer(fig, cells, values, name, marker, [i.id for i in inds], hover_text(snap, inds, split), **extra)

    infeasible: list[Individual] = []
    if show_all:
        pts = snap.evaluated(generation)
        if snap.constraints:
            ok = snap.feasible(pts, split)
            infeasible = [i for i, k in zip(pts, ok) if not k]
            pts = [i for i, k in zip(pts, ok) if k]
        layer(pts, ALL + (" (feasible)" if snap.constraints else ""), dict(size=5, color=COLOURS["all"]))
    front = snap.front(generation)
    layer(front, FRONT, _front_marker(snap, front, colour, split))
    if snap.constraints and show_all:
        layer(infeasible, f"{INFEASIBLE}, {split}", dict(symbol="x", size=6, color=COLOURS["infeasible"]))
    for k, (method, rows) in enumerate(group_baselines(baselines).items()):
        values = {n: np.array([r["metrics"].get(split, {}).get(n, np.nan) for r in rows], float) for n in names}
        marker = dict(symbol=BASELINE_SYMBOLS[k % len(BASELINE_SYMBOLS)], size=9, line=dict(width=1))
        ids = [f"baseline:{r['id']}" for r in rows]
        _add_layer(fig, cells, values, baseline_name(method), marker, ids, [f"<b>{method}</b> {r['id']}" for r in rows])
    if meets is not None:
        layer(meets, MEETS, dict(symbol="circle-open", size=15, line=dict(width=2.5, color=COLOURS["meets"])))
    chosen = [snap.individuals[i] for i in selected if i in snap.individuals]
    if chosen:
        layer(
            chosen, SELECTED, dict(symbol="star", size=15, color=COLOURS["selected"], line=dict(width=1, color="black"))
        )
    for c, n in enumerate(names[:-1]):
        fig.update_xaxes(title_text=title(snap, n, split), row=size, col=c + 1)
    for r, n in enumerate(names[1:]):
        fig.update_yaxes(title_text=title(snap, n, split), row=r + 1, col=1)
    fig.update_xaxes(gridcolor="#eee", zeroline=False)
    fig.update_yaxes(gridcolor="#eee", zeroline=False)
    fig.update_layout(
        height=max(height, 230 * size + 110),
        margin=dict(l=70, r=20, t=40, b=60),
        hovermode="closest",
        clickmode="event",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)),
        plot_bgcolor="white",
        uirevision=f"matrix|{split}",
    )
    return fig


def _front_marker(snap: Snapshot, front: Sequence[Individual], colour: str | None, split: str) -> dict[str, Any]:
    marker: dict[str, Any] = dict(size=9, line=dict(width=1, color="white"), color=COLOURS["front"])
    if colour:
        cvals = [i.generation for i in front] if colour == "generation" else snap.values(front, colour, split)
        label = colour if colour == "generation" else f"{colour} ({split})"
        marker.update(color=cvals, colorscale="Viridis", showscale=True, colorbar=dict(title=label, thickness=12))
    if snap.constraints:  # an infeasible front member (on this split) is drawn as an ✕, as in 2-D
        marker.update(symbol=["circle" if k else "x" for k in snap.feasible(front, split)])
    return marker


def _add_layer(
    fig: go.Figure,
    cells: list[tuple[int, int, str, str]],
    values: Values,
    name: str,
    marker: dict[str, Any],
    ids: list[str],
    hover: list[str],
) -> None:
    for k, (row, col, x, y) in enumerate(cells):
        fig.add_trace(
            go.Scatter(
                x=values[x],
                y=values[y],
                mode="markers",
                name=name,
                legendgroup=name,
                showlegend=k == 0,
                customdata=ids,
                marker={**marker, "showscale": marker.get("showscale", False) and k == 0},
                hovertext=hover,
                hoverinfo="text",
            ),
            row=row,
            col=col,
        )
