"""The run over its generations: hypervolume per generation (explorer and static report) and the
front replayed generation by generation as plotly animation frames (static report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from evofair.explorer.front_figure import front_figure
from evofair.explorer.snapshot import Snapshot


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
    fig.update_layout(
        height=height,
        margin=dict(l=60, r=20, t=30, b=40),
        plot_bgcolor="white",
        title=dict(text="Hypervolume per generation" + ref, font=dict(size=13), x=0.01),
        xaxis_title="generation",
        yaxis_title="hypervolume",
        xaxis=dict(dtick=max(1, -(-len(g) // 10))),
        legend=dict(orientation="h", y=-0.35, x=0, font=dict(size=11)),
    )
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    return fig


def replay_figure(
    snap: Snapshot, *, x: str, y: str, split: str, baselines: Sequence[dict[str, Any]] = (), height: int = 520
) -> go.Figure:
    """The front per generation as plotly animation frames with a slider (for the static report)."""
    gens = [g["generation"] for g in snap.generations]
    if not gens:
        return front_figure(snap, x=x, y=y, colour=None, split=split, generation=None, baselines=baselines)
    last = gens[-1]
    base = front_figure(
        snap, x=x, y=y, colour=None, split=split, generation=last, show_all=True, baselines=baselines, height=height
    )
    frames = []
    n_traces = 3 if snap.constraints else 2  # all evaluated, front (, infeasible)
    for g in gens:
        f = front_figure(snap, x=x, y=y, colour=None, split=split, generation=g, show_all=True, baselines=baselines)
        frames.append(go.Frame(data=list(f.data[:n_traces]), traces=list(range(n_traces)), name=str(g)))
    base.frames = frames
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
