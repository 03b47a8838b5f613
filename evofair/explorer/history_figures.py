"""The run over its generations: hypervolume per generation (explorer and static report) and the
front replayed generation by generation as plotly animation frames (static report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from evofair.explorer.front_figure import front_figure
from evofair.explorer.front_layers import add_front, xy
from evofair.explorer.front_matrix import panels
from evofair.explorer.snapshot import Snapshot

TOOLBAR_PX = 30  # the height of plotly's modebar strip at the top of a figure


def hv_figure(snap: Snapshot, generation: int | None = None, height: int = 240) -> go.Figure:
    """Validation and test hypervolume of each generation's front; a dotted line marks `generation`."""
    hist = snap.hv_history()
    fig = go.Figure()
    g = [h["generation"] for h in hist]
    for key, name, colour in (
        ("hv_val", "HV val (front of population)", "#2471a3"),
        ("hv_test", "HV test (same models)", "#ca6f1e"),
    ):
        vals = [h[key] if h[key] is not None else None for h in hist]
        if any(v is not None for v in vals):
            fig.add_trace(
                go.Scatter(x=g, y=vals, mode="lines+markers", name=name, line=dict(color=colour), marker=dict(size=5))
            )
    if generation is not None:
        fig.add_vline(x=generation, line=dict(color="#888", dash="dot"))
    ref = f" (reference point {tuple(snap.hv_ref)})" if snap.hv_ref else " (no reference point: HV off)"
    # the title sits below the strip where plotly's toolbar (modebar) appears, so it is never covered
    fig.update_layout(
        height=height,
        margin=dict(l=60, r=20, t=TOOLBAR_PX + 26, b=40),
        plot_bgcolor="white",
        title=dict(
            text="Hypervolume per generation" + ref,
            font=dict(size=13),
            x=0.01,
            xanchor="left",
            y=1 - TOOLBAR_PX / height,
            yanchor="top",
            yref="container",
        ),
        xaxis_title="generation",
        yaxis_title="hypervolume",
        xaxis=dict(dtick=max(1, -(-len(g) // 10))),
        legend=dict(orientation="h", y=-0.35, x=0, font=dict(size=11)),
    )
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    return fig


def replayed_front_traces(snap: Snapshot) -> list[int]:
    """The indices of the front layer in the replay's base figure: after the evaluated models, one
    trace per panel of the matrix (three or more objectives) or one (two)."""
    n = len(panels(snap.objective_names)) if len(snap.objective_names) >= 3 else 1
    return list(range(n, 2 * n))


def _front_layer(snap: Snapshot, x: str, y: str, split: str, generation: int, n: int) -> list[Any]:
    """The `n` traces of a generation's front layer, as `front_figure` draws them (sorted by `x`,
    no intervals in the replay); two objectives skip the rest of the figure (layout, ranges),
    which would cost more than the trace itself."""
    if len(snap.objective_names) >= 3:  # show_all=False: the figure's first traces are the front layer
        return list(
            front_figure(snap, x=x, y=y, colour=None, split=split, generation=generation, show_all=False).data[:n]
        )
    front = snap.front(generation)
    xs, ys = xy(snap, front, x, y, split)
    order = np.argsort(xs, kind="stable")
    fig = go.Figure()
    add_front(fig, snap, [front[i] for i in order], xs[order], ys[order], colour=None, split=split, bars={})
    return list(fig.data)


def replay_figure(
    snap: Snapshot, *, x: str, y: str, split: str, baselines: Sequence[dict[str, Any]] = (), height: int = 520
) -> go.Figure:
    """The front per generation as plotly animation frames with a slider (for the static report).

    The faded layers (every evaluated model, the infeasible ones) show the whole run and stay put;
    each frame replaces only the front layer, so the page grows with the run's size (a frame per
    generation holding that generation's front). Frames that redrew every model evaluated so far
    made the page, and the time to write it, grow with generations × individuals."""
    gens = [g["generation"] for g in snap.generations]
    if not gens:
        return front_figure(snap, x=x, y=y, colour=None, split=split, generation=None, baselines=baselines)
    last = gens[-1]
    base = front_figure(
        snap, x=x, y=y, colour=None, split=split, generation=last, show_all=True, baselines=baselines, height=height
    )
    front_traces = replayed_front_traces(snap)
    base.frames = [
        go.Frame(data=_front_layer(snap, x, y, split, g, len(front_traces)), traces=front_traces, name=str(g))
        for g in gens
    ]
    steps = [
        dict(
            method="animate",
            label=str(g),
            args=[[str(g)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))],
        )
        for g in gens
    ]
    base.update_layout(
        sliders=[
            dict(
                active=len(gens) - 1,
                steps=steps,
                currentvalue=dict(prefix="generation "),
                pad=dict(t=40),
                x=0.12,
                len=0.88,
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=0,
                yanchor="top",
                xanchor="left",
                pad=dict(t=75),
                buttons=[
                    dict(
                        label="▶ replay",
                        method="animate",
                        args=[
                            None,
                            dict(frame=dict(duration=400, redraw=True), fromcurrent=False, transition=dict(duration=0)),
                        ],
                    )
                ],
            )
        ],
        height=height + 80,
        margin=dict(b=120),
    )
    return base
