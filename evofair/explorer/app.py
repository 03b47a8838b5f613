"""The Dash app: the front, its history, constraints, model cards, comparison and export.

Dash (on plotly) because it is what ML users already know and gives click events on plotly
points, a server-side Python callback model (the store is read in-process, read-only) and
`dcc.Interval` for following a run in progress. The page is `evofair.explorer.page_layout`, what
it shows for its inputs `evofair.explorer.page_view`, its callbacks `evofair.explorer.callbacks`
and `evofair.explorer.export_callbacks`.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from dash import Dash

from evofair.explorer.callbacks import register_reload_callbacks, register_selection_callbacks, register_view_callbacks
from evofair.explorer.data import RunData
from evofair.explorer.export_callbacks import register_export_callbacks
from evofair.explorer.page_layout import INDEX, page_layout


def build_app(data: RunData, *, interval_ms: int = 2000, allow_export: bool = True) -> Dash:
    """The explorer's Dash app on `data`: the page, polled every `interval_ms` for a live run, with
    export from the page only when `allow_export` (the server is bound to loopback)."""
    # Dash writes `title` into the page unescaped: a run name `</title><script>` would run
    app = Dash(
        __name__,
        title=escape(f"evofair explorer: {data.name}"),
        assets_folder=str(Path(__file__).parent / "_no_assets"),
        serve_locally=True,
        suppress_callback_exceptions=True,
        # Dash documents None (the tab title stays while a callback runs); its annotation says str
        update_title=None,  # type: ignore[arg-type]
    )
    app.index_string = INDEX
    app.layout = page_layout(data, interval_ms=interval_ms, allow_export=allow_export)
    register_reload_callbacks(app, data)
    register_view_callbacks(app, data)
    register_selection_callbacks(app, data)
    register_export_callbacks(app, data, allow_export)
    return app
