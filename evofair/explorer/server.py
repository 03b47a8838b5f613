"""Serving the explorer safely on a developer's machine.

The app is a local tool that can read a run and write exports, so the HTTP surface is kept to
what Dash itself needs:

- only Dash's own routes answer (`/`, `/_dash-*`, `/_favicon.ico`, `/_reload-hash`); everything
  else, including Dash's catch-all page route, `/assets/…` and `/static/…`, is 404, and any path
  with a `..` segment (also percent-encoded) is 404 before routing;
- requests must name this server in `Host` (blocks DNS-rebinding pages from reaching it): a
  loopback name, or, bound elsewhere (0.0.0.0 included), the machine's own names and addresses
  and those given with `--allow-host`; a POST carrying an `Origin` must come from the same host
  (blocks other web pages from driving callbacks, e.g. an export, through the user's browser);
- request bodies are capped at 1 MB (413), so a POST cannot make the server buffer gigabytes;
- a failure is the client's fault and answered as such, never 500 with a traceback: an unknown
  component-suite file is 404, a callback request Dash or a callback cannot use (malformed JSON, a
  number where a string belongs) is 400; the traceback goes to the `evofair.explorer` log at DEBUG,
  and anything else still is 500, logged with its traceback;
- the default bind address is 127.0.0.1; binding elsewhere is allowed but disables export in the
  UI (the CLI's `evofair export` still works) and prints a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from flask import abort, request
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, NotFound

if TYPE_CHECKING:
    from dash import Dash

    from evofair.explorer.data import RunData

DASH_EXACT = {"/", "/_favicon.ico", "/_reload-hash", "/_dash-layout", "/_dash-dependencies", "/_dash-update-component"}
DASH_PREFIXES = ("/_dash-component-suites/",)


MAX_BODY = 1_000_000  # bytes: Dash's callback requests are a few kB; anything larger is refused (413)


def _address(host: str):
    """The IP address `host` spells, also in the short IPv4 forms the C library accepts ('127.1')."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            addr = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped or addr


def is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    addr = _address(host)
    return bool(addr is not None and addr.is_loopback)


def allowed_host_names(host: str, extra: Iterable[str] = ()) -> set[str]:
    """Names a request's `Host` may carry for a server bound to `host` (without the port).

    Loopback: this machine's loopback names. Any other address, the wildcard 0.0.0.0/:: included:
    also the machine's own names and addresses, plus `--allow-host` names (a reverse proxy's, a
    DNS alias): a DNS-rebinding page reaches the server under *its* name, which is in none of these.
    """
    names = {"127.0.0.1", "localhost", "::1", host.strip("[]").lower()}
    addr = _address(host)
    if addr is not None:
        names.add(str(addr))
    if not is_loopback(host):
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
        except OSError:
            pass
    names |= {n.strip().strip("[]").lower() for n in extra if n.strip()}
    names.discard("0.0.0.0")
    names.discard("::")
    return names


def _split_host(header: str) -> tuple[str, int | None]:
    """('name', port) of a Host header: 'a:8050', '[::1]:8050', 'a' (port 80 implied)."""
    parts = urlsplit(f"//{header}")
    try:
        port = parts.port
    except ValueError:
        return "", -1
    return (parts.hostname or "").lower(), port


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


def install_guard(server, *, host: str, port_ref: dict, allow_hosts: Iterable[str] = ()) -> None:
    """Register the request checks on the Flask `server` (port_ref["port"] is filled on bind)."""
    names = allowed_host_names(host, allow_hosts)
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # also bounds a body sent without Content-Length

    @server.before_request
    def _guard():
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        if not path_allowed(urlsplit(raw).path) or not path_allowed(request.path):
            abort(404)
        if request.content_length is not None and request.content_length > MAX_BODY:
            abort(413)
        port = port_ref.get("port")
        if port:
            name, got_port = _split_host(request.host)
            if name not in names or (got_port or 80) != port:
                abort(403)
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
            abort(403)

    server.register_error_handler(Exception, _client_error)


def _client_error(exc: Exception):
    """404 / 400 for what a request got wrong (see the module's notes), 500 only for the rest."""
    if isinstance(exc, HTTPException):
        return exc
    log = logging.getLogger("evofair.explorer")
    path = request.path
    if any(path.startswith(p) for p in DASH_PREFIXES):
        log.debug("%s: not served (%s)", path, type(exc).__name__, exc_info=exc)
        return NotFound()
    if path == "/_dash-update-component":
        log.debug("a callback request could not be used (%s: %s)", type(exc).__name__, exc, exc_info=exc)
        return BadRequest(f"callback request not usable ({type(exc).__name__})")
    log.error("%s %s failed", request.method, path, exc_info=exc)
    return InternalServerError()


class ExplorerServer:
    """A threaded werkzeug server for the app; `port=0` picks a free port (tests). Holds the Dash
    `app` and the `data` it reads, for callers that talk to them directly (tests, the CLI's notes)."""

    def __init__(self, app: Dash, data: RunData, host: str, port: int, port_ref: dict):
        self.app, self.data = app, data
        from werkzeug.serving import make_server

        try:
            self._srv = make_server(host, port, app.server, threaded=True)
        except OSError as exc:
            from evofair.errors import UserError

            raise UserError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from None
        address = self._srv.server_address[0]  # bytes only for a Unix socket, never bound here
        self.host = address.decode() if isinstance(address, bytes) else address
        self.port = self._srv.server_port
        port_ref["port"] = self.port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self._srv.serve_forever()

    def start(self) -> ExplorerServer:
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True, name="evofair-explorer")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self._srv.shutdown()
            self._thread.join(timeout=5)
        self._srv.server_close()
