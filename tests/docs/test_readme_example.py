"""The Python API example in README.md's `core` section runs as written, and what it says is true."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

from evofair.indicators import non_dominated
from evofair.store import RunStore

README = Path(__file__).resolve().parents[2] / "README.md"


def core_example() -> str:
    text = README.read_text()
    section = text.split("<!-- section:core -->", 1)[1].split("<!-- /section:core -->", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "no python block in the core section"
    return blocks[0]


def test_readme_example_runs(tmp_path, monkeypatch):
    code = core_example()
    assert len(code.strip().splitlines()) < 40  # the README promises a problem in under 40 lines
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "README.md:core", "exec"), {"__name__": "readme_example"})
    out = tmp_path / "out" / "fair-linear"
    for name in ("config.yaml", "evofair.sqlite", "front.csv", "archive.csv", "history.csv",
                 "plots/front.png", "plots/hv.png", "report.md"):
        assert (out / name).exists(), name
    assert list((out / "weights").rglob("*.safetensors"))

    lines = stdout.getvalue().splitlines()
    store = RunStore(out, readonly=True)
    last = store.last_generation()
    assert last["generation"] == 5 and last["evaluations"] == 16 * 6
    pop = store.individuals(last["population"])
    F = np.array([[i.value("error"), i.value("tpr_gap")] for i in pop])
    front_ids = {pop[k].id for k in non_dominated(F)}
    assert {line.split()[0] for line in lines} == front_ids  # it printed exactly the final front
    # what the README says about it: a real trade-off, from low error to (almost) no gap
    assert min(F[:, 0]) < 0.3 and min(F[:, 1]) < 0.01
    store.close()
