"""Plotly figures shared by the live explorer and the static HTML report.

Every point carries its individual's id in `customdata`, which is how a click becomes a model
card. Figures use SVG scatter (not WebGL) so they render in headless browsers without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from evofair.core.constraints import Constraint
from evofair.core.individual import Individual
from evofair.explorer.snapshot import Snapshot

FRONT = "front"
ALL = "all evaluated"
MEETS = "meets constraints"
INFEASIBLE = "infeasible (violates a recipe constraint)"
SELECTED = "selected"
INDISTINGUISHABLE = "indistinguishable from the selected model (test intervals overlap on every objective)"
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


def axis_title(snap: Snapshot, metric: str, split: str) -> str:
    arrow = {"min": " ↓", "max": " ↑"}[snap.direction(metric)] if metric in snap.objective_names else ""
    return f"{metric} ({split}){arrow}"


def _hover(snap: Snapshot, inds: Sequence[Individual], split: str, extra: str = "") -> list[str]:
    names = snap.objective_names
    return [
        f"<b>{i.id}</b> (gen {i.generation}){extra}<br>"
        + "<br>".join(f"{n}: {_fmt(snap.value(i, n, split))}" for n in names)
        + _feasibility_note(snap, i, split)
        for i in inds
    ]


def _feasibility_note(snap: Snapshot, ind: Individual, split: str) -> str:
    if not snap.constraints:
        return ""
    broken = [str(c) for c in snap.constraints if not c.holds(snap.value(ind, c.metric, split))]
    return f"<br><i>{'violates ' + ', '.join(broken) if broken else 'feasible'} ({split})</i>"


def _fmt(v: float) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.4f}"


def _xy(snap: Snapshot, inds: Sequence[Individual], x: str, y: str, split: str):
    return snap.values(inds, x, split), snap.values(inds, y, split)


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
    indistinguishable from the selected model (`indistinguishable`).

    Trace order is fixed (the replay's frames update the first traces by index): all evaluated,
    indistinguishable (with intervals), front, infeasible (with recipe constraints), baselines,
    meeting the user's bounds, selected."""
    fig = go.Figure()
    infeasible = _add_evaluated(fig, snap, x, y, split, generation) if show_all else []
    front = snap.front(generation)
    xs, ys = _xy(snap, front, x, y, split)
    order = np.argsort(xs, kind="stable") if len(front) else np.array([], dtype=int)
    front, xs, ys = [front[i] for i in order], xs[order], ys[order]
    ivs = intervals if intervals is not None and intervals.get("split") == split else None
    if ivs is not None:
        _add_indistinguishable(fig, snap, ivs, front, selected, x, y, split)
    _add_front(
        fig,
        snap,
        front,
        xs,
        ys,
        colour=colour,
        split=split,
        bars=_error_bars(ivs["models"] if ivs else {}, [i.id for i in front], xs, ys, x, y),
    )
    if snap.constraints and show_all:  # always present (maybe empty): replay frames update it by index
        ix, iy = _xy(snap, infeasible, x, y, split)
        fig.add_trace(
            go.Scatter(
                x=ix,
                y=iy,
                mode="markers",
                name=f"{INFEASIBLE}, {split}",
                customdata=[i.id for i in infeasible],
                marker=dict(symbol="x", size=7, color=COLOURS["infeasible"]),
                hovertext=_hover(snap, infeasible, split),
                hoverinfo="text",
            )
        )
    _add_baselines(fig, baselines, x, y, split, ivs)
    if meets is not None:
        mx, my = _xy(snap, meets, x, y, split)
        fig.add_trace(
            go.Scatter(
                x=mx,
                y=my,
                mode="markers",
                name=MEETS,
                customdata=[i.id for i in meets],
                marker=dict(symbol="circle-open", size=19, line=dict(width=2.5, color=COLOURS["meets"])),
                hovertext=_hover(snap, meets, split, " meets all constraints"),
                hoverinfo="text",
            )
        )
    _add_selected(fig, snap, selected, x, y, split)
    for c in constraints:
        if c.metric in (x, y):
            _shade_excluded(fig, c, "x" if c.metric == x else "y")
    _autorange(fig, snap, x, y, split, generation, show_all, baselines)
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
    return fig


