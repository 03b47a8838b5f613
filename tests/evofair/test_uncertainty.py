"""Bootstrap intervals (evofair/analysis/uncertainty.py) against a slow reference written plainly here: a Python
loop over the resamples with sklearn/fairlearn metrics; coverage of a known binomial rate; strata
kept; the paired HV difference on a hand-made case; the correlation against numpy per resample."""

from __future__ import annotations

import numpy as np
import pytest

from evofair.analysis import uncertainty as unc
from evofair.core.problem import Objective


def _case(n=150, models=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.choice(["F", "M"], n, p=[0.35, 0.65])
    P = np.where(rng.random((models, n)) < 0.8, y, 1 - y)  # ~20% wrong
    return {"y_true": y, "y_pred": P, "groups": g, "classes": np.array([0, 1]), "pos_label": 1}


def _reference(out, idx, level):
    """The slow bootstrap: each resample's arrays, fairlearn/sklearn metrics, np.quantile."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

    y, g, P = out["y_true"], out["groups"], out["y_pred"]
    stats = {k: np.zeros((len(idx), len(P))) for k in ("error", "dtpr", "eod", "dpd", "balanced_error")}
    for b, rows in enumerate(idx):
        yb, gb = y[rows], g[rows]
        for m, pred in enumerate(P):
            pb = pred[rows]
            stats["error"][b, m] = 1 - accuracy_score(yb, pb)
            stats["balanced_error"][b, m] = 1 - balanced_accuracy_score(yb, pb)
            tpr = {(a, c): recall_score(yb[gb == a] == c, pb[gb == a] == c) for a in ("F", "M") for c in (0, 1)}
            stats["dtpr"][b, m] = np.mean([abs(tpr["F", c] - tpr["M", c]) for c in (0, 1)])
            fpr = {a: 1 - recall_score(yb[gb == a] == 0, pb[gb == a] == 0) for a in ("F", "M")}
            stats["eod"][b, m] = max(abs(tpr["F", 1] - tpr["M", 1]), abs(fpr["F"] - fpr["M"]))
            stats["dpd"][b, m] = abs(np.mean(pb[gb == "F"] == 1) - np.mean(pb[gb == "M"] == 1))
            if b < 3:  # the hand-written EOD and DPD are fairlearn's
                assert stats["eod"][b, m] == pytest.approx(
                    equalized_odds_difference(yb, pb, sensitive_features=gb), abs=1e-12
                )
                assert stats["dpd"][b, m] == pytest.approx(
                    demographic_parity_difference(yb, pb, sensitive_features=gb), abs=1e-12
                )
    a = (1 - level) / 2
    return {k: np.quantile(v, [a, 1 - a], axis=0) for k, v in stats.items()}


def test_intervals_equal_a_slow_reference_bootstrap_and_repeat_with_the_seed():
    out = _case(models=2)
    idx = unc.stratified_indices(out["y_true"], out["groups"], 25, seed=7)
    fast = unc.metric_intervals(out, idx, 0.9)
    ref = _reference(out, idx, 0.9)
    for k, (lo, hi) in ref.items():
        np.testing.assert_allclose(fast[k][0], lo, rtol=0, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(fast[k][1], hi, rtol=0, atol=1e-12, err_msg=k)
    again = unc.metric_intervals(out, unc.stratified_indices(out["y_true"], out["groups"], 25, seed=7), 0.9)
    other = unc.metric_intervals(out, unc.stratified_indices(out["y_true"], out["groups"], 25, seed=8), 0.9)
    assert all(np.array_equal(again[k][j], fast[k][j]) for k in fast for j in (0, 1))
    assert any(not np.array_equal(other[k][0], fast[k][0]) for k in fast)
    # the identity resample gives the metrics of the data as it is (evofair.analysis.metrics, checked against fairlearn elsewhere)
    from evofair.analysis.metrics import fairness_metrics

    point = unc.point_metrics(out)
    direct = fairness_metrics(out["y_pred"], out["y_true"], out["groups"], classes=[0, 1], pos_label=1)
    assert all(np.array_equal(point[k], direct[k]) for k in direct)


def test_stratification_keeps_every_group_class_count():
    out = _case(n=97)
    y, g = out["y_true"], out["groups"]
    idx = unc.stratified_indices(y, g, 40, seed=1)
    assert idx.shape == (40, 97)
    for rows in idx:
        for a in ("F", "M"):
            for c in (0, 1):
                assert np.sum((g[rows] == a) & (y[rows] == c)) == np.sum((g == a) & (y == c))
        assert np.all(g[rows] == g) and np.all(y[rows] == y)  # each slot is refilled from its own cell
    w = unc.multiplicities(idx, 97)
    assert np.all(w.sum(axis=1) == 97) and np.array_equal(w[3], np.bincount(idx[3], minlength=97))


def test_coverage_of_a_known_binomial_rate():
    """200 simulated test sets with error rate p: the 90% interval covers p in 0.9 ± 3·sqrt(0.09/200)."""
    p, n, sims, level = 0.3, 400, 200, 0.9
    rng = np.random.default_rng(2026)
    covered = 0
    for s in range(sims):
        y = rng.integers(0, 2, n)
        g = rng.choice(["a", "b"], n)
        wrong = rng.random(n) < p
        out = {"y_true": y, "y_pred": np.where(wrong, 1 - y, y)[None, :], "groups": g, "classes": [0, 1]}
        lo, hi = unc.metric_intervals(out, unc.stratified_indices(y, g, 250, seed=s), level, names=["error"])["error"]
        covered += bool(lo[0] <= p <= hi[0])
    tol = 3 * np.sqrt(level * (1 - level) / sims)
    assert abs(covered / sims - level) <= tol, covered


class _HandMade:
    """Two objectives (error, dtpr) and fixed predictions per 'genome' (an index into a table)."""

    objectives = (Objective("error"), Objective("dtpr"))
    objective_names = ["error", "dtpr"]

    def __init__(self, out):
        self.out = out

    def minimised(self, metrics):
        return np.stack([np.asarray(metrics[o.name], float) for o in self.objectives], axis=1)

    def example_outputs(self, genomes, split):
        return {**self.out, "y_pred": self.out["y_pred"][list(genomes)] if genomes else self.out["y_pred"][:0]}


def test_paired_hv_difference_where_the_front_dominates_everywhere():
    n = 200
    y = np.tile([0, 1], n // 2)
    g = np.repeat(["F", "M"], n // 2)
    perfect = y.copy()
    worse = y.copy()
    worse[::10] = 1 - worse[::10]  # 10% wrong, the same in both groups and classes
    biased = y.copy()
    biased[(g == "F") & (y == 1)] = 0  # every female positive missed
    biased[(g == "F") & (y == 1) & (np.arange(n) % 4 == 1)] = 1
    out = {
        "y_true": y,
        "y_pred": np.stack([perfect, worse, biased]),
        "groups": g,
        "classes": np.array([0, 1]),
        "pos_label": 1,
    }
    problem = _HandMade(out)
    point = unc.point_metrics(out, ["error", "dtpr"])
    rows = [{s: {k: float(point[k][j]) for k in point} for s in ("val", "test")} for j in range(3)]
    idx = unc.stratified_indices(y, g, 300, seed=0)
    res = unc.front_vs_union(problem, [0], rows[:1], [1, 2], rows[1:], (0.25, 0.25), idx, 0.9)
    assert res["hv_front"] == pytest.approx(0.0625, abs=1e-15)  # (0.25 − 0)·(0.25 − 0)
    e, d = point["error"][1], point["dtpr"][1]
    assert e == pytest.approx(0.1) and d == pytest.approx(0.0)  # 'worse' dominates 'biased' on val: only it counts
    assert res["hv_union"] == pytest.approx((0.25 - e) * (0.25 - d), abs=1e-15)
    assert res["diff"] == pytest.approx(0.0625 - (0.25 - e) * (0.25 - d), abs=1e-15)
    assert 0 < res["lo"] <= res["diff"] <= res["hi"]


def test_correlation_per_resample_equals_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 6)), rng.random((50, 6))
    r = unc.pearson_samples(x, y)
    np.testing.assert_allclose(r, [np.corrcoef(a, b)[0, 1] for a, b in zip(x, y)], atol=1e-12)
    assert np.isnan(unc.pearson_samples(np.ones((1, 4)), y[:1, :4])[0])
