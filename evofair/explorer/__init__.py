"""The interactive Pareto-front explorer (`evofair explore`), the static HTML report
(`evofair report`) and the read-only data layer they and `evofair export` share.

Importing this package is cheap: Dash and plotly are imported by the modules that draw. The
modules depend one way: lineage ← snapshot ← data (the run reader, `evofair.analysis.run_reader`,
with live snapshots) ← model_card ← export. The figures: interval_overlap ← front_layers ←
front_figure ← history_figures, and lineage_figure. The page: cards (model card, comparison,
ranking), page_layout, page_view (what the inputs select) ← callbacks, export_callbacks ← app.
`create_server` puts the app behind `server`'s guard; static_report uses data and the figures.
Nothing imports app.
"""

from evofair.explorer.data import Constraint, RunData, Snapshot, open_store

__all__ = ["Constraint", "RunData", "Snapshot", "open_store", "create_server", "start", "serve", "weights_warning"]


def weights_warning(data) -> str | None:
    """A warning naming the front models whose weights file is missing or fails its hash (a run
    directory edited or damaged since it was written), or None. Only the front is hashed: it is
    what a reader of the page acts on, and it stays small however long the run."""
    snap = data.refresh()
    front = snap.front()
    with data.store() as store:
        bad = set(store.failed_weights(i.weights_hash for i in front))
    ids = [i.id for i in front if i.weights_hash in bad]
    if not ids:
        return None
    return (
        f"{len(ids)} front model(s) have weights that are missing or fail their hash (the run directory was "
        f"damaged or edited; `evofair verify` lists them): {', '.join(ids[:10])}" + (" ..." if len(ids) > 10 else "")
    )


def create_server(
    run_dir,
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    interval_ms: int = 2000,
    problem=None,
    allow_hosts=(),
    trust_code: bool = False,
):
    """The explorer app for `run_dir`, bound to host:port (port 0: a free one), not yet serving.
    The returned server has `.url`, `.app` (Dash), `.data` (RunData), `.start()`, `.stop()`.
    `trust_code`: import a problem config.yaml names by `module:Class` (else shown from the store)."""
    from evofair.explorer.app import build_app
    from evofair.explorer.server import ExplorerServer, install_guard, is_loopback

    data = RunData(run_dir, problem=problem, trust_code=trust_code)
    app = build_app(data, interval_ms=interval_ms, allow_export=is_loopback(host))
    port_ref: dict = {}
    install_guard(app.server, host=host, port_ref=port_ref, allow_hosts=allow_hosts)
    srv = ExplorerServer(app, data, host, port, port_ref)
    return srv


def start(run_dir, **kwargs):
    """`create_server(...)` serving from a background thread (tests, notebooks)."""
    return create_server(run_dir, **kwargs).start()


def serve(run_dir, *, host: str = "127.0.0.1", port: int = 8050, allow_hosts=(), trust_code: bool = False) -> None:
    """Serve the explorer in the foreground until Ctrl-C (the CLI)."""
    import sys

    from evofair.explorer.server import is_loopback

    srv = create_server(run_dir, host=host, port=port, allow_hosts=allow_hosts, trust_code=trust_code)
    if not is_loopback(host):
        print(
            f"evofair explore: warning: listening on {host}, reachable from other machines; "
            "export from the page is off",
            file=sys.stderr,
        )
    if srv.data.note:
        print(f"evofair explore: note: {srv.data.note}", file=sys.stderr)
    warning = weights_warning(srv.data)
    if warning:
        print(f"evofair explore: warning: {warning}", file=sys.stderr)
    print(f"evofair explore: {srv.data.root} at {srv.url} (read-only; Ctrl-C to stop)", flush=True)
    srv.serve_forever()