def _add_evaluated(
    fig: go.Figure, snap: Snapshot, x: str, y: str, split: str, generation: int | None
) -> list[Individual]:
    """The faded layer of every model evaluated so far (the feasible ones, with recipe
    constraints); returns the infeasible ones on `split`, drawn later as their own layer."""
    pts, infeasible = snap.evaluated(generation), []
    if snap.constraints:  # feasibility on the split shown; selection used validation
        ok = snap.feasible(pts, split)
        infeasible = [i for i, k in zip(pts, ok) if not k]
        pts = [i for i, k in zip(pts, ok) if k]
    xs, ys = _xy(snap, pts, x, y, split)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=ALL + (" (feasible)" if snap.constraints else ""),
            customdata=[i.id for i in pts],
            marker=dict(size=6, color=COLOURS["all"]),
            hovertext=_hover(snap, pts, split),
            hoverinfo="text",
        )
    )
    return infeasible


def _add_indistinguishable(
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
        cx, cy = _xy(snap, [snap.individuals[i] for i in close], x, y, split)
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


def _add_front(
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
    # them by a line there would draw a misleading staircase.
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+lines" if split == "val" else "markers",
            name=name,
            customdata=[i.id for i in front],
            marker=marker,
            line=dict(color=COLOURS["front"], width=1.5, dash="dot"),
            hovertext=_hover(snap, front, split),
            hoverinfo="text",
            **bars,
        )
    )


def _add_baselines(
    fig: go.Figure, baselines: Sequence[dict[str, Any]], x: str, y: str, split: str, ivs: dict[str, Any] | None
) -> None:
    """One marker layer per baseline method of baselines.csv, with its test intervals when shown."""
    for k, (method, rows) in enumerate(_group_baselines(baselines).items()):
        bx = [r["metrics"].get(split, {}).get(x, float("nan")) for r in rows]
        by = [r["metrics"].get(split, {}).get(y, float("nan")) for r in rows]
        fig.add_trace(
            go.Scatter(
                x=bx,
                y=by,
                mode="markers",
                name=f"baseline: {method}",
                customdata=[f"baseline:{r['id']}" for r in rows],
                marker=dict(symbol=BASELINE_SYMBOLS[k % len(BASELINE_SYMBOLS)], size=10, line=dict(width=1)),
                hovertext=[
                    f"<b>{method}</b> {r['id']}<br>{x}: {_fmt(a)}<br>{y}: {_fmt(b)}" for r, a, b in zip(rows, bx, by)
                ],
                hoverinfo="text",
                **_error_bars(
                    ivs.get("baselines", {}) if ivs else {},
                    [r["id"] for r in rows],
                    np.asarray(bx, float),
                    np.asarray(by, float),
                    x,
                    y,
                ),
            )
        )


def _add_selected(fig: go.Figure, snap: Snapshot, selected: Sequence[str], x: str, y: str, split: str) -> None:
    """Stars on the open model and the compared ones (A, B)."""
    chosen = [snap.individuals[i] for i in selected if i in snap.individuals]
    if chosen:
        sx, sy = _xy(snap, chosen, x, y, split)
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
                hovertext=_hover(snap, chosen, split),
                hoverinfo="text",
            )
        )


