"""What the explorer's browser tests share: a headless Chromium (Debian's chromium +
chromium-driver, which .ci/run installs), waiting on the page, and reading back what plotly drew.

Importing this module skips the importing test file, with the reason, when chromium, chromedriver
or selenium is missing. Screenshots go to $EVOFAIR_ARTIFACTS, or tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

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

from evofair.core.individual import Individual  # noqa: E402
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
GRAPH_DATA = (
    "const gd = document.querySelector('#front-graph .js-plotly-plot');"
    "return gd && gd.data ? gd.data.map(t => [t.name, t.customdata || []]) : [];"
)


def chromium(profile_dir: Path) -> webdriver.Chrome:
    """A headless Chromium with its own profile folder (no state shared between test files)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    return driver


def artifacts_dir() -> Path:
    path = Path(os.environ.get("EVOFAIR_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver, cond, what: str, timeout: float = WAIT):
    """Poll `cond(driver)` until it is truthy; an element replaced mid-check is polled again."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: cond(d), message=f"waiting for {what}")


def trace_ids(driver, name: str) -> list[str] | None:
    """The model ids (customdata) of the front figure's trace called `name`; None if it has none."""
    traces = driver.execute_script(GRAPH_DATA)
    return next((list(ids) for n, ids in traces if n == name), None)


def trace_points(driver, name: str):
    """The SVG point elements plotly drew for the trace called `name`."""
    names = [n for n, _ in driver.execute_script(GRAPH_DATA)]
    k = names.index(name)
    layer = driver.find_elements(By.CSS_SELECTOR, "#front-graph .scatterlayer > .trace")[k]
    return layer.find_elements(By.CSS_SELECTOR, ".points path.point")


def click(driver, element) -> None:
    """A real mouse click: plotly's drag layer intercepts element.click() on a point."""
    ActionChains(driver).move_to_element(element).click().perform()


def front_error_bars(driver) -> dict[str, list[float]]:
    """The front trace's x values and y error bars as plotly holds them in the page."""
    return driver.execute_script(
        "const gd = document.querySelector('#front-graph .js-plotly-plot');"
        "const t = gd._fullData.find(t => t.name === 'front');"
        "return {x: Array.from(t.x), plus: Array.from(t.error_y.array), minus: Array.from(t.error_y.arrayminus)};"
    )


def set_bound(driver, metric: str, value: float | None) -> None:
    """Type a bound on `metric` into the page's constraint box (None clears it)."""
    box = driver.find_element(By.CSS_SELECTOR, f"input[name='bound-{metric}']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if value is not None:
        box.send_keys(repr(value))
    box.send_keys(Keys.ENTER)


def stored(run_dir: Path, iid: str) -> tuple[Individual, Any]:
    """The individual `iid` and its weights, read from the store (the truth the page is checked against)."""
    store = RunStore(run_dir, readonly=True)
    try:
        ind = store.individuals([iid])[0]
        return ind, store.get_weights(ind.weights_hash)
    finally:
        store.close()
