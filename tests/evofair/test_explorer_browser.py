"""End-to-end: the explorer driven in a real headless Chromium on a small toy run: the front, a
model's card, the user's bounds and ranking, comparing, exporting, and following a run in
progress. Values are checked against the store and the CSVs the core report wrote, not against
anything the explorer computed.

Skips (with the reason) when chromium, chromedriver or selenium is missing (`explorer_browser`).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from explorer_browser import By, artifacts_dir, chromium, click, set_bound, stored, trace_ids, trace_points, wait
from explorer_runs import read_csv, toy_run

from evofair.core.individual import Individual
from evofair.explorer import start
from evofair.store.run_store import RunStore


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return toy_run(tmp_path_factory)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def test_explorer_in_a_real_browser(run_dir, browser, tmp_path):
    t0 = time.perf_counter()
    copy = tmp_path / "run"  # a private copy: the export below must not race other tests' readers
    shutil.copytree(run_dir, copy)
    front_rows = read_csv(copy / "front.csv")
    srv = start(copy, port=0, interval_ms=1000)
    d = browser
    try:
        d.get(srv.url)
        opened = _open_newest_front_model(d, copy, front_rows)
        # a bound highlights exactly the front models that satisfy it, ranked by the other
        # objective; tightening it highlights a strict subset
        distinct = sorted({float(r["error_val"]) for r in front_rows})
        assert len(distinct) >= 3, "the toy run's front should have at least 3 distinct errors"
        loose = _rank_under_error_bound(d, front_rows, distinct[-2])
        d.save_screenshot(str(artifacts_dir() / "explorer_constraints.png"))
        other = next(r for r in loose if r != opened)
        _compare_with_ranked_model(d, copy, opened, other)
        tight = _rank_under_error_bound(d, front_rows, distinct[0])
        assert set(tight) < set(loose)
        _export_open_model(d, copy, other, tmp_path / "exported")
        d.set_window_size(1600, min(4000, d.execute_script("return document.body.scrollHeight") + 40))
        d.save_screenshot(str(artifacts_dir() / "explorer_full.png"))
        d.set_window_size(1600, 1000)
    finally:
        srv.stop()
    assert time.perf_counter() - t0 < 60


def _open_newest_front_model(d, run: Path, front_rows: list[dict]) -> str:
    """The page's front has exactly front.csv's models, drawn as SVG points; a click on the newest
    opens a card whose values are the store's. Returns the opened model's id."""
    wait(d, lambda d: trace_ids(d, "front") is not None and len(trace_points(d, "front")) > 0, "the front")
    assert sorted(trace_ids(d, "front")) == sorted(r["id"] for r in front_rows)
    points = trace_points(d, "front")
    assert len(points) == len(front_rows)
    ids = trace_ids(d, "front")
    k = max(range(len(ids)), key=lambda j: (int(ids[j][1:5]), ids[j]))  # the newest front model
    click(d, points[k])
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-id]"), "the model card")
    iid = d.find_element(By.ID, "card-id").text
    ind, _ = stored(run, iid)
    same_point = iid == ids[k] or ind.metrics["val"] == stored(run, ids[k])[0].metrics["val"]
    assert same_point  # the clicked model, or a twin drawn on the same spot
    cells = d.find_elements(By.CSS_SELECTOR, "#card-metrics td[data-metric]")
    seen = {(c.get_attribute("data-split"), c.get_attribute("data-metric")): c for c in cells}
    assert set(seen) == {(s, n) for s, per in ind.metrics.items() for n in per}
    for (split, name), cell in seen.items():
        assert float(cell.get_attribute("title")) == ind.metrics[split][name]  # exact stored value
        assert abs(float(cell.text) - ind.metrics[split][name]) <= 5e-5  # the rounded display
    lineage_rows = d.find_elements(By.CSS_SELECTOR, ".card details table tbody tr")
    assert len(lineage_rows) >= len(ind.parents)
    d.save_screenshot(str(artifacts_dir() / "explorer_card.png"))
    return iid


def _rank_under_error_bound(d, front_rows: list[dict], bound: float) -> list[str]:
    """Type `error <= bound`: the ranked table lists exactly front.csv's qualifying rows, best gap
    first, and the figure highlights the same models. Returns the ranked ids."""
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
    ranked = [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "#ranked-table tr.ranked-row")]
    assert ranked == [r["id"] for r in expected]
    wait(d, lambda d: sorted(trace_ids(d, "meets constraints") or []) == sorted(ranked), "the highlighted set")
    return ranked


def _compare_with_ranked_model(d, run: Path, opened: str, other: str) -> None:
    """Add the open model, open `other` from the ranked table, add it: the comparison shows both,
    B's values equal to the store's."""
    d.find_element(By.ID, "add-compare").click()
    d.find_element(By.XPATH, f"//table[@id='ranked-table']//button[text()='{other}']").click()
    wait(d, lambda d: d.find_element(By.ID, "card-id").text == other, "the ranked model's card")
    d.find_element(By.ID, "add-compare").click()
    wait(d, lambda d: d.find_elements(By.ID, "compare-table"), "the comparison")
    heads = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#compare-table th")]
    assert f"A {opened}" in heads and f"B {other}" in heads
    b_cells = d.find_elements(By.CSS_SELECTOR, "#compare-table td[data-model='B']")
    other_ind, _ = stored(run, other)
    assert {
        (c.get_attribute("data-split"), c.get_attribute("data-metric")): float(c.get_attribute("title"))
        for c in b_cells
    } == {(s, n): v for s, per in other_ind.metrics.items() for n, v in per.items()}


def _export_open_model(d, run: Path, open_id: str, target: Path) -> None:
    """Export the open model where we say; it loads and matches the store byte for byte."""
    from safetensors.torch import load_file

    d.find_element(By.ID, "export-path").send_keys(str(target))
    d.find_element(By.ID, "export-btn").click()
    wait(d, lambda d: d.find_elements(By.ID, "export-done") or d.find_elements(By.ID, "export-error"), "export")
    assert d.find_elements(By.ID, "export-done"), d.find_element(By.ID, "export-status").text
    exp_ind, exp_weights = stored(run, open_id)
    loaded = load_file(str(target / "genome.safetensors"))
    assert all(torch.equal(loaded[k], exp_weights[k]) for k in exp_weights) and sorted(loaded) == sorted(exp_weights)
    assert hashlib.sha256((target / "genome.safetensors").read_bytes()).hexdigest() == exp_ind.weights_hash


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
