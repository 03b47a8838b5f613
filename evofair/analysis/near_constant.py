"""Which front models are near-constant on test: flagged in report.md and report.html.

A model that predicts one class on almost every example has every fairness gap near 0 and so
looks "fair"; a front made of such models is no accuracy–fairness trade-off at all
(docs/metrics.md#undefined-rates-and-empty-groups). The report computes the flags once, from the
problem's per-example predictions (`evofair.core.problem.PerExampleOutputs`), and writes them to
`near_constant.json` so that the HTML report, which reads the run without rebuilding the problem,
shows the same flags.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evofair.analysis.metrics import is_near_constant
from evofair.core.individual import Individual
from evofair.core.problem import PerExampleOutputs, Split
from evofair.store.safe_io import atomic_write_text

NEAR_CONSTANT_FILE = "near_constant.json"
THRESHOLD = 0.99
SPLIT: Split = "test"


def front_flags(store, problem, front: Sequence[Individual]) -> dict[str, bool] | None:
    """{model id: near-constant on test} for the front, or None when the problem gives no
    per-example predictions or a model has neither stored weights nor a vector (nothing to predict with)."""
    from evofair.analysis.run_reader import genomes

    models = genomes(store, front) if front and isinstance(problem, PerExampleOutputs) else None
    if models is None:
        return None
    predictions = problem.example_outputs(models, SPLIT)["y_pred"]
    flags = is_near_constant(predictions, THRESHOLD)
    return {i.id: bool(f) for i, f in zip(front, flags)}


def write_flags(out: Path, flags: dict[str, bool] | None) -> None:
    """near_constant.json: the threshold, the split and the flagged ids among the front's."""
    if flags is None:
        return
    doc = {
        "threshold": THRESHOLD,
        "split": SPLIT,
        "front": list(flags),
        "near_constant": [k for k, v in flags.items() if v],
    }
    atomic_write_text(Path(out) / NEAR_CONSTANT_FILE, json.dumps(doc, indent=1), within=Path(out))


def read_flags(run_dir: str | Path) -> dict[str, Any] | None:
    """near_constant.json's document, or None for a run whose report did not write one."""
    path = Path(run_dir) / NEAR_CONSTANT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def summary_phrase(flags: dict[str, bool] | None) -> str:
    """' (N near-constant: ≥ 99% one class on test)' for the summary line; empty without flags."""
    if flags is None:
        return ""
    n = sum(flags.values())
    return f" ({n} of them near-constant: ≥ {THRESHOLD:.0%} one class on {SPLIT})"
