"""The interactive Pareto-front explorer (`evofair explore`), the static HTML report
(`evofair report`) and the read-only data layer they and `evofair export` share.

Importing this package is cheap: Dash and plotly are imported by the modules that draw.
"""

from evofair.explorer.data import Constraint, RunData, Snapshot, open_store

__all__ = ["Constraint", "RunData", "Snapshot", "open_store", "create_server", "start", "serve"]


def create_server(run_dir, *, host: str = "127.0.0.1", port: int = 8050, interval_ms: int = 2000, problem=None):
    """The explorer app for `run_dir`, bound to host:port (port 0: a free one), not yet serving.
    The returned server has `.url`, `.app` (Dash), `.data` (RunData), `.start()`, `.stop()`."""
    from evofair.explorer.app import build_app
    from evofair.explorer.server import ExplorerServer, install_guard, is_loopback

    data = RunData(run_dir, problem=problem)
    app = build_app(data, interval_ms=interval_ms, allow_export=is_loopback(host))
    port_ref: dict = {}
    install_guard(app.server, host=host, port_ref=port_ref)
    srv = ExplorerServer(app, host, port, port_ref)
    srv.app, srv.data = app, data
    return srv


def start(run_dir, **kwargs):
    """`create_server(...)` serving from a background thread (tests, notebooks)."""
    return create_server(run_dir, **kwargs).start()


def serve(run_dir, *, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve the explorer in the foreground until Ctrl-C (the CLI)."""
    import sys

    from evofair.explorer.server import is_loopback

    srv = create_server(run_dir, host=host, port=port)
    if not is_loopback(host):
        print(f"evofair explore: warning: listening on {host}, reachable from other machines; "
              "export from the page is off", file=sys.stderr)
    if srv.data.note:
        print(f"evofair explore: note: {srv.data.note}", file=sys.stderr)
    print(f"evofair explore: {srv.data.root} at {srv.url} (read-only; Ctrl-C to stop)", flush=True)
    srv.serve_forever()
