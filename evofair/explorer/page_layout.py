"""The Dash app: the front, its history, constraints, model cards, comparison and export.

Dash (on plotly) because it is what ML users already know and gives click events on plotly
points, a server-side Python callback model (the store is read in-process, read-only) and
`dcc.Interval` for following a run in progress. The layout is a function, so a page load always
builds its menus from the store as it is now.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import NamedTuple

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from evofair.core.constraints import Constraint
from evofair.core.individual import Individual
from evofair.errors import UserError
from evofair.explorer import cards
from evofair.explorer.data import RunData
from evofair.explorer.export import export_model, summary
from evofair.explorer.figures import front_figure, hv_figure, indistinguishable
from evofair.explorer.snapshot import Snapshot

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2d3d;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:baseline}
header h1{font-size:19px;margin:0} header .run{font-size:15px;opacity:.9}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;background:#566573}
.badge.live{background:#1e8449} .grid{display:grid;grid-template-columns:265px minmax(480px,1fr) 470px;gap:12px;padding:12px}
.panel{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 12px}
label.ctl{font-size:12px;font-weight:600;color:#555;display:block;margin:9px 0 3px}
.bound-row{display:flex;align-items:center;gap:6px;margin:4px 0;font-size:13px}
.bound-row span.name{width:92px;font-size:12.5px;overflow:hidden;text-overflow:ellipsis} .bound-row input{width:90px}
.tbl{border-collapse:collapse;font-size:12.5px;margin:4px 0 8px} .tbl th,.tbl td{border-bottom:1px solid #eee;padding:3px 7px;text-align:left}
.tbl td.num{text-align:right;font-variant-numeric:tabular-nums} .tbl.small{font-size:11.5px}
.muted{color:#777;font-size:12.5px} .warn{color:#a04000;font-size:12.5px}
.card h3{margin:2px 0 4px} .card h4{margin:14px 0 4px;font-size:14px} .steps{font-size:12.5px;margin:4px 0;padding-left:18px}
button.link{background:none;border:none;color:#1a5fb4;cursor:pointer;padding:0;font:inherit;text-decoration:underline}
.tbl td.better{color:#1e8449;font-weight:700} pre{font-size:11.5px;background:#f4f4f4;padding:6px;overflow:auto;max-height:320px}
.btn{padding:5px 10px;border:1px solid #1a5fb4;background:#1a5fb4;color:#fff;border-radius:4px;cursor:pointer;font-size:13px}
.btn.secondary{background:#fff;color:#1a5fb4} .export-row{display:flex;gap:6px;margin-top:6px} .export-row input{flex:1}
#front-summary{font-size:13px;color:#333;margin:2px 4px 6px}
"""

