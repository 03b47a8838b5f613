"""The explorer's page: its stylesheet, the three panels (controls, the front, the open model) and
the layout function Dash calls on each page load.

The layout is a function, so a page load always builds its menus from the store as it is now; the
ids given here are what `evofair.explorer.callbacks` and `evofair.explorer.export_callbacks`
listen to and write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dash import dcc, html

from evofair.explorer.data import RunData
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


def _options(names: Sequence[str], snap: Snapshot) -> list[dict[str, str]]:
    """Dropdown options of metric names, objectives marked."""
    return [{"label": n + (" (objective)" if n in snap.objective_names else ""), "value": n} for n in names]


def slider_marks(last: int) -> dict[int, str]:
    """About ten labelled generations on the slider, always the last one."""
    step = max(1, round((last + 1) / 10))
    marks = {g: str(g) for g in range(0, last + 1, step)}
    marks[last] = str(last)
    return marks


def run_status(data: RunData, snap: Snapshot) -> tuple[str, str]:
    """The header badge: its text (live or finished, generations, models) and its CSS class."""
    gens = 0 if snap.last_generation is None else snap.last_generation + 1
    planned = data.planned_generations
    of = f" of {planned}" if planned else ""
    if data.in_progress(snap):
        return f"● live: {gens}{of} generations, {len(snap.individuals)} models (refreshing)", "badge live"
    return f"finished: {gens}{of} generations, {len(snap.individuals)} models", "badge"


def _axes(snap: Snapshot) -> list:
    """The x / y menus; with three or more objectives a note instead (the front figure is then a
    scatter matrix of every pair) and the menus kept, hidden, for the callbacks that read them."""
    names, objs = snap.metric_names, snap.objective_names
    matrix = len(objs) >= 3  # the front figure draws every pair of objectives: no axes to pick
    axes = html.Div(
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
        ],
        style={"display": "none"} if matrix else None,
    )
    note = html.P(
        f"{len(objs)} objectives: the front is drawn as a scatter matrix, every pair in its own panel",
        id="matrix-note",
        className="muted",
    )
    return [note, axes] if matrix else [axes]


def _controls(snap: Snapshot) -> html.Div:
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
            *_axes(snap),
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
                        id="generation",
                        min=0,
                        max=last,
                        step=1,
                        value=last,
                        marks=slider_marks(last),
                        updatemode="drag",
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


def page_layout(data: RunData, *, interval_ms: int, allow_export: bool) -> Callable[[], html.Div]:
    """The layout as a function, so each page load builds its menus from the store as it is now."""

    def layout() -> html.Div:
        snap = data.refresh()
        label, badge = run_status(data, snap)
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
