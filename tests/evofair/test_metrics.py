"""Population fairness metrics against fairlearn (MetricFrame, equalized_odds_difference,
demographic_parity_difference, true_positive_rate) and sklearn, held to 1e-12 (1e-9 for the
intersectional checks)."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from evofair.analysis.metrics import (
    METRIC_NAMES,
    GroupCounts,
    confusion_rows,
    fairness_metrics,
    intersectional_groups,
    is_near_constant,
)
from evofair.errors import UserError


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
        mf = MetricFrame(
            metrics=lambda yt, yp: true_positive_rate(yt, yp, pos_label=1),
            y_true=(np.asarray(y) == c).astype(int),
            y_pred=(np.asarray(p) == c).astype(int),
            sensitive_features=g,
        )
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
        mf = MetricFrame(
            metrics={
                "tpr1": lambda a, b: true_positive_rate(a, b, pos_label=1),
                "tpr0": lambda a, b: true_positive_rate(a, b, pos_label=0),
                "fpr": false_positive_rate,
                "sel": selection_rate,
            },
            y_true=y,
            y_pred=p,
            sensitive_features=g,
        )
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
    assert rows[("F", "nurse")] == {
        "group": "F",
        "true": "nurse",
        "n": 2,
        "pred_surgeon": 1,
        "pred_nurse": 1,
        "tpr": 0.5,
    }
    assert rows[("M", "surgeon")]["pred_nurse"] == 1


# -- balanced / worst-group error, ΔFPR, worst-class EOD/DPD on intersectional groups ----
# Oracles: fairlearn's MetricFrame with a DataFrame of sensitive columns (its intersectional groups,
# NaN for empty combinations, which its aggregations skip), equalized_odds_difference,
# demographic_parity_difference, and sklearn's balanced_accuracy_score; held to 1e-9.


def _intersectional_population(seed, n_classes, columns, n_models=4, n=400):
    """Models of varied quality and bias on `n` samples with sensitive columns {name: values};
    one intersection is left empty and one has no sample of the last class ("no positives")."""
    rng = np.random.default_rng(seed)
    sf = pd.DataFrame({name: rng.choice(np.asarray(values), n) for name, values in columns.items()})
    first, second = list(columns)[:2]
    a0, a1 = columns[first][0], columns[first][-1]
    b0, b1 = columns[second][0], columns[second][-1]
    sf.loc[(sf[first] == a1) & (sf[second] == b1), second] = b0  # intersection a1|b1 is empty
    y = rng.integers(0, n_classes, n)
    no_pos = ((sf[first] == a0) & (sf[second] == b1)).to_numpy()
    y[no_pos & (y == n_classes - 1)] = 0  # intersection a0|b1 has no positives of the last class
    lean = (sf[first] == a0).to_numpy()
    P = np.empty((n_models, n), dtype=int)
    for m in range(n_models):
        flip = rng.random(n) < (0.1 + 0.1 * m) * np.where(lean, 1.0, 0.2 + 0.3 * (m % 2))
        P[m] = np.where(flip, rng.integers(0, n_classes, n), y)
    return P, y, sf


def _worst_class(disparity, y, p, sf, classes):
    """fairlearn's disparity on each binarised one-vs-rest problem (pos_label=1 is class c)."""
    return max(disparity((y == c).astype(int), (p == c).astype(int), sensitive_features=sf) for c in classes)


def _class_gaps(rate, y, p, sf, classes):
    """Δ over intersectional groups of `rate` for each class one-vs-rest, through MetricFrame."""
    return [
        MetricFrame(
            metrics=lambda a, b: rate(a, b, pos_label=1),
            y_true=(y == c).astype(int),
            y_pred=(p == c).astype(int),
            sensitive_features=sf,
        ).difference(method="between_groups")
        for c in classes
    ]


