"""The explorer answers what a request got wrong as the client's error (404, 400), never 500 with a
traceback: unknown component-suite files and callback requests with malformed inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evofair
from evofair.explorer import create_server

ZDT = {
    "name": "zdt-errors",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "hv_ref": [1.1, 1.1],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out: Path = tmp_path_factory.mktemp("errors") / "zdt"
    evofair.run(ZDT, out, progress=False)
    srv = create_server(out, port=0)
    try:
        yield srv, {"Host": f"127.0.0.1:{srv.port}", "Content-Type": "application/json"}
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "path",
    ["/_dash-component-suites/nope/x.js", "/_dash-component-suites/dash/nope.js", "/_dash-component-suites/plotly/x"],
)
def test_unknown_component_suite_files_are_404(server, path):
    srv, headers = server
    assert srv.app.server.test_client().get(path, headers=headers).status_code == 404


def _request(dep: dict, value) -> dict:
    """A callback request for `dep` whose every input and state holds `value`."""
    items = lambda specs: [{**spec, "value": value} for spec in specs]
    first = dep["inputs"][0]
    return {
        "output": dep["output"],
        "outputs": {"id": dep["output"].split(".")[0], "property": dep["output"].split(".")[-1]},
        "inputs": items(dep["inputs"]),
        "state": items(dep["state"]),
        "changedPropIds": [f"{first['id']}.{first['property']}"],
    }


@pytest.mark.parametrize("value", [5, {"a": 1}, [1, 2], 1e308, True])
def test_callback_inputs_of_the_wrong_type_are_400_not_500(server, value):
    srv, headers = server
    client = srv.app.server.test_client()
    deps = client.get("/_dash-dependencies", headers=headers).get_json()
    card = next(d for d in deps if d["output"] == "card.children")  # expects a model id (a string)
    assert (
        client.post("/_dash-update-component", data=json.dumps(_request(card, value)), headers=headers).status_code
        == 400
    )
    for dep in deps:
        resp = client.post("/_dash-update-component", data=json.dumps(_request(dep, value)), headers=headers)
        assert resp.status_code in (200, 204, 400), (dep["output"], resp.status_code)
        assert b"Traceback" not in resp.data


@pytest.mark.parametrize("body", [b"{not json", b"[1]", b'{"output": 5}', b"null"])
def test_malformed_callback_requests_are_400(server, body):
    srv, headers = server
    resp = srv.app.server.test_client().post("/_dash-update-component", data=body, headers=headers)
    assert resp.status_code == 400
