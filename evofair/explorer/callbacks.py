"""The page's callbacks: following a live run, redrawing the front and ranking for the current
inputs, and opening and comparing models. Exporting is `evofair.explorer.export_callbacks`.

Every callback reads the store in-process and read-only (through `RunData`); none writes.
"""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, html
from dash.exceptions import PreventUpdate

from evofair.errors import UserError
from evofair.explorer import cards
from evofair.explorer.data import RunData
from evofair.explorer.front_figure import front_figure
from evofair.explorer.history_figures import hv_figure
from evofair.explorer.page_layout import run_status, slider_marks
from evofair.explorer.page_view import current_view, front_summary


def clicked_id(click: dict[str, Any] | None) -> str | None:
    """The id of the model a click on a plotly point hit (its `customdata`), or None."""
    points = (click or {}).get("points") or [{}]
    return points[0].get("customdata")


def register_reload_callbacks(app: Dash, data: RunData) -> None:
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
        label, badge = run_status(data, snap)
        return (
            snap.version,
            label,
            badge,
            last,
            slider_marks(last),
            last if follow else gen_value,
            sorted(snap.individuals),
        )


VIEW = [
    Input("version", "data"),
    Input("generation", "value"),
    Input({"type": "bound", "metric": ALL}, "value"),
    Input("scope", "value"),
    Input("split", "value"),
    Input("rank-by", "value"),
]


def register_view_callbacks(app: Dash, data: RunData) -> None:
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
        return fig, front_summary(data, view, split, selected), hv_figure(snap, g)

    # Separate from on_view so that selecting or comparing models does not rebuild the table
    # (whose buttons the user may be about to click).
    @app.callback(Output("ranked", "children"), *VIEW)
    def on_ranked(_v, generation, bound_values, scope, split, rank_by):
        view = current_view(data, generation, bound_values, ctx.inputs_list[2], scope, split, rank_by)
        return cards.ranking(view.snap, view.meets or [], len(view.scope), split, view.rank_by, bool(view.constraints))


def register_selection_callbacks(app: Dash, data: RunData) -> None:
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
            iid = clicked_id(click)
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
        iid = clicked_id(click)
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
