"""Serving the explorer safely on a developer's machine.

The app is a local tool that can read a run and write exports, so the HTTP surface is kept to
what Dash itself needs:

- only Dash's own routes answer (`/`, `/_dash-*`, `/_favicon.ico`, `/_reload-hash`); everything
  else, including Dash's catch-all page route, `/assets/…` and `/static/…`, is 404, and any path
  with a `..` segment (also percent-encoded) is 404 before routing;
- requests must name this server in `Host` (blocks DNS-rebinding pages from reaching a loopback
  server), and a POST carrying an `Origin` must come from the same host (blocks other web pages
  from driving callbacks, e.g. an export, through the user's browser);
- the default bind address is 127.0.0.1; binding elsewhere is allowed but disables export in the
  UI (the CLI's `evofair export` still works) and prints a warning.
"""

from __future__ import annotations

import ipaddress
import threading
from urllib.parse import unquote, urlsplit

from flask import abort, request

DASH_EXACT = {"/", "/_favicon.ico", "/_reload-hash", "/_dash-layout", "/_dash-dependencies",
              "/_dash-update-component"}
DASH_PREFIXES = ("/_dash-component-suites/",)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def path_allowed(raw_path: str) -> bool:
    """True for the paths Dash needs; False for traversal attempts and everything else."""
    path = raw_path
    for _ in range(3):  # undo double/triple percent-encoding before looking for '..'
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    if "\\" in path or "\x00" in path or any(seg == ".." for seg in path.split("/")):
        return False
    return path in DASH_EXACT or any(path.startswith(p) for p in DASH_PREFIXES)


def install_guard(server, *, host: str, port_ref: dict) -> None:
    """Register the request checks on the Flask `server` (port_ref["port"] is filled on bind)."""

    @server.before_request
    def _guard():
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        if not path_allowed(urlsplit(raw).path) or not path_allowed(request.path):
            abort(404)
        port = port_ref.get("port")
        if is_loopback(host) and port:
            names = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{host}:{port}"}
            if request.host not in names:
                abort(403)
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
            abort(403)


class ExplorerServer:
    """A threaded werkzeug server for the app; `port=0` picks a free port (tests)."""

    def __init__(self, app, host: str, port: int, port_ref: dict):
        from werkzeug.serving import make_server

        try:
            self._srv = make_server(host, port, app.server, threaded=True)
        except OSError as exc:
            from evofair.errors import UserError

            raise UserError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from None
        self.host = self._srv.server_address[0]
        self.port = self._srv.server_port
        port_ref["port"] = self.port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self._srv.serve_forever()

    def start(self) -> "ExplorerServer":
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True, name="evofair-explorer")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self._srv.shutdown()
            self._thread.join(timeout=5)
        self._srv.server_close()
