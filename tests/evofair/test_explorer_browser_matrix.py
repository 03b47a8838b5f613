"""End-to-end in a real headless Chromium: a run of three objectives (DTLZ2) opens as a scatter
matrix (one front panel per pair of objectives, SVG), a click on a front point opens that model's
card, and the toolbar does not cover the hypervolume title (their boxes as the browser laid them out).

Skips (with the reason) when chromium, chromedriver or selenium is missing (`explorer_browser`).
"""

from __future__ import annotations

import pytest
from explorer_browser import By, artifacts_dir, chromium, click, trace_ids, wait
from explorer_runs import read_csv

import evofair
from evofair.explorer import start

DTLZ2 = {
    "name": "dtlz2-small",
    "problem": {"name": "dtlz2", "args": {"n_var": 6}},
    "algorithm": {"pop_size": 12, "generations": 3},
    "seed": 4,
}
FRONT_TRACES = (
    "const gd = document.querySelector('#front-graph .js-plotly-plot');"
    "return gd && gd.data ? gd.data.filter(t => t.name === 'front').length : 0;"
)
BOX = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_three_objectives_open_as_a_scatter_matrix(browser, tmp_path):
    out = tmp_path / "dtlz2"
    evofair.run(DTLZ2, out, progress=False)
    front = {r["id"] for r in read_csv(out / "front.csv")}
    srv = start(out, port=0, interval_ms=1000)
    d = browser
    d.set_window_size(1000, 1000)  # a narrow middle panel: a long title reaches the toolbar's corner
    try:
        d.get(srv.url)
        wait(d, lambda d: d.execute_script(FRONT_TRACES) == 3, "three front panels")
        assert set(trace_ids(d, "front") or []) == front
        assert "3 objectives" in d.find_element(By.ID, "matrix-note").text
        first_panel = d.find_elements(By.CSS_SELECTOR, "#front-graph .subplot.xy .scatterlayer > .trace")
        assert len(first_panel) == 2  # all evaluated, front: the (f1, f2) panel
        click(d, first_panel[1].find_elements(By.CSS_SELECTOR, ".points path.point")[0])
        wait(d, lambda d: d.find_elements(By.ID, "card-id"), "the model card")
        assert d.find_element(By.ID, "card-id").text in front
        hv = d.find_element(By.ID, "hv-graph")
        title = hv.find_element(By.CSS_SELECTOR, ".gtitle")
        toolbar = hv.find_element(By.CSS_SELECTOR, ".modebar")
        d.execute_script("arguments[0].style.opacity = 1;", toolbar)  # shown on hover; measured as drawn
        assert not _overlap(d.execute_script(BOX, title), d.execute_script(BOX, toolbar))
        d.save_screenshot(str(artifacts_dir() / "explorer_three_objectives.png"))
    finally:
        srv.stop()
