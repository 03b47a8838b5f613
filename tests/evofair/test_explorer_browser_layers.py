"""End-to-end in a real headless Chromium: the front figure's layers that come from the run itself,
not from the user: the models a recipe constraint rules out, and the bootstrap test intervals
(error bars, and the front models the data cannot tell apart from the open one). Expected values
come from the store and front.csv, recomputed here.

Skips (with the reason) when chromium, chromedriver or selenium is missing (`explorer_browser`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from explorer_browser import ROOT, By, artifacts_dir, chromium, click, front_error_bars, trace_ids, trace_points, wait
from explorer_runs import read_csv

import evofair
from evofair.explorer import start
from evofair.explorer.front_layers import INDISTINGUISHABLE
from evofair.lifecycle.recipe import load_recipe
from evofair.store.run_store import RunStore


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def test_recipe_constraints_in_a_real_browser(browser, tmp_path):
    """A run with `constraints: ["f1 >= 0.5"]` (ZDT1: f1 is x1): the page draws exactly the models
    with f1 < 0.5 as the infeasible trace, says how many front models are feasible, and an
    infeasible model's card says it violates the constraint."""
    out = tmp_path / "zdt1"
    evofair.run(
        {
            "name": "zdt1-c",
            "problem": {"name": "zdt1", "args": {"n_var": 6}},
            "algorithm": {"pop_size": 12, "generations": 3},
            "seed": 2,
            "constraints": ["f1 >= 0.5"],
        },
        out,
        progress=False,
    )
    store = RunStore(out, readonly=True)
    everyone = store.individuals()
    store.close()
    infeasible = sorted(i.id for i in everyone if i.metrics["val"]["f1"] < 0.5)
    name = "infeasible (violates a recipe constraint), val"
    srv = start(out, port=0, interval_ms=1000)
    d = browser
    try:
        d.get(srv.url)
        wait(d, lambda d: trace_ids(d, name) is not None and len(trace_points(d, name)) > 0, "the infeasible layer")
        assert sorted(trace_ids(d, name)) == infeasible
        n_front = len(read_csv(out / "front.csv"))
        assert d.find_element(By.ID, "front-feasible").get_attribute("data-feasible") == str(n_front)
        click(d, trace_points(d, name)[0])
        wait(d, lambda d: d.find_elements(By.ID, "card-feasible"), "the model card")
        assert d.find_element(By.ID, "card-id").text in infeasible
        assert d.find_element(By.ID, "card-feasible").get_attribute("data-feasible") == "false"
        verdicts = d.find_elements(By.CSS_SELECTOR, "#card-constraints td[data-satisfied]")
        assert [v.get_attribute("data-satisfied") for v in verdicts] == ["false", "false"]
        d.save_screenshot(str(artifacts_dir() / "explorer_recipe_constraints.png"))
    finally:
        srv.stop()


