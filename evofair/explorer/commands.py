"""The `explore`, `export` and `report` subcommands, added to the CLI by `add_commands(sub)`.

Kept here (not in evofair/cli.py) so the CLI module only gains one call; the handlers import
Dash/plotly lazily, so `evofair run` never pays for them.
"""

from __future__ import annotations

import argparse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {port}")
    return port


def _cmd_explore(args) -> int:
    import logging

    from evofair.explorer import serve

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    serve(args.dir, host=args.host, port=args.port, allow_hosts=args.allow_host or ())
    return 0


def _cmd_export(args) -> int:
    from evofair.explorer.export import export_model, summary

    to = export_model(args.dir, args.id, args.to)
    print(f"evofair: {summary(to)}")
    return 0


def _cmd_report(args) -> int:
    from evofair.explorer.static_report import write_report

    out = write_report(args.dir, args.out)
    print(f"evofair: wrote {out}")
    return 0


def add_commands(sub) -> None:
    explore = sub.add_parser("explore", help="browse a run's Pareto front in the browser (read-only, live)")
    explore.add_argument("dir", help="run directory (may still be running)")
    explore.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    explore.add_argument("--port", type=_port, default=8050, help="port (default 8050; 0 picks a free one)")
    explore.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="another name the page may be reached by (a DNS alias, a proxy), besides this machine's names; repeatable",
    )
    explore.set_defaults(fn=_cmd_explore)
    export = sub.add_parser(
        "export", help="write one model of a run (weights, model card, loadable model) to a new directory"
    )
    export.add_argument("dir", help="run directory")
    export.add_argument("id", help="individual id, e.g. g0005i0012 (see front.csv)")
    export.add_argument("--to", required=True, metavar="PATH", help="directory to create (must not exist or be empty)")
    export.set_defaults(fn=_cmd_export)
    report = sub.add_parser("report", help="write a static HTML report of a run (no server needed)")
    report.add_argument("dir", help="run directory")
    report.add_argument(
        "--out", metavar="FILE", help="new HTML file to write, never an existing one (default DIR/report.html)"
    )
    report.set_defaults(fn=_cmd_report)
