"""The lineage figure of a model card: ancestors laid out by generation, edges labelled by how each
child was made (`evofair.explorer.lineage.ancestry` gives the graph).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


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