def _shade_excluded(fig: go.Figure, c: Constraint, axis: str) -> None:
    """Shade the region a bound on a plotted axis excludes, with a dashed line at the bound."""
    far = dict(x=("x0", "x1"), y=("y0", "y1"))[axis]
    rect = {
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
    line = dict(
        type="line",
        line=dict(color="rgba(200,0,0,0.6)", dash="dash", width=1.5),
        xref="x" if axis == "x" else "paper",
        yref="y" if axis == "y" else "paper",
    )
    line.update(x0=c.bound, x1=c.bound, y0=0, y1=1) if axis == "x" else line.update(y0=c.bound, y1=c.bound, x0=0, x1=1)
    fig.add_shape(line)


def _error_bars(
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


def _autorange(fig, snap, x, y, split, generation, show_all, baselines) -> None:
    """Fix the axes to the data so constraint shading (drawn to ±1e9) does not stretch them."""
    pts = snap.evaluated(generation) if show_all else snap.front(generation)
    xs, ys = _xy(snap, pts, x, y, split)
    for r in baselines:
        xs = np.append(xs, r["metrics"].get(split, {}).get(x, np.nan))
        ys = np.append(ys, r["metrics"].get(split, {}).get(y, np.nan))
    for axis, vals in (("x", xs), ("y", ys)):
        vals = vals[np.isfinite(vals)]
        if len(vals):
            lo, hi = float(vals.min()), float(vals.max())
            pad = (hi - lo) * 0.06 or 0.01
            fig.update_layout({f"{axis}axis": {"range": [lo - pad, hi + pad]}})


def _group_baselines(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return out


def hv_figure(snap: Snapshot, generation: int | None = None, height: int = 240) -> go.Figure:
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


def lineage_figure(lineage: dict[str, Any], height: int | None = None) -> go.Figure:
    """Ancestors laid out by generation (x) with edges labelled by operator, arguments and seed."""
    nodes = lineage["nodes"]
    by_gen: dict[Any, list[dict]] = {}
    for n in nodes:
        by_gen.setdefault(n["generation"], []).append(n)
    pos = {}
    for gen, members in by_gen.items():
        for k, n in enumerate(sorted(members, key=lambda n: n["id"])):
            pos[n["id"]] = (gen if gen is not None else -1, k - (len(members) - 1) / 2)
    fig = go.Figure()
    ex, ey, mx, my, mtext = [], [], [], [], []
    for e in lineage["edges"]:
        (x0, y0), (x1, y1) = pos[e["parent"]], pos[e["child"]]
        ex += [x0, x1, None]
        ey += [y0, y1, None]
        mx.append((x0 + x1) / 2)
        my.append((y0 + y1) / 2)
        mtext.append(f"{e['parent']} → {e['child']}<br>{e['label'].replace('; ', '<br>')}")
    fig.add_trace(
        go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#aaa", width=1), hoverinfo="skip", showlegend=False)
    )
    fig.add_trace(
        go.Scatter(
            x=mx,
            y=my,
            mode="markers",
            marker=dict(size=7, color="#aaa", symbol="diamond"),
            hovertext=mtext,
            hoverinfo="text",
            showlegend=False,
            name="edges",
        )
    )
    root_ids = set(lineage["roots"])
    fig.add_trace(
        go.Scatter(
            x=[pos[n["id"]][0] for n in nodes],
            y=[pos[n["id"]][1] for n in nodes],
            mode="markers+text",
            text=[n["id"] for n in nodes],
            textposition="top center",
            textfont=dict(size=9),
            customdata=[n["id"] for n in nodes],
            showlegend=False,
            name="models",
            marker=dict(
                size=[14 if i == 0 else 9 for i in range(len(nodes))],
                color=[
                    "#f1c40f" if i == 0 else ("#7dcea0" if n["id"] in root_ids else "#5dade2")
                    for i, n in enumerate(nodes)
                ],
                line=dict(width=1, color="#333"),
            ),
            hovertext=[f"<b>{n['id']}</b> (gen {n['generation']})<br>" + "<br>".join(n["steps"]) for n in nodes],
            hoverinfo="text",
        )
    )
    if len(lineage["edges"]) <= 4:  # a short ancestry: name the operator on the graph too
        for e, x, y in zip(lineage["edges"], mx, my):
            short = e["label"].split("; ")[0].split(" seed ")[0] if e["label"] else ""
            fig.add_annotation(x=x, y=y, text=short, showarrow=False, font=dict(size=9, color="#555"), yshift=-12)
    width_rows = max((len(m) for m in by_gen.values()), default=1)
    fig.update_layout(
        height=height or min(520, 140 + 55 * width_rows),
        margin=dict(l=20, r=20, t=10, b=35),
        plot_bgcolor="white",
        xaxis=dict(
            title="generation",
            dtick=1,
            gridcolor="#f2f2f2",
            range=[min(p[0] for p in pos.values()) - 0.5, max(p[0] for p in pos.values()) + 0.5],
        ),
        yaxis=dict(visible=False, range=[-(width_rows / 2) - 0.6, width_rows / 2 + 0.6]),
    )
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
