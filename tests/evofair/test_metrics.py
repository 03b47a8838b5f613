"""Population fairness metrics against fairlearn (MetricFrame, equalized_odds_difference,
demographic_parity_difference, true_positive_rate), held to 1e-12."""

import numpy as np
import pytest
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, equalized_odds_difference,
                               false_positive_rate, selection_rate, true_positive_rate)
from sklearn.metrics import accuracy_score

from evofair.metrics import GroupCounts, confusion_rows, fairness_metrics, is_near_constant


def _population(seed, n_models=5, n=300, n_classes=2, groups=("F", "M")):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    g = rng.choice(np.asarray(groups), n, p=np.linspace(1, 2, len(groups)) / np.linspace(1, 2, len(groups)).sum())
    # models from near-perfect to noisy, one biased toward a group
    P = np.empty((n_models, n), dtype=int)
    for m in range(n_models):
        flip = rng.random(n) < (0.05 + 0.08 * m) * np.where(g == groups[0], 1.0, 0.3 + 0.2 * (m % 3))
        P[m] = np.where(flip, rng.integers(0, n_classes, n), y)
    return P, y, g


def _fairlearn_dtpr(y, p, g, classes):
    """Mean and RMS over classes of fairlearn's between-group TPR difference (one-vs-rest)."""
    gaps = []
    for c in classes:
        mf = MetricFrame(metrics=lambda yt, yp: true_positive_rate(yt, yp, pos_label=1),
                         y_true=(np.asarray(y) == c).astype(int), y_pred=(np.asarray(p) == c).astype(int),
                         sensitive_features=g)
        gaps.append(mf.difference(method="between_groups"))
    return np.mean(gaps), np.sqrt(np.mean(np.square(gaps)))


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_metrics_match_fairlearn(seed):
    P, y, g = _population(seed)
    ours = fairness_metrics(P, y, g)
    for m, p in enumerate(P):
        dtpr, rms = _fairlearn_dtpr(y, p, g, [0, 1])
        assert abs(ours["error"][m] - (1 - accuracy_score(y, p))) < 1e-12
        assert abs(ours["dtpr"][m] - dtpr) < 1e-12
        assert abs(ours["dtpr_rms"][m] - rms) < 1e-12
        assert abs(ours["eod"][m] - equalized_odds_difference(y, p, sensitive_features=g)) < 1e-12
        assert abs(ours["dpd"][m] - demographic_parity_difference(y, p, sensitive_features=g)) < 1e-12
    # the models differ, so a wrong program that mixed rows up would fail above
    assert len(set(np.round(ours["dtpr"], 12))) > 3


def test_per_group_rates_match_metricframe():
    P, y, g = _population(5, n_models=3)
    gc = GroupCounts.of(P, y, g)
    for m, p in enumerate(P):
        mf = MetricFrame(metrics={"tpr1": lambda a, b: true_positive_rate(a, b, pos_label=1),
                                  "tpr0": lambda a, b: true_positive_rate(a, b, pos_label=0),
                                  "fpr": false_positive_rate, "sel": selection_rate},
                         y_true=y, y_pred=p, sensitive_features=g)
        bg = mf.by_group
        for a, group in enumerate(gc.groups):
            assert abs(gc.tpr()[m, a, 1] - bg.loc[group, "tpr1"]) < 1e-12
            assert abs(gc.tpr()[m, a, 0] - bg.loc[group, "tpr0"]) < 1e-12
            assert abs(gc.fpr(1)[m, a] - bg.loc[group, "fpr"]) < 1e-12
            assert abs(gc.selection_rate(1)[m, a] - bg.loc[group, "sel"]) < 1e-12


def test_multiclass_three_groups_dtpr_matches_metricframe():
    P, y, g = _population(9, n_models=3, n=400, n_classes=3, groups=("a", "b", "c"))
    ours = fairness_metrics(P, y, g)
    for m, p in enumerate(P):
        dtpr, rms = _fairlearn_dtpr(y, p, g, [0, 1, 2])
        assert abs(ours["dtpr"][m] - dtpr) < 1e-12
        assert abs(ours["dtpr_rms"][m] - rms) < 1e-12


def test_hand_computed_case():
    # F: 2 nurses (1 right), 1 surgeon (right); M: 1 nurse (right), 2 surgeons (1 right)
    y = np.array([1, 1, 0, 1, 0, 0])
    g = np.array(["F", "F", "F", "M", "M", "M"])
    p = np.array([1, 0, 0, 1, 0, 1])
    out = fairness_metrics(p, y, g)
    # TPR_nurse: F 1/2, M 1/1 -> 0.5 ; TPR_surgeon: F 1/1, M 1/2 -> 0.5
    assert out["error"][0] == pytest.approx(2 / 6)
    assert out["dtpr"][0] == pytest.approx(0.5)
    assert out["dtpr_rms"][0] == pytest.approx(0.5)
    # selection rate of nurse: F 1/3, M 2/3
    assert out["dpd"][0] == pytest.approx(1 / 3)


def test_constant_predictor_is_fair_and_flagged():
    P, y, g = _population(3, n_models=2)
    P[1] = 0
    out = fairness_metrics(P, y, g)
    assert out["dtpr"][1] == 0 and out["eod"][1] == 0 and out["dpd"][1] == 0
    assert is_near_constant(P).tolist() == [False, True]


def test_empty_cell_follows_fairlearn_zero_convention():
    y = np.array([0, 0, 1, 1, 0])
    g = np.array(["F", "F", "F", "M", "M"])  # M has one nurse, F two surgeons...
    y[3] = 0  # now group M has no positives
    p = np.array([0, 1, 1, 0, 0])
    out = fairness_metrics(p, y, g, classes=[0, 1])
    dtpr, _ = _fairlearn_dtpr(y, p, g, [0, 1])
    assert abs(out["dtpr"][0] - dtpr) < 1e-12


def test_confusion_rows():
    y = np.array([1, 1, 0, 1, 0, 0])
    g = np.array(["F", "F", "F", "M", "M", "M"])
    p = np.array([1, 0, 0, 1, 0, 1])
    rows = {(r["group"], r["true"]): r for r in confusion_rows(p, y, g, ["surgeon", "nurse"])}
    assert rows[("F", "nurse")] == {"group": "F", "true": "nurse", "n": 2, "pred_surgeon": 1, "pred_nurse": 1,
                                    "tpr": 0.5}
    assert rows[("M", "surgeon")]["pred_nurse"] == 1
