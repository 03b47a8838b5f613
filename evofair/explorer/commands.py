"""The `explore`, `export` and `report` subcommands, added to the CLI by `add_commands(sub)`.

Kept here (not in evofair/cli.py) so the CLI module only gains one call; the handlers import
Dash/plotly lazily, so `evofair run` never pays for them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
    from evofair.lifecycle.stages import run_to_read

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    _check_host(args.host)
    args.dir = str(run_to_read(args.dir))  # a staged run (e.g. merge's hybrid rounds): its final stage
    serve(args.dir, host=args.host, port=args.port, allow_hosts=args.allow_host or (), trust_code=args.trust_code)
    return 0


def _check_host(host: str) -> None:
    """An address or name this machine resolves, else one line (werkzeug would print its own
    message and exit 1 instead)."""
    import socket

    from evofair.errors import UserError

    if not host.strip():
        raise UserError("--host: empty; expected an address to listen on (default 127.0.0.1)")
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        raise UserError(f"--host {host[:60]}: not an address or a name this machine resolves") from None


def _run_data(args, command: str):
    """The run as `command` reads it, with its note (e.g. a `module:` problem not imported) on stderr."""
    import sys

    from evofair.explorer.data import RunData

    data = RunData(args.dir, trust_code=args.trust_code)
    if data.note:
        print(f"evofair {command}: note: {data.note}", file=sys.stderr)
    return data


def _cmd_export(args) -> int:
    from evofair.explorer.export import check_target, export_model, summary
    from evofair.lifecycle.stages import run_to_read

    check_target(args.to)  # before the run is read: a bad --to is the only line
    args.dir = str(run_to_read(args.dir))  # a staged run: its final stage's models
    to = export_model(args.dir, args.id, args.to, data=_run_data(args, "export"))
    print(f"evofair: {summary(to)}")
    return 0


def _cmd_report(args) -> int:
    from evofair.analysis.run_check import refuse_damaged
    from evofair.explorer.static_report import write_report
    from evofair.lifecycle.stages import run_to_read

    _check_report_out(args.out)
    args.dir = str(run_to_read(args.dir))  # a staged run (e.g. merge's hybrid rounds): its final stage
    refuse_damaged(args.dir, "")  # a damaged or edited run is not reported as a result
    out = write_report(args.dir, args.out, data=_run_data(args, "report"))
    print(f"evofair: wrote {out}")
    return 0


def _check_report_out(out: str | None) -> None:
    """`report --out`: not empty text (the current folder) and a name the file system takes."""
    from evofair.errors import UserError

    if out is None:
        return
    if not out.strip():
        raise UserError("--out: empty; expected the HTML file to write (or no --out: DIR/report.html)")
    try:
        Path(out).expanduser().is_dir()
    except OSError as exc:  # e.g. a name longer than the file system takes
        raise UserError(f"--out {out[:57]}...: cannot be used ({exc.strerror or exc})") from None


def _trust_option(parser) -> None:
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="import the problem config.yaml names by `module:Class` (code from the run directory: "
        "only for folders you trust); without it the run is read from its store alone",
    )


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
    _trust_option(explore)
    explore.set_defaults(fn=_cmd_explore)
    export = sub.add_parser(
        "export", help="write one model of a run (weights, model card, loadable model) to a new directory"
    )
    export.add_argument("dir", help="run directory")
    export.add_argument("id", help="individual id, e.g. g0005i0012 (see front.csv)")
    export.add_argument("--to", required=True, metavar="PATH", help="directory to create (must not exist or be empty)")
    _trust_option(export)
    export.set_defaults(fn=_cmd_export)
    report = sub.add_parser("report", help="write a static HTML report of a run (no server needed)")
    report.add_argument("dir", help="run directory")
    report.add_argument(
        "--out", metavar="FILE", help="new HTML file to write, never an existing one (default DIR/report.html)"
    )
    _trust_option(report)
    report.set_defaults(fn=_cmd_report)
