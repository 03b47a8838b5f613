"""Export from the page: the open model into a new directory, as `evofair export` does.

Its own module because it is the page's only action with an effect outside the run directory: it
is registered always (the button exists), and refuses unless the server is bound to loopback.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from evofair.errors import UserError
from evofair.explorer.data import RunData
from evofair.explorer.export import export_model, summary


def register_export_callbacks(app: Dash, data: RunData, allow_export: bool) -> None:
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