def _check_against_oracles(P, y, sf, classes, binary):
    g = intersectional_groups([sf[c].to_numpy() for c in sf.columns])
    ours = fairness_metrics(P, y, g, classes=classes)
    for m, p in enumerate(P):
        err = MetricFrame(metrics=lambda a, b: 1.0 - accuracy_score(a, b), y_true=y, y_pred=p, sensitive_features=sf)
        tpr_gaps = _class_gaps(true_positive_rate, y, p, sf, classes)
        oracle = {
            "error": 1.0 - accuracy_score(y, p),
            "balanced_error": 1.0 - balanced_accuracy_score(y, p),
            "worst_group_error": err.group_max(),
            "dtpr": np.mean(tpr_gaps),
            "dtpr_rms": np.sqrt(np.mean(np.square(tpr_gaps))),
            "dfpr": np.mean(_class_gaps(false_positive_rate, y, p, sf, classes)),
            "eod": (
                equalized_odds_difference(y, p, sensitive_features=sf)
                if binary
                else _worst_class(equalized_odds_difference, y, p, sf, classes)
            ),
            "dpd": (
                demographic_parity_difference(y, p, sensitive_features=sf)
                if binary
                else _worst_class(demographic_parity_difference, y, p, sf, classes)
            ),
        }
        assert set(oracle) == set(METRIC_NAMES) == set(ours)
        for name, value in oracle.items():
            assert abs(ours[name][m] - value) < 1e-9, (name, m, ours[name][m], value)
    for name in METRIC_NAMES:  # the models differ, so rows mixed up would fail above
        assert len(set(np.round(ours[name], 12))) > 1, name
    return ours, g


def test_binary_intersectional_two_columns_match_fairlearn():
    P, y, sf = _intersectional_population(0, 2, {"sex": ["F", "M"], "race": ["A", "B", "C"]})
    _, g = _check_against_oracles(P, y, sf, [0, 1], binary=True)
    assert "F|C" in set(g) and "M|C" not in set(g)
    assert not np.any(y[g == "F|C"] == 1)  # a group with no positives: TPR 0 there, as fairlearn


def test_multiclass_intersectional_three_columns_match_fairlearn():
    cols = {"sex": ["F", "M"], "race": ["A", "B"], "age": ["young", "old"]}
    P, y, sf = _intersectional_population(2, 3, cols, n_models=3, n=500)
    _, g = _check_against_oracles(P, y, sf, [0, 1, 2], binary=False)
    assert len(set(g)) == 6  # 8 combinations less the emptied M|B|young and M|B|old
    assert not np.any(y[np.char.startswith(g, "F|B|")] == 2)  # no positives of class 2 there


def test_multiclass_string_labels_match_fairlearn():
    P, y, sf = _intersectional_population(7, 3, {"sex": ["F", "M"], "race": ["A", "B"]}, n_models=3, n=300)
    names = np.array(["lawyer", "nurse", "surgeon"])
    Ps, ys = names[P], names[y]
    g = intersectional_groups([sf["sex"].to_numpy(), sf["race"].to_numpy()])
    ours = fairness_metrics(Ps, ys, g)
    for m, p in enumerate(Ps):
        assert abs(ours["eod"][m] - _worst_class(equalized_odds_difference, ys, p, sf, names)) < 1e-9
        assert abs(ours["dpd"][m] - _worst_class(demographic_parity_difference, ys, p, sf, names)) < 1e-9
        assert abs(ours["balanced_error"][m] - (1 - balanced_accuracy_score(ys, p))) < 1e-9