INDEX = (
    """<!DOCTYPE html><html><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}<style>"""
    + CSS
    + """</style></head><body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""
)


def _lbl(text: str) -> html.Label:
    return html.Label(text, className="ctl")


def _options(names, snap):
    return [{"label": n + (" (objective)" if n in snap.objective_names else ""), "value": n} for n in names]


def _marks(last: int) -> dict:
    step = max(1, round((last + 1) / 10))
    marks = {g: str(g) for g in range(0, last + 1, step)}
    marks[last] = str(last)
    return marks


def _status(data: RunData, snap) -> tuple[str, str]:
    gens = 0 if snap.last_generation is None else snap.last_generation + 1
    planned = data.planned_generations
    of = f" of {planned}" if planned else ""
    if data.in_progress(snap):
        return f"● live: {gens}{of} generations, {len(snap.individuals)} models (refreshing)", "badge live"
    return f"finished: {gens}{of} generations, {len(snap.individuals)} models", "badge"


def _clicked_id(click) -> str | None:
    points = (click or {}).get("points") or [{}]
    return points[0].get("customdata")


def _intervals_summary(data: RunData, snap, front, split: str, selected: str | None) -> list:
    """One line on the test intervals: shown as error bars, and how many front models the selected one
    cannot be told apart from."""
    ivs = data.intervals()
    if ivs is None:
        return [
            html.Span(
                " · no confidence intervals (the problem gives no per-example outputs)",
                id="intervals-note",
                className="muted",
            )
        ]
    if split != ivs["split"]:
        return [html.Span(f" · {ivs['level']:.0%} intervals: show the {ivs['split']} split", id="intervals-note")]
    text = f" · error bars: {ivs['level']:.0%} bootstrap intervals on {ivs['split']}"
    if selected and selected in ivs["models"]:
        close = indistinguishable(ivs, [i.id for i in front], selected, snap.objective_names)
        return [
            html.Span(
                text + f"; {len(close)} front model(s) indistinguishable from {selected} (shaded)",
                id="intervals-note",
                **{"data-indistinguishable": str(len(close))},
            )
        ]
    return [html.Span(text + "; open a front model to shade those indistinguishable from it", id="intervals-note")]


def _controls(snap) -> html.Div:
    """The left panel: axes, colour, split, layers, the user's bounds, ranking, open by id."""
    names, objs = snap.metric_names, snap.objective_names
    bounds = [
        html.Div(
            [
                html.Span(n, className="name", title=n),
                html.Span("≤" if snap.direction(n) == "min" else "≥"),
                dcc.Input(
                    id={"type": "bound", "metric": n},
                    name=f"bound-{n}",
                    type="number",
                    debounce=True,
                    placeholder="none",
                ),
            ],
            className="bound-row",
        )
        for n in names
    ]
    return html.Div(
        [
            _lbl("x axis"),
            dcc.Dropdown(id="x-metric", options=_options(names, snap), value=objs[0], clearable=False),
            _lbl("y axis"),
            dcc.Dropdown(
                id="y-metric",
                options=_options(names, snap),
                value=objs[1] if len(objs) > 1 else objs[0],
                clearable=False,
            ),
            _lbl("colour"),
            dcc.Dropdown(
                id="colour",
                options=_options(names, snap) + [{"label": "generation", "value": "generation"}],
                value=objs[2] if len(objs) > 2 else None,
                placeholder="none",
            ),
            _lbl("split shown"),
            dcc.RadioItems(
                id="split",
                options=[{"label": " validate", "value": "val"}, {"label": " test", "value": "test"}],
                value="val",
                inline=True,
            ),
            _lbl("layers"),
            dcc.Checklist(
                id="layers",
                options=[
                    {"label": " all evaluated models", "value": "all"},
                    {"label": " baselines", "value": "baselines"},
                ],
                value=["all", "baselines"],
            ),
            _lbl("constraints (on the split shown)"),
            *bounds,
            _lbl("constrain"),
            dcc.RadioItems(
                id="scope",
                options=[{"label": " front", "value": "front"}, {"label": " all evaluated", "value": "all"}],
                value="front",
                inline=True,
            ),
            _lbl("rank by"),
            dcc.Dropdown(
                id="rank-by", options=_options(names, snap), value=None, placeholder="the unconstrained objective"
            ),
            _lbl("open a model by id"),
            dcc.Dropdown(id="pick", options=sorted(snap.individuals), placeholder="type or choose an id…"),
        ],
        className="panel controls",
    )


def _main_panel(last: int) -> html.Div:
    """The middle panel: the front, the generation slider, HV per generation, the ranking."""
    return html.Div(
        [
            html.Div(id="front-summary"),
            dcc.Graph(id="front-graph", config={"displaylogo": False}, clear_on_unhover=True),
            html.Div(
                [
                    _lbl("generation (replays how the front moved)"),
                    dcc.Slider(
                        id="generation", min=0, max=last, step=1, value=last, marks=_marks(last), updatemode="drag"
                    ),
                ],
                style={"padding": "0 10px 8px"},
            ),
            dcc.Graph(id="hv-graph", config={"displaylogo": False}),
            html.H4("Models meeting the constraints"),
            html.Div(id="ranked"),
        ],
        className="panel",
    )


def _side_panel(allow_export: bool) -> html.Div:
    """The right panel: comparison and export buttons, the open model's card, the comparison."""
    export_row = [
        html.Div(
            [
                dcc.Input(
                    id="export-path", type="text", placeholder="/path/to/new/directory", disabled=not allow_export
                ),
                html.Button("Export", id="export-btn", className="btn", disabled=not allow_export),
            ],
            className="export-row",
        ),
        html.Div(
            id="export-status",
            className="muted",
            children=""
            if allow_export
            else "Export is off when serving beyond this machine; use `evofair export DIR ID --to PATH`.",
        ),
    ]
    return html.Div(
        [
            html.Div("The open model:", className="muted"),
            html.Div(
                [
                    html.Button("Add to comparison", id="add-compare", className="btn secondary"),
                    html.Button(
                        "Clear comparison", id="clear-compare", className="btn secondary", style={"marginLeft": "6px"}
                    ),
                ]
            ),
            *export_row,
            html.Div(
                id="card",
                children=html.P(
                    "Click a point of the front (or open a model by id) to see its card.", className="muted"
                ),
            ),
            html.H4("Compare"),
            html.Div(id="compare"),
        ],
        className="panel",
    )


def page_layout(data: RunData, *, interval_ms: int, allow_export: bool):
    """The layout as a function, so each page load builds its menus from the store as it is now."""

    def layout():
        snap = data.refresh()
        label, badge = _status(data, snap)
        return html.Div(
            [
                html.Header(
                    [
                        html.H1("evofair explorer"),
                        html.Span(f"{data.name} · {data.root}", className="run"),
                        html.Span(label, id="run-status", className=badge),
                    ]
                ),
                html.Div(
                    [_controls(snap), _main_panel(snap.last_generation or 0), _side_panel(allow_export)],
                    className="grid",
                ),
                dcc.Interval(id="tick", interval=interval_ms),
                dcc.Store(id="version", data=snap.version),
                dcc.Store(id="selected"),
                dcc.Store(id="compare-ids", data=[]),
            ]
        )

    return layout


class View(NamedTuple):
    """What the page shows for the current inputs: a generation's front and the user's bounds."""

    snap: Snapshot
    generation: int | None
    constraints: list[Constraint]
    front: list[Individual]
    scope: list[Individual]  # the models the bounds apply to (the front, or all evaluated)
    meets: list[Individual] | None  # those meeting every bound, best first (None: no bound set)
    rank_by: str


def current_view(data: RunData, generation, bound_values, bound_ids, scope, split, rank_by) -> View:
    snap = data.snapshot
    if generation is not None and snap.last_generation is not None:
        generation = min(int(generation), snap.last_generation)
    constraints = []
    for item, value in zip(bound_ids, bound_values):
        if value is not None and value != "":
            metric = item["id"]["metric"]
            constraints.append(Constraint(metric, "<=" if snap.direction(metric) == "min" else ">=", float(value)))
    front = snap.front(generation)
    scope_inds = front if scope == "front" else snap.evaluated(generation)
    meets = snap.satisfying(scope_inds, constraints, split, rank_by) if constraints else None
    rank_name = rank_by or next(
        (n for n in snap.objective_names if n not in {c.metric for c in constraints}), snap.objective_names[0]
    )
    return View(snap, generation, constraints, front, scope_inds, meets, rank_name)


def _front_summary(data: RunData, view: View, split: str, selected: str | None) -> html.Span:
    """The line above the front: its size, the recipe's and the user's constraints, the intervals."""
    snap, front, generation = view.snap, view.front, view.generation
    g = snap.last_generation if generation is None else generation
    if g is None:
        return html.Span("No generation committed yet: waiting for the run…", id="summary-text", **{"data-front": "0"})
    summary = [
        html.B(f"Generation {g}: front of {len(front)} models"),
        f" (selected on validation, drawn on {'test' if split == 'test' else 'validation'}) · "
        f"{len(snap.evaluated(generation))} models evaluated so far",
    ]
    if snap.constraints:  # the recipe's own constraints (selection was feasibility-first)
        n_ok = int(snap.feasible(front, split).sum())
        summary.append(
            html.Span(
                f" · recipe constraints {', '.join(map(str, snap.constraints))}: "
                f"{n_ok} of {len(front)} front models feasible on {split}"
                + (
                    " (nothing feasible: the least violating are shown)"
                    if front and not snap.feasible(front, "val").any()
                    else ""
                ),
                id="front-feasible",
                **{"data-feasible": str(n_ok)},
            )
        )
    if view.constraints:
        summary.append(f" · {', '.join(map(str, view.constraints))}: {len(view.meets)} of {len(view.scope)} meet all")
    summary += _intervals_summary(data, snap, front, split, selected)
    return html.Span(summary, id="summary-text", **{"data-front": str(len(front))})


def build_app(data: RunData, *, interval_ms: int = 2000, allow_export: bool = True) -> Dash:
    # Dash writes `title` into the page unescaped: a run name `</title><script>` would run
    app = Dash(
        __name__,
        title=escape(f"evofair explorer: {data.name}"),
        assets_folder=str(Path(__file__).parent / "_no_assets"),
        serve_locally=True,
        suppress_callback_exceptions=True,
        update_title=None,
    )
    app.index_string = INDEX
    app.layout = page_layout(data, interval_ms=interval_ms, allow_export=allow_export)
    _reload_callbacks(app, data)
    _view_callbacks(app, data)
    _selection_callbacks(app, data)
    _export_callbacks(app, data, allow_export)
    return app


def _reload_callbacks(app: Dash, data: RunData) -> None:
    """Following a live run: a new snapshot updates the status, the slider and the id list."""

    @app.callback(
        Output("version", "data"),
        Output("run-status", "children"),
        Output("run-status", "className"),
        Output("generation", "max"),
        Output("generation", "marks"),
        Output("generation", "value"),
        Output("pick", "options"),
        Input("tick", "n_intervals"),
        State("version", "data"),
        State("generation", "value"),
        State("generation", "max"),
        prevent_initial_call=True,
    )
    def on_tick(_n, version, gen_value, gen_max):
        snap = data.refresh()
        if snap.version == version:
            raise PreventUpdate
        last = snap.last_generation or 0
        follow = gen_value is None or gen_max is None or gen_value >= gen_max  # was at the newest: stay there
        label, badge = _status(data, snap)
        return snap.version, label, badge, last, _marks(last), last if follow else gen_value, sorted(snap.individuals)


VIEW = [
    Input("version", "data"),
    Input("generation", "value"),
    Input({"type": "bound", "metric": ALL}, "value"),
    Input("scope", "value"),
    Input("split", "value"),
    Input("rank-by", "value"),
]


def _view_callbacks(app: Dash, data: RunData) -> None:
    """The front figure, its summary line, HV per generation and the ranking of the user's bounds."""

    @app.callback(
        Output("front-graph", "figure"),
        Output("front-summary", "children"),
        Output("hv-graph", "figure"),
        *VIEW,
        Input("x-metric", "value"),
        Input("y-metric", "value"),
        Input("colour", "value"),
        Input("layers", "value"),
        Input("selected", "data"),
        Input("compare-ids", "data"),
    )
    def on_view(_v, generation, bound_values, scope, split, rank_by, x, y, colour, layers, selected, compare_ids):
        view = current_view(data, generation, bound_values, ctx.inputs_list[2], scope, split, rank_by)
        snap = view.snap
        chosen = [i for i in [*(compare_ids or []), selected] if i and not i.startswith("baseline:")]
        fig = front_figure(
            snap,
            x=x,
            y=y,
            colour=colour,
            split=split,
            generation=view.generation,
            show_all="all" in (layers or []),
            baselines=data.baselines() if "baselines" in (layers or []) else [],
            meets=view.meets,
            constraints=view.constraints,
            selected=list(dict.fromkeys(chosen)),
            intervals=data.intervals(),
        )
        g = snap.last_generation if view.generation is None else view.generation
        return fig, _front_summary(data, view, split, selected), hv_figure(snap, g)

    # Separate from on_view so that selecting or comparing models does not rebuild the table
    # (whose buttons the user may be about to click).
    @app.callback(Output("ranked", "children"), *VIEW)
    def on_ranked(_v, generation, bound_values, scope, split, rank_by):
        view = current_view(data, generation, bound_values, ctx.inputs_list[2], scope, split, rank_by)
        return cards.ranking(view.snap, view.meets or [], len(view.scope), split, view.rank_by, bool(view.constraints))


def _selection_callbacks(app: Dash, data: RunData) -> None:
    """Opening a model (a click, a ranked id, a lineage node, a typed id), its card, the comparison."""

    @app.callback(
        Output("selected", "data"),
        Input("front-graph", "clickData"),
        Input("pick", "value"),
        Input({"type": "open", "id": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def on_select(click, picked, _opens):
        trig = ctx.triggered_id
        if trig == "front-graph":
            iid = _clicked_id(click)
        elif trig == "pick":
            iid = picked
        elif isinstance(trig, dict) and ctx.triggered and ctx.triggered[0].get("value"):
            iid = trig["id"]
        else:
            raise PreventUpdate
        if not iid:
            raise PreventUpdate
        return iid

    # The lineage graph lives inside the card (created later), hence its own callback.
    @app.callback(
        Output("selected", "data", allow_duplicate=True), Input("lineage-graph", "clickData"), prevent_initial_call=True
    )
    def on_lineage_click(click):
        iid = _clicked_id(click)
        if not iid:
            raise PreventUpdate
        return iid

    @app.callback(Output("card", "children"), Input("selected", "data"), Input("version", "data"))
    def on_card(selected, _v):
        if not selected:
            raise PreventUpdate
        try:
            return cards.model_card(data, selected)
        except UserError as exc:
            return html.P(str(exc), className="warn")

    @app.callback(
        Output("compare-ids", "data"),
        Input("add-compare", "n_clicks"),
        Input("clear-compare", "n_clicks"),
        State("selected", "data"),
        State("compare-ids", "data"),
        prevent_initial_call=True,
    )
    def on_compare_ids(_add, _clear, selected, ids):
        if ctx.triggered_id == "clear-compare":
            return []
        if not selected or selected.startswith("baseline:"):
            raise PreventUpdate
        ids = [i for i in (ids or []) if i != selected] + [selected]
        return ids[-2:]

    @app.callback(Output("compare", "children"), Input("compare-ids", "data"), Input("version", "data"))
    def on_compare(ids, _v):
        return cards.comparison(data, ids or [])


def _export_callbacks(app: Dash, data: RunData, allow_export: bool) -> None:
    """Export from the page: the open model into a new directory, as `evofair export` does."""

    @app.callback(
        Output("export-status", "children"),
        Input("export-btn", "n_clicks"),
        State("selected", "data"),
        State("export-path", "value"),
        prevent_initial_call=True,
    )
    def on_export(_n, selected, path):
        if not allow_export:
            raise PreventUpdate
        if not selected or selected.startswith("baseline:"):
            return html.Span("Open an evolved model first.", className="warn")
        if not path or not path.strip():
            return html.Span("Type the directory to create.", className="warn")
        try:
            to = export_model(data.root, selected, Path(path.strip()).expanduser().resolve(), data=data)
        except UserError as exc:
            return html.Span(str(exc), className="warn", id="export-error")
        return html.Span(summary(to), id="export-done")
