"""Explorer limits: request bodies are capped (413); binding to 0.0.0.0 keeps
the Host check (this machine's names, `--allow-host` names); any loopback address, '127.1'
included, counts as loopback (no false warning, export stays on)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from explorer_runs import walk_layout

import evofair
from evofair import cli
from evofair.explorer import create_server
from evofair.explorer.server import path_allowed

ZDT = {
    "name": "zdt-explore",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "hv_ref": [1.1, 1.1],
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("limits") / "zdt"
    evofair.run(ZDT, out, progress=False)
    return out


def test_explorer_caps_request_bodies(finished_run):
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

    srv = create_server(finished_run, host="0.0.0.0", port=0, allow_hosts=["evo.example.org"])
    try:
        client = srv.app.server.test_client()
        status = lambda name: client.get("/", headers={"Host": f"{name}:{srv.port}"}).status_code
        assert status("rebind.attacker.example") == 403
        assert status("127.0.0.1") == 200 and status("localhost") == 200
        assert status(socket.gethostname()) == 200
        assert status("evo.example.org") == 200
        assert status("evo.example.org:1") == 403  # a wrong port is refused too
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_any_loopback_address_counts_as_loopback(host, loopback):
    from evofair.explorer.server import is_loopback

    assert is_loopback(host) is loopback


def test_short_loopback_address_serves_with_export_on(finished_run):
    srv = create_server(finished_run, host="127.1", port=0)
    try:
        assert srv.host == "127.0.0.1"
        assert srv.app.server.test_client().get("/", headers={"Host": f"127.1:{srv.port}"}).status_code == 200
        btn = next(c for c in walk_layout(srv.app.layout()) if getattr(c, "id", None) == "export-btn")
        assert btn.disabled is False
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/../evofair.sqlite",
        "/_dash-component-suites/dash/../../../evofair.sqlite",
        "/_dash-component-suites/dash/%2e%2e/%2e%2e/config.yaml",
        "/_dash-component-suites/dash/%252e%252e/x",
        "/assets/../config.yaml",
        "/static/../../evofair.sqlite",
        "/etc/passwd",
        "/config.yaml",
        "/weights/",
        "/_dash-component-suites/dash/..%5c..%5cconfig.yaml",
    ],
)
def test_crafted_paths_get_404(finished_run, path):
    assert not path_allowed(path)
    srv = create_server(finished_run, port=0)
    try:
        resp = srv.app.server.test_client().get(path, headers={"Host": f"127.0.0.1:{srv.port}"})
        assert resp.status_code == 404, (path, resp.status_code)
    finally:
        srv.stop()


def test_app_assets_are_served_and_foreign_hosts_and_origins_refused(finished_run):
    srv = create_server(finished_run, port=0)
    try:
        client = srv.app.server.test_client()
        host = {"Host": f"127.0.0.1:{srv.port}"}
        index = client.get("/", headers=host)
        assert index.status_code == 200
        scripts = re.findall(r'src="(/_dash-component-suites/[^"]+\.js)"', index.get_data(as_text=True))
        assert scripts and all(client.get(s, headers=host).status_code == 200 for s in scripts[:3])
        assert client.get("/", headers={"Host": f"evil.example:{srv.port}"}).status_code == 403
        resp = client.post("/_dash-update-component", json={}, headers={**host, "Origin": "http://evil.example"})
        assert resp.status_code == 403
    finally:
        srv.stop()


def test_binds_to_loopback_by_default(finished_run):
    args = cli.build_parser().parse_args(["explore", str(finished_run)])
    assert args.host == "127.0.0.1" and args.port == 8050
    srv = create_server(finished_run, port=0)
    try:
        assert srv.host == "127.0.0.1" and srv._srv.socket.getsockname()[0] == "127.0.0.1"
    finally:
        srv.stop()
    wide = create_server(finished_run, host="0.0.0.0", port=0)  # allowed, but then no export from the page
    try:
        layout = wide.app.layout()
        btn = next(c for c in walk_layout(layout) if getattr(c, "id", None) == "export-btn")
        assert btn.disabled is True
    finally:
        wide.stop()


def test_explore_rejects_a_missing_run_and_bad_ports(tmp_path, capsys):
    assert cli.main(["explore", str(tmp_path)]) == 2
    assert "not an evofair run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["explore", str(tmp_path), "--port", "70000"])
    assert exc.value.code == 2
