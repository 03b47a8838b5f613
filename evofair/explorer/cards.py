"""HTML pieces of the explorer: the model card, the comparison and the constraint ranking.

Value cells carry `data-split`/`data-metric` attributes and the exact stored value in `title`, so
the page is checkable by a browser test (and a user hovering a rounded number sees all digits).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from evofair.core.individual import Individual
from evofair.explorer.data import RunData
from evofair.explorer.data_attributes import data_attributes
from evofair.explorer.lineage_figure import lineage_figure
from evofair.explorer.model_card import model_card_data
from evofair.explorer.snapshot import Snapshot


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if not math.isfinite(f) else f"{f:.4f}"


def _value_cell(v: Any, split: str, metric: str, className: str = "num", **extra: Any) -> html.Td:
    return html.Td(
        fmt(v),
        title=repr(float(v)) if v is not None else "",
        className=className,
        **data_attributes(split=split, metric=metric),
        **extra,
    )


def metrics_table(
    snap: Snapshot,
    metrics: dict[str, dict[str, float]],
    table_id: str | None = None,
    intervals: dict[str, Any] | None = None,
) -> html.Table:
    """Every metric on every split; with `intervals` (RunData.intervals_of) a column of test intervals."""
    splits = [s for s in snap.splits if s in metrics] or list(metrics)
    names = [n for n in snap.metric_names if any(n in metrics.get(s, {}) for s in splits)]
    bounds = (intervals or {}).get("metrics", {})
    head = html.Tr(
        [html.Th("metric")]
        + [html.Th(s) for s in splits]
        + ([html.Th(f"{intervals['split']} {intervals['level']:.0%} interval")] if intervals else [])
    )
    rows = []
    for n in names:
        is_obj = n in snap.objective_names
        label = f"{n} {'↓' if snap.direction(n) == 'min' else '↑'}" if is_obj else n
        extra = (
            [
                html.Td(
                    f"[{fmt(bounds[n][0])}, {fmt(bounds[n][1])}]" if n in bounds else "–",
                    className="num",
                    **data_attributes(interval=n),
                )
            ]
            if intervals
            else []
        )
        rows.append(
            html.Tr(
                [html.Td(html.B(label) if is_obj else label)]
                + [_value_cell(metrics.get(s, {}).get(n), s, n) for s in splits]
                + extra
            )
        )
    kw: dict[str, Any] = {"id": table_id} if table_id else {}
    return html.Table([html.Thead(head), html.Tbody(rows)], className="tbl", **kw)


def _rows_table(rows: Sequence[dict[str, Any]]) -> html.Table:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(c) for c in cols])),
            html.Tbody(
                [
                    html.Tr(
                        [html.Td(fmt(r.get(c)) if isinstance(r.get(c), float) else str(r.get(c, ""))) for c in cols]
                    )
                    for r in rows
                ]
            ),
        ],
        className="tbl",
    )


def problem_card_section(card: dict[str, Any]) -> list:
    out: list = [html.H4("Per-group metrics")]
    if card.get("problem_card_error"):
        return out + [html.P(card["problem_card_error"], className="warn")]
    sections = card.get("problem_card")
    if not sections:
        return out + [
            html.P(
                "This problem stores aggregate metrics only (table above). Problems that define "
                "model_card(individual, store) add per-group confusion numbers here.",
                className="muted",
            )
        ]
    for title, body in sections.items():
        out.append(html.H5(title))
        if isinstance(body, str):
            out.append(dcc.Markdown(body))
        elif isinstance(body, list) and body and isinstance(body[0], dict):
            out.append(_rows_table(body))
        else:
            out.append(html.Pre(json.dumps(body, indent=1, default=str)))
    return out


def constraints_section(card: dict[str, Any]) -> list:
    """The run's recipe constraints, this model's value on each split, and whether each holds."""
    rows = card.get("constraints") or []
    if not rows:
        return []
    splits = [s for s in ("val", "test") if s in rows[0]]
    head = html.Tr([html.Th("constraint")] + [html.Th(f"{s} value") for s in splits] + [html.Th(s) for s in splits])
    body = []
    for r in rows:
        body.append(
            html.Tr(
                [html.Td(html.Code(r["constraint"]))]
                + [_value_cell(r[s], s, r["metric"]) for s in splits]
                + [
                    html.Td(
                        "✓ satisfied" if r[f"satisfied_{s}"] else "✗ violated",
                        className="num better" if r[f"satisfied_{s}"] else "num warn",
                        **data_attributes(split=s, satisfied=str(r[f"satisfied_{s}"]).lower()),
                    )
                    for s in splits
                ],
                className="constraint-row",
                **data_attributes(constraint=r["constraint"]),
            )
        )
    verdict = (
        "feasible: satisfies every constraint on validation (where selection applied them)"
        if card["feasible"]
        else "infeasible: violates a constraint on validation"
    )
    return [
        html.H4("Recipe constraints"),
        html.P(
            verdict, className="muted", id="card-feasible", **data_attributes(feasible=str(card["feasible"]).lower())
        ),
        html.Table([html.Thead(head), html.Tbody(body)], className="tbl", id="card-constraints"),
    ]


def model_card(data: RunData, iid: str) -> html.Div:
    snap = data.snapshot
    if iid.startswith("baseline:"):
        return baseline_card(data, snap, iid.split(":", 1)[1])
    card = model_card_data(data, iid)
    lin = card["lineage"]
    facts = [
        f"generation {card['generation']}",
        f"seed {card['seed']}",
        "on the final front" if card["on_final_front"] else "not on the final front",
    ]
    if card["feasible"] is not None:
        facts.append("feasible" if card["feasible"] else "infeasible")
    if card["weights_sha256"]:
        facts.append(f"weights sha256 {card['weights_sha256'][:12]}…")
    edges = html.Table(
        [
            html.Thead(html.Tr([html.Th("parent"), html.Th("child"), html.Th("how (operator, args, seed)")])),
            html.Tbody(
                [html.Tr([html.Td(e["parent"]), html.Td(e["child"]), html.Td(e["label"])]) for e in lin["edges"]]
            ),
        ],
        className="tbl small",
    )
    lineage_note = f"{len(lin['nodes'])} models, {len(lin['edges'])} edges back to {len(lin['roots'])} root(s)" + (
        " — truncated to the nearest ancestors" if lin["truncated"] else ""
    )
    return html.Div(
        [
            html.H3(["Model ", html.Span(card["id"], id="card-id")]),
            html.P(" · ".join(facts), className="muted"),
            html.Ul([html.Li(s) for s in card["steps"]], className="steps"),
            html.H4("Objectives and metrics, every split"),
            metrics_table(snap, card["metrics"], table_id="card-metrics", intervals=card.get("intervals")),
            *constraints_section(card),
            *problem_card_section(card),
            html.H4("Lineage"),
            *(
                [html.P("An initial model (no parents): " + "; ".join(card["steps"]) + ".", className="muted")]
                if not lin["edges"]
                else [
                    html.P(
                        lineage_note + ". Yellow: this model; green: initial models. Hover an edge's ◆ for its "
                        "operator, arguments and seed; click a model to open it.",
                        className="muted",
                    ),
                    dcc.Graph(id="lineage-graph", figure=lineage_figure(lin), config={"displaylogo": False}),
                    html.Details([html.Summary("Lineage edges"), edges], open=len(lin["edges"]) <= 12),
                ]
            ),
            html.Details([html.Summary("Operator record (JSON)"), html.Pre(json.dumps(card["operator"], indent=1))]),
            html.Details([html.Summary("Resolved recipe (config.yaml)"), html.Pre(data.recipe_text())]),
        ],
        className="card",
        **data_attributes(id=card["id"]),
    )


def baseline_card(data: RunData, snap: Snapshot, bid: str) -> html.Div:
    row = next((r for r in data.baselines() if r["id"] == bid), None)
    if row is None:
        return html.Div(html.P(f"baseline {bid}: not found"), className="card")
    return html.Div(
        [
            html.H3(["Baseline ", html.Span(bid, id="card-id")]),
            html.P(f"method {row['method']} (from baselines.csv; not an evolved model, no lineage)", className="muted"),
            metrics_table(
                snap, row["metrics"], table_id="card-metrics", intervals=data.intervals_of(f"baseline:{bid}")
            ),
        ],
        className="card",
        **data_attributes(id=f"baseline:{bid}"),
    )


def comparison(data: RunData, ids: Sequence[str]) -> html.Div | html.P:
    snap = data.snapshot
    inds = [snap.individuals[i] for i in ids if i in snap.individuals]
    if len(inds) < 2:
        return html.P(
            "Open a model and press “Add to comparison” twice to compare two models side by side.", className="muted"
        )
    a, b = inds[-2], inds[-1]
    head = html.Tr([html.Th("metric"), html.Th("split"), html.Th(f"A {a.id}"), html.Th(f"B {b.id}"), html.Th("B − A")])
    rows = []
    for n in snap.metric_names:
        for s in snap.splits:
            va, vb = snap.value(a, n, s), snap.value(b, n, s)
            if not (math.isfinite(va) or math.isfinite(vb)):
                continue
            cls = {"A": "num", "B": "num"}
            if n in snap.objective_names and math.isfinite(va) and math.isfinite(vb) and va != vb:
                b_better = (vb < va) == (snap.direction(n) == "min")
                cls["B" if b_better else "A"] = "num better"
            rows.append(
                html.Tr(
                    [
                        html.Td(html.B(n) if n in snap.objective_names else n),
                        html.Td(s),
                        _value_cell(va, s, n, className=cls["A"], **data_attributes(model="A")),
                        _value_cell(vb, s, n, className=cls["B"], **data_attributes(model="B")),
                        html.Td(fmt(vb - va) if math.isfinite(va) and math.isfinite(vb) else "–", className="num"),
                    ]
                )
            )
    facts = html.Table(
        [
            html.Tbody(
                [
                    html.Tr([html.Td("generation"), html.Td(a.generation), html.Td(b.generation)]),
                    html.Tr(
                        [
                            html.Td("made by"),
                            html.Td(model_card_data(data, a.id, with_problem_card=False)["made_by"]),
                            html.Td(model_card_data(data, b.id, with_problem_card=False)["made_by"]),
                        ]
                    ),
                    html.Tr(
                        [html.Td("parents"), html.Td(", ".join(a.parents) or "–"), html.Td(", ".join(b.parents) or "–")]
                    ),
                ]
            )
        ],
        className="tbl small",
    )
    return html.Div(
        [
            html.Table([html.Thead(head), html.Tbody(rows)], className="tbl", id="compare-table"),
            html.P("Bold green: the better of the two on each objective.", className="muted"),
            facts,
        ]
    )


def _feasible_cell(ok: bool) -> html.Td:
    return html.Td(
        "feasible" if ok else "✗ infeasible",
        className="better" if ok else "warn",
        **data_attributes(feasible=str(ok).lower()),
    )


def ranking(
    snap: Snapshot,
    meets: Sequence[Individual],
    scope_size: int,
    split: str,
    rank_by: str,
    active: bool,
    limit: int = 15,
) -> html.Div | html.P:
    if not active:
        return html.P(
            "No constraint set: type bounds on the left (e.g. error ≤ 0.10) to highlight and rank models.",
            className="muted",
        )
    cols = [rank_by] + [n for n in snap.objective_names if n != rank_by]
    shown = list(meets[:limit])
    feasible = [bool(ok) for ok in snap.feasible(shown, split)] if snap.constraints else []
    head = html.Tr(
        [html.Th("#"), html.Th("model"), html.Th("gen")]
        + [html.Th(f"{c} ({split})") for c in cols]
        + ([html.Th(f"recipe constraints ({split})")] if snap.constraints else [])
    )
    body = [
        html.Tr(
            [
                html.Td(k + 1),
                html.Td(html.Button(i.id, id={"type": "open", "id": i.id}, className="link")),
                html.Td(i.generation),
            ]
            + [_value_cell(snap.value(i, c, split), split, c) for c in cols]
            + ([_feasible_cell(feasible[k])] if snap.constraints else []),
            className="ranked-row",
            **data_attributes(id=i.id),
        )
        for k, i in enumerate(shown)
    ]
    more = [html.P(f"… and {len(meets) - limit} more", className="muted")] if len(meets) > limit else []
    return html.Div(
        [
            html.P(
                f"{len(meets)} of {scope_size} models meet every constraint, best {rank_by} first:",
                id="meets-count",
                **data_attributes(count=str(len(meets))),
            ),
            html.Table([html.Thead(head), html.Tbody(body)], className="tbl", id="ranked-table"),
            *more,
        ]
    )