def test_intervals_in_a_real_browser(browser, tmp_path):
    """A tiny fair_classification run (a problem with per-example outputs): on the test split the
    front carries error bars equal to front.csv's `<metric>_test_lo/_hi` columns, and opening a
    front model shades exactly the front models whose intervals overlap its own on both
    objectives (recomputed here from front.csv)."""
    out = _fair_classification_run(tmp_path)
    rows = {r["id"]: r for r in read_csv(out / "front.csv")}
    objectives = [c[: -len("_test_lo")] for c in next(iter(rows.values())) if c.endswith("_test_lo")]
    x, y = objectives[0], objectives[1]
    srv = start(out, port=0, interval_ms=1000)
    d = browser
    try:
        d.get(srv.url)
        wait(d, lambda d: trace_ids(d, "front") is not None, "the front")
        d.find_element(By.CSS_SELECTOR, "#split input[value='test']").click()
        wait(d, lambda d: "show the test" not in d.find_element(By.ID, "intervals-note").text, "the test split")
        ids = trace_ids(d, "front")
        assert sorted(ids) == sorted(rows)
        _check_error_bars(d, ids, rows, x, y)

        # open the front model with the most neighbours and check the shaded set
        k = max(range(len(ids)), key=lambda j: (len(_overlapping(rows, objectives, ids[j])), ids[j]))
        # the shading must tell models apart: some but not all others are indistinguishable from it
        n_close = len(_overlapping(rows, objectives, ids[k]))
        assert 0 < n_close < len(ids) - 1, "the run's front is too uniform to test the shading"
        click(d, trace_points(d, "front")[k])
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#intervals-note[data-indistinguishable]"), "the shading")
        sel = d.find_element(By.ID, "card-id").text
        expected = _overlapping(rows, objectives, sel)
        note = d.find_element(By.ID, "intervals-note")
        assert note.get_attribute("data-indistinguishable") == str(len(expected))
        if expected:
            wait(d, lambda d: sorted(trace_ids(d, INDISTINGUISHABLE) or []) == expected, "the shaded models")
            assert len(trace_points(d, INDISTINGUISHABLE)) == len(expected)
        cells = {
            c.get_attribute("data-interval"): c.text
            for c in d.find_elements(By.CSS_SELECTOR, "#card-metrics td[data-interval]")
        }
        assert cells[x] == f"[{float(rows[sel][f'{x}_test_lo']):.4f}, {float(rows[sel][f'{x}_test_hi']):.4f}]"
        d.save_screenshot(str(artifacts_dir() / "explorer_intervals.png"))
    finally:
        srv.stop()


def _fair_classification_run(tmp_path: Path) -> Path:
    """runs/adult.yaml on a synthetic loans table, small enough for seconds, with intervals on:
    with 4 generations and 8 hidden units the front holds distinct models with distinct intervals."""
    rng = np.random.default_rng(0)
    n = 1200
    gender, income = rng.choice(["f", "m"], n), rng.normal(50, 15, n)
    outcome = np.where(income / 10 + (gender == "m") + rng.normal(0, 1, n) > 5.5, "yes", "no")
    table = tmp_path / "loans.csv"
    table.write_text(
        "income,gender,outcome\n" + "".join(f"{a:.3f},{b},{c}\n" for a, b, c in zip(income, gender, outcome))
    )
    recipe = load_recipe(
        ROOT / "runs" / "adult.yaml",
        [
            f"problem.args.data.path={table}",
            "problem.args.target=outcome",
            "problem.args.positive=yes",
            "problem.args.sensitive=[gender]",
            "algorithm.pop_size=8",
            "algorithm.generations=4",
            "problem.args.model.hidden=[8]",
            "problem.args.baselines.enabled=false",
            "intervals.n_boot=200",
        ],
    )
    out = tmp_path / "fc"
    evofair.run(recipe, out, progress=False)
    return out


def _check_error_bars(d, ids: list[str], rows: dict[str, dict], x: str, y: str) -> None:
    """The front's points sit at front.csv's test values, with y error bars reaching its interval."""
    bars = front_error_bars(d)
    for k, iid in enumerate(ids):
        r = rows[iid]
        assert bars["x"][k] == pytest.approx(float(r[f"{x}_test"]), abs=1e-12)
        assert bars["plus"][k] == pytest.approx(float(r[f"{y}_test_hi"]) - float(r[f"{y}_test"]), abs=1e-12)
        assert bars["minus"][k] == pytest.approx(float(r[f"{y}_test"]) - float(r[f"{y}_test_lo"]), abs=1e-12)
    drawn = d.find_elements(By.CSS_SELECTOR, "#front-graph .scatterlayer .errorbar")
    assert len(drawn) >= len(ids)  # plotly draws one error-bar group per point with a bar


def _overlapping(rows: dict[str, dict], objectives: list[str], sel: str) -> list[str]:
    """The front models (not `sel`) whose front.csv test interval overlaps `sel`'s on every objective."""
    return sorted(
        i
        for i in rows
        if i != sel
        and all(
            float(rows[i][f"{o}_test_lo"]) <= float(rows[sel][f"{o}_test_hi"])
            and float(rows[sel][f"{o}_test_lo"]) <= float(rows[i][f"{o}_test_hi"])
            for o in objectives
        )
    )
