"""A loopback HTTP endpoint that misbehaves on purpose, shared by the tests of bounded network waits.

Only 127.0.0.1, only for a bounded time: the accepting thread stops by itself after `seconds`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


@contextlib.contextmanager
def serving(handler, seconds: float = 60):
    """A listening socket on 127.0.0.1 whose accepted connections `handler(conn)` deals with, in a
    daemon thread that stops taking connections after `seconds` (bounded, whatever the test does)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held, stop = [], threading.Event()

    def loop():
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            handler(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
