"""What a `merge` run's report says about its front when the inner problem is a table: bootstrap
intervals and near-constant flags from the merged models' own predictions, and the accurate end
against the constant predictor and a plain LogisticRegression.

Oracles: scikit-learn's accuracy on the predicted labels (against front.csv's test error, which the
run computed through the inner problem's `evaluate`), LogisticRegression fitted here on the inner
problem's training split, and the training majority class counted by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_merge_front import _loans_inner

from evofair.api import run


def _merge_run(tmp_path, name: str, **args):
    recipe = {
        "name": name,
        "seed": 3,
        "problem": {
            "name": "merge",
            "args": {"inner": _loans_inner(tmp_path, n=300), "train_anchors": {"epochs": 3}, **args},
        },
        "algorithm": {"pop_size": 6, "generations": 2},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": [1.0, 1.0],
    }
    out = tmp_path / name
    result = run(recipe, out, progress=False)
    return result, out


@pytest.mark.parametrize("threshold", ["off", "per_group"])
def test_merge_front_has_intervals_and_flags_from_its_own_predictions(tmp_path, threshold):
    from sklearn.metrics import accuracy_score

    result, out = _merge_run(tmp_path, f"merge-{threshold}", threshold=threshold)
    front = pd.read_csv(out / "front.csv", dtype={"id": str})
    problem = result.problem
    outputs = problem.example_outputs([result.x(i) for i in front["id"]], "test")
    for k, error in enumerate(front["error_test"]):
        assert 1 - accuracy_score(outputs["y_true"], outputs["y_pred"][k]) == pytest.approx(error, abs=1e-12)
    intervals = json.loads((out / "intervals.json").read_text())
    assert set(intervals["models"]) == set(front["id"])
    shares = [np.bincount(row).max() / len(row) for row in outputs["y_pred"]]
    for mid, error, share in zip(front["id"], front["error_test"], shares):
        lo, hi = intervals["models"][mid]["error"]
        assert lo <= error <= hi
        assert (lo < hi) == (share < 1)  # resamples keep each group × class's count: a constant model's error is fixed
    flags = json.loads((out / "near_constant.json").read_text())
    assert set(flags["near_constant"]) == {i for i, s in zip(front["id"], shares) if s >= 0.99}
    assert "No confidence intervals" not in (out / "report.md").read_text()


def test_merge_report_checks_the_accurate_end_against_simple_references(tmp_path):
    from sklearn.linear_model import LogisticRegression

    result, out = _merge_run(tmp_path, "merge-refs", selection="cross_fit", folds=2)
    report = (out / "report.md").read_text()
    inner = result.problem.inner
    train = inner.splits["train"]
    lr = LogisticRegression().fit(train.X.numpy().astype(np.float64), train.y)
    test = inner.splits["test"]
    lr_error = float(np.mean(lr.predict(test.X.numpy().astype(np.float64)) != test.y))
    constant_error = float(np.mean(test.y != np.bincount(train.y).argmax()))
    section = report.split("## Accurate end vs simple references")[1]
    assert f"| {lr_error:.6f} |" in section.split("plain LogisticRegression")[1].splitlines()[0]
    assert f"| {constant_error:.6f} |" in section.split("constant predictor")[1].splitlines()[0]
    best = pd.read_csv(out / "front.csv")["error_test"].min()
    assert f"| {best:.6f} |" in section.split("evolved front, lowest error")[1].splitlines()[0]
    assert "out-of-fold scores over train ∪ validate" in section
    assert best > lr_error  # three epochs per anchor: the premise of the advice below
    assert "undertrained" in section and "`train_anchors.epochs`" in section and "warm_start" not in section
