"""End-to-end: the explorer driven in a real headless Chromium (Debian's chromium + chromium-driver,
which .ci/run installs), on a small toy run. Values are checked against the store and the CSVs
the core report wrote, not against anything the explorer computed.

Skips (with the reason) when chromium, chromedriver or selenium is missing. Screenshots go to
$EVOFAIR_ARTIFACTS, or tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} "
        "(apt-get install chromium chromium-driver; .ci/run does this)",
        allow_module_level=True,
    )
selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[test]')")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import evofair  # noqa: E402
from evofair.core.individual import Individual  # noqa: E402
from evofair.explorer import start  # noqa: E402
from evofair.store.run_store import RunStore  # noqa: E402

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)
WAIT = 30


def artifacts_dir() -> Path:
    path = Path(os.environ.get("EVOFAIR_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    recipe = yaml.safe_load((ROOT / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=8, generations=3)
    recipe["problem"]["args"] = {"n_train": 128, "n_eval": 64}
    out = tmp_path_factory.mktemp("browser") / "toy"
    evofair.run(recipe, out, progress=False)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def wait(driver, cond, what: str, timeout: float = WAIT):
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: cond(d), message=f"waiting for {what}")


GRAPH_DATA = (
    "const gd = document.querySelector('#front-graph .js-plotly-plot');"
    "return gd && gd.data ? gd.data.map(t => [t.name, t.customdata || []]) : [];"
)


def trace_ids(driver, name: str) -> list[str] | None:
    traces = driver.execute_script(GRAPH_DATA)
    return next((list(ids) for n, ids in traces if n == name), None)


def trace_points(driver, name: str):
    """The SVG point elements plotly drew for the trace called `name`."""
    names = [n for n, _ in driver.execute_script(GRAPH_DATA)]
    k = names.index(name)
    layer = driver.find_elements(By.CSS_SELECTOR, "#front-graph .scatterlayer > .trace")[k]
    return layer.find_elements(By.CSS_SELECTOR, ".points path.point")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def stored(run_dir: Path, iid: str):
    store = RunStore(run_dir, readonly=True)
    try:
        ind = store.individuals([iid])[0]
        return ind, store.get_weights(ind.weights_hash)
    finally:
        store.close()


def set_bound(driver, metric: str, value: float | None) -> None:
    box = driver.find_element(By.CSS_SELECTOR, f"input[name='bound-{metric}']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if value is not None:
        box.send_keys(repr(value))
    box.send_keys(Keys.ENTER)


def test_explorer_in_a_real_browser(run_dir, browser, tmp_path):
    t0 = time.perf_counter()
    copy = tmp_path / "run"  # a private copy: the export below must not race other tests' readers
    shutil.copytree(run_dir, copy)
    front_rows = read_csv(copy / "front.csv")
    srv = start(copy, port=0, interval_ms=1000)
    d = browser
    try:
        d.get(srv.url)
        # 1. the page loads and the front has exactly front.csv's models, drawn as SVG points
        wait(d, lambda d: trace_ids(d, "front") is not None and len(trace_points(d, "front")) > 0, "the front")
        assert sorted(trace_ids(d, "front")) == sorted(r["id"] for r in front_rows)
        points = trace_points(d, "front")
        assert len(points) == len(front_rows)
        # 2. clicking a point (a real mouse click; plotly's drag layer intercepts element.click())
        ids = trace_ids(d, "front")
        k = max(range(len(ids)), key=lambda j: (int(ids[j][1:5]), ids[j]))  # the newest front model
        ActionChains(d).move_to_element(points[k]).click().perform()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-id]"), "the model card")
        iid = d.find_element(By.ID, "card-id").text
        ind, weights = stored(copy, iid)
        assert (
            iid == ids[k] or ind.metrics["val"] == stored(copy, ids[k])[0].metrics["val"]
        )  # same point, or a twin on it
        cells = d.find_elements(By.CSS_SELECTOR, "#card-metrics td[data-metric]")
        seen = {(c.get_attribute("data-split"), c.get_attribute("data-metric")): c for c in cells}
        assert set(seen) == {(s, n) for s, per in ind.metrics.items() for n in per}
        for (split, name), cell in seen.items():
            assert float(cell.get_attribute("title")) == ind.metrics[split][name]  # exact stored value
            assert abs(float(cell.text) - ind.metrics[split][name]) <= 5e-5  # the rounded display
        lineage_rows = d.find_elements(By.CSS_SELECTOR, ".card details table tbody tr")
        assert len(lineage_rows) >= len(ind.parents)
        d.save_screenshot(str(artifacts_dir() / "explorer_card.png"))
        # 3. a constraint highlights exactly the front models that satisfy it, ranked by the other
        #    objective; tightening it changes the highlighted set. 4. compare two of them.
        distinct = sorted({float(r["error_val"]) for r in front_rows})
        assert len(distinct) >= 3, "the toy run's front should have at least 3 distinct errors"
        highlighted = []
        for bound in (distinct[-2], distinct[0]):
            expected = sorted(
                (r for r in front_rows if float(r["error_val"]) <= bound),
                key=lambda r: (float(r["gap_val"]), float(r["error_val"]), r["id"]),
            )
            set_bound(d, "error", bound)
            wait(
                d,
                lambda d: (
                    d.find_elements(By.ID, "meets-count")
                    and d.find_element(By.ID, "meets-count").get_attribute("data-count") == str(len(expected))
                ),
                f"{len(expected)} models meeting error <= {bound}",
            )
            ranked = [
                r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "#ranked-table tr.ranked-row")
            ]
            assert ranked == [r["id"] for r in expected]
            wait(d, lambda d: sorted(trace_ids(d, "meets constraints") or []) == sorted(ranked), "the highlighted set")
            highlighted.append(set(ranked))
            if len(highlighted) == 1:
                d.save_screenshot(str(artifacts_dir() / "explorer_constraints.png"))
                other = next(r for r in ranked if r != iid)
                d.find_element(By.ID, "add-compare").click()
                d.find_element(By.XPATH, f"//table[@id='ranked-table']//button[text()='{other}']").click()
                wait(d, lambda d: d.find_element(By.ID, "card-id").text == other, "the ranked model's card")
                d.find_element(By.ID, "add-compare").click()
                wait(d, lambda d: d.find_elements(By.ID, "compare-table"), "the comparison")
                heads = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#compare-table th")]
                assert f"A {iid}" in heads and f"B {other}" in heads
                b_cells = d.find_elements(By.CSS_SELECTOR, "#compare-table td[data-model='B']")
                other_ind, _ = stored(copy, other)
                assert {
                    (c.get_attribute("data-split"), c.get_attribute("data-metric")): float(c.get_attribute("title"))
                    for c in b_cells
                } == {(s, n): v for s, per in other_ind.metrics.items() for n, v in per.items()}
        assert highlighted[1] < highlighted[0]  # the tighter bound highlights a strict subset
        # 5. export the opened model where we say; it loads and matches the store byte for byte
        target = tmp_path / "exported"
        d.find_element(By.ID, "export-path").send_keys(str(target))
        d.find_element(By.ID, "export-btn").click()
        wait(d, lambda d: d.find_elements(By.ID, "export-done") or d.find_elements(By.ID, "export-error"), "export")
        assert d.find_elements(By.ID, "export-done"), d.find_element(By.ID, "export-status").text
        from safetensors.torch import load_file

        exp_ind, exp_weights = stored(copy, other)  # the model whose card is open
        loaded = load_file(str(target / "genome.safetensors"))
        assert all(torch.equal(loaded[k], exp_weights[k]) for k in exp_weights) and sorted(loaded) == sorted(
            exp_weights
        )
        assert hashlib.sha256((target / "genome.safetensors").read_bytes()).hexdigest() == exp_ind.weights_hash
        d.set_window_size(1600, min(4000, d.execute_script("return document.body.scrollHeight") + 40))
        d.save_screenshot(str(artifacts_dir() / "explorer_full.png"))
        d.set_window_size(1600, 1000)
    finally:
        srv.stop()
    assert time.perf_counter() - t0 < 60


def test_explorer_follows_a_run_in_progress(run_dir, browser, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(run_dir, live)
    (live / "report.md").unlink()  # as during a run: no final report yet, more generations planned
    config = yaml.safe_load((live / "config.yaml").read_text())
    config["algorithm"]["generations"] = 5
    (live / "config.yaml").write_text(yaml.safe_dump(config))
    writer = RunStore(live)  # the "engine": holds the run open while the explorer watches it
    srv = start(live, port=0, interval_ms=500)
    d = browser
    try:
        d.get(srv.url)
        wait(d, lambda d: trace_ids(d, "front") is not None, "the front")
        status = d.find_element(By.ID, "run-status").text
        assert "live" in status and "3 of 5 generations" in status
        d.execute_script("window.__no_reload_marker = 42;")
        last = writer.last_generation()
        src = writer.individuals([last["population"][0]])[0]
        g = last["generation"] + 1
        new = Individual(
            id=f"g{g:04d}i0000",
            generation=g,
            parents=(src.id,),
            seed=9,
            operator={"mutation": {"name": "gaussian", "args": {"sigma": 0.05}, "seed": 9}},
            weights_hash=src.weights_hash,
            metrics={"val": {"error": 0.0, "gap": 0.0}, "test": {"error": 0.0, "gap": 0.0}},
        )
        writer.commit_generation(
            g,
            [new],
            [new.id] + last["population"][1:],
            {"hv_val": 0.35, "n_front": 1, "evaluations": (last["evaluations"] or 0) + 1},
        )
        # it dominates everyone, so the new generation's front is just it
        wait(d, lambda d: trace_ids(d, "front") == [new.id], "the new generation's front", timeout=20)
        assert d.execute_script("return window.__no_reload_marker;") == 42  # updated in place, no reload
        assert f"● live: {g + 1} of 5 generations" in d.find_element(By.ID, "run-status").text
        d.save_screenshot(str(artifacts_dir() / "explorer_live.png"))
    finally:
        srv.stop()
        writer.close()


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
        ActionChains(d).move_to_element(trace_points(d, name)[0]).click().perform()
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
    import numpy as np

    from evofair.explorer.figures import INDISTINGUISHABLE
    from evofair.lifecycle.recipe import load_recipe

    rng = np.random.default_rng(0)
    n = 1200  # with 4 generations and 8 hidden units the front holds distinct models with distinct intervals
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
    rows = {r["id"]: r for r in read_csv(out / "front.csv")}
    objectives = [c[: -len("_test_lo")] for c in next(iter(rows.values())) if c.endswith("_test_lo")]
    srv = start(out, port=0, interval_ms=1000)
    d = browser
    try:
        d.get(srv.url)
        wait(d, lambda d: trace_ids(d, "front") is not None, "the front")
        d.find_element(By.CSS_SELECTOR, "#split input[value='test']").click()
        wait(d, lambda d: "show the test" not in d.find_element(By.ID, "intervals-note").text, "the test split")
        ids = trace_ids(d, "front")
        assert sorted(ids) == sorted(rows)
        bars = driver_error_bars(d)
        x, y = objectives[0], objectives[1]
        for k, iid in enumerate(ids):
            r = rows[iid]
            assert bars["x"][k] == pytest.approx(float(r[f"{x}_test"]), abs=1e-12)
            assert bars["plus"][k] == pytest.approx(float(r[f"{y}_test_hi"]) - float(r[f"{y}_test"]), abs=1e-12)
            assert bars["minus"][k] == pytest.approx(float(r[f"{y}_test"]) - float(r[f"{y}_test_lo"]), abs=1e-12)
        drawn = d.find_elements(By.CSS_SELECTOR, "#front-graph .scatterlayer .errorbar")
        assert len(drawn) >= len(ids)  # plotly draws one error-bar group per point with a bar

        # open the front model with the most neighbours and check the shaded set
        def close_to(sel):
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

        k = max(range(len(ids)), key=lambda j: (len(close_to(ids[j])), ids[j]))
        # the shading must tell models apart: some but not all others are indistinguishable from it
        assert 0 < len(close_to(ids[k])) < len(ids) - 1, "the run's front is too uniform to test the shading"
        ActionChains(d).move_to_element(trace_points(d, "front")[k]).click().perform()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#intervals-note[data-indistinguishable]"), "the shading")
        sel = d.find_element(By.ID, "card-id").text
        expected = close_to(sel)
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


def driver_error_bars(d) -> dict[str, list[float]]:
    """The front trace's x values and y error bars as plotly holds them in the page."""
    return d.execute_script(
        "const gd = document.querySelector('#front-graph .js-plotly-plot');"
        "const t = gd._fullData.find(t => t.name === 'front');"
        "return {x: Array.from(t.x), plus: Array.from(t.error_y.array), minus: Array.from(t.error_y.arrayminus)};"
    )