def test_binary_worst_class_equals_pos_label_and_binary_path_is_unchanged():
    """For two classes the worst one-vs-rest class gives fairlearn's pos_label EOD/DPD whenever every
    group has both true classes; binary targets keep the pos_label code (bit for bit)."""
    for seed in range(3):
        P, y, g = _population(seed, groups=("F", "M", "X"))
        gc = GroupCounts.of(P, y, g)
        ours = gc.all()
        assert np.array_equal(ours["eod"], gc.eod(1)) and np.array_equal(ours["dpd"], gc.dpd(1))
        np.testing.assert_allclose(gc.eod_worst_class(), gc.eod(1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(gc.dpd_worst_class(), gc.dpd(1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(gc.eod(0), gc.eod(1), rtol=0, atol=1e-12)
    # with a group that has no positives the identity TPR_0 = 1 − FPR_1 fails (both rates are 0 by
    # convention there), which is why binary targets use the positive class and not the worst class
    # (here a constant predictor: fairlearn's EOD 0, yet FPR_0 is 1 in F and 0 by convention in M)
    y = np.array([0, 0, 1, 1, 0, 0])
    g = np.array(["F", "F", "F", "F", "M", "M"])
    p = np.zeros(6, dtype=int)
    gc = GroupCounts.of(p, y, g)
    assert equalized_odds_difference(y, p, sensitive_features=g) == 0.0
    assert fairness_metrics(p, y, g)["eod"][0] == 0.0
    assert gc.eod_worst_class()[0] == 1.0


def test_multiclass_pos_label_given_is_honoured():
    P, y, sf = _intersectional_population(4, 3, {"sex": ["F", "M"], "race": ["A", "B"]}, n_models=3, n=300)
    g = intersectional_groups([sf["sex"].to_numpy(), sf["race"].to_numpy()])
    ours = fairness_metrics(P, y, g, pos_label=1)
    for m, p in enumerate(P):
        yb, pb = (y == 1).astype(int), (p == 1).astype(int)
        assert abs(ours["eod"][m] - equalized_odds_difference(yb, pb, sensitive_features=sf)) < 1e-9
        assert abs(ours["dpd"][m] - demographic_parity_difference(yb, pb, sensitive_features=sf)) < 1e-9


def test_hand_computed_multiclass_intersectional_case():
    # three classes; groups sex|race with F|A, F|B, M|A (M|B empty); M|A has no sample of class 2
    rows = (
        [("F", "A", y, p) for y, p in zip([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0])]
        + [("F", "B", y, p) for y, p in zip([0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2])]
        + [("M", "A", y, p) for y, p in zip([0, 0, 0, 1, 1], [0, 0, 0, 0, 1])]
    )
    sex, race, y, p = (np.array(c) for c in zip(*rows))
    out = {k: v[0] for k, v in fairness_metrics(p, y, intersectional_groups([sex, race])).items()}
    assert out["error"] == pytest.approx(4 / 17)
    # recalls: class 0 6/7, class 1 4/6, class 2 3/4
    assert out["balanced_error"] == pytest.approx(1 - (6 / 7 + 4 / 6 + 3 / 4) / 3)
    # group errors F|A 2/6, F|B 1/6, M|A 1/5
    assert out["worst_group_error"] == pytest.approx(1 / 3)
    # TPR (F|A, F|B, M|A): class 0 (1/2, 1, 1), class 1 (1, 1/2, 1/2), class 2 (1/2, 1, 0: no sample)
    assert out["dtpr"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    # FPR: class 0 (1/4, 0, 1/2), class 1 (1/4, 0, 0), class 2 (0, 1/4, 0)
    assert out["dfpr"] == pytest.approx((1 / 2 + 1 / 4 + 1 / 4) / 3)
    # worst class: class 2, ΔTPR 1 (M|A's TPR is 0 by convention)
    assert out["eod"] == pytest.approx(1.0)
    # selection rates: class 0 (2/6, 2/6, 4/5), class 1 (3/6, 1/6, 1/5), class 2 (1/6, 3/6, 0)
    assert out["dpd"] == pytest.approx(1 / 2)
    assert fairness_metrics(p, y, intersectional_groups([sex, race]), pos_label=0)["dpd"][0] == pytest.approx(7 / 15)


def test_intersectional_groups_labels_and_errors():
    out = intersectional_groups([np.array(["F", "M"]), np.array([1, 2])])
    assert out.tolist() == ["F|1", "M|2"]
    assert intersectional_groups([np.array(["F", "M"])]).tolist() == ["F", "M"]
    with pytest.raises(UserError, match="separator"):
        intersectional_groups([np.array(["a|b", "c"]), np.array(["x", "y"])])
    with pytest.raises(UserError, match="lengths"):
        intersectional_groups([np.array(["a"]), np.array(["x", "y"])])


def test_balanced_error_skips_classes_without_true_samples_as_sklearn():
    y = np.array([0, 0, 1, 1, 1, 0])
    g = np.array(["F", "M", "F", "M", "F", "M"])
    P = np.array([[0, 2, 1, 1, 2, 0], [2, 2, 2, 1, 1, 1]])  # class 2 is predicted, never true
    ours = fairness_metrics(P, y, g, classes=[0, 1, 2])["balanced_error"]
    with pytest.warns(UserWarning, match="not in y_true"):
        oracle = [1 - balanced_accuracy_score(y, p) for p in P]
    np.testing.assert_allclose(ours, oracle, rtol=0, atol=1e-12)
    assert ours.tolist() == pytest.approx([1 - (2 / 3 + 2 / 3) / 2, 1 - (0 + 2 / 3) / 2])
