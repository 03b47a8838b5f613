"""Explorer limits (issue 15 item 7): request bodies are capped (413); binding to 0.0.0.0 keeps
the Host check (this machine's names, `--allow-host` names); any loopback address, '127.1'
included, counts as loopback (no false warning, export stays on)."""

from __future__ import annotations

from pathlib import Path

import pytest

import evofair

ZDT = {"name": "zdt-explore", "problem": {"name": "zdt1", "args": {"n_var": 4}},
       "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 2},
       "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}}, "hv_ref": [1.1, 1.1]}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("limits") / "zdt"
    evofair.run(ZDT, out, progress=False)
    return out


# -- item 7: explorer limits --------------------------------------------------------------------
def test_explorer_caps_request_bodies(finished_run):
    from evofair.explorer import create_server

    srv = create_server(finished_run, port=0)
    try:
        client = srv.app.server.test_client()
        host = {"Host": f"127.0.0.1:{srv.port}", "Content-Type": "application/json"}
        big = b'{"output": "' + b"x" * 2_000_000 + b'"}'
        assert client.post("/_dash-update-component", data=big, headers=host).status_code == 413
        small = client.post("/_dash-update-component", data=b"{}", headers=host)
        assert small.status_code not in (403, 413)
    finally:
        srv.stop()


def test_wildcard_bind_keeps_the_host_check(finished_run):
    import socket

    from evofair.explorer import create_server

    srv = create_server(finished_run, host="0.0.0.0", port=0, allow_hosts=["evo.example.org"])
    try:
        client = srv.app.server.test_client()
        status = lambda name: client.get("/", headers={"Host": f"{name}:{srv.port}"}).status_code  # noqa: E731
        assert status("rebind.attacker.example") == 403
        assert status("127.0.0.1") == 200 and status("localhost") == 200
        assert status(socket.gethostname()) == 200
        assert status("evo.example.org") == 200
        assert status("evo.example.org:1") == 403  # a wrong port is refused too
    finally:
        srv.stop()


@pytest.mark.parametrize("host, loopback", [("127.1", True), ("127.0.0.2", True), ("::1", True),
                                            ("localhost", True), ("::ffff:127.0.0.1", True),
                                            ("0.0.0.0", False), ("10.1.2.3", False), ("example.org", False)])
def test_any_loopback_address_counts_as_loopback(host, loopback):
    from evofair.explorer.server import is_loopback

    assert is_loopback(host) is loopback


def test_short_loopback_address_serves_with_export_on(finished_run):
    from evofair.explorer import create_server

    srv = create_server(finished_run, host="127.1", port=0)
    try:
        assert srv.host == "127.0.0.1"
        assert srv.app.server.test_client().get("/", headers={"Host": f"127.1:{srv.port}"}).status_code == 200
        layout = srv.app.layout()
        stack = [layout]
        while stack:
            node = stack.pop()
            if getattr(node, "id", None) == "export-btn":
                assert node.disabled is False
            children = getattr(node, "children", None)
            stack.extend(c for c in (children if isinstance(children, (list, tuple)) else [children])
                         if hasattr(c, "to_plotly_json"))
    finally:
        srv.stop()
