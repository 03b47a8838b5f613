"""The search-vs-sweep study's front-selection rules (studies/search_vs_sweep/selection.py), each on a
case computed by hand or by an independent oracle (fairlearn-equal metrics, brute force over subsets)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies" / "search_vs_sweep"))
from selection import (  # noqa: E402
    Scorer,
    best_hv_subset,
    nondominated,
    parse_rule,
    shrunk_metrics,
    shrunk_rate,
    stability,
    stable,
    stratified_resample,
    thin,
)

from evofair.analysis.metrics import fairness_metrics  # noqa: E402
from evofair.core.indicators import hypervolume  # noqa: E402

SCORER = Scorer(("error", "eod"), np.array([0, 1]), 1, (1.0, 1.0))


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = np.array(["a"] * (n // 2) + ["b"] * (n - n // 2))
    return y, g


@pytest.mark.parametrize("n_classes, pos_label", [(2, 1), (2, None), (4, None), (4, 2)])
def test_scorer_counts_give_the_library_s_metrics(n_classes, pos_label):
    """The bincount tensor against evofair's fairness_metrics (held to fairlearn in its own tests)."""
    rng = np.random.default_rng(n_classes)
    y, g = rng.integers(0, n_classes, 90), rng.choice(["x", "y", "z"], 90)
    P = rng.integers(0, n_classes, (7, 90))
    classes = np.arange(n_classes)
    m = fairness_metrics(P, y, g, classes=classes, pos_label=pos_label)
    for objectives in (("error", "dtpr"), ("error", "eod"), ("dpd", "worst_group_error")):
        F = Scorer(objectives, classes, pos_label, (1.0, 1.0))(P, y, g)
        assert np.allclose(F, np.column_stack([m[o] for o in objectives]))


def test_a_clearly_dominated_candidate_is_never_stable_and_a_perfect_one_always_is():
    """The perfect classifier has error 0 and EOD 0 on every resample; the inverted one error 1."""
    y, g = _table()
    P = np.stack([y, 1 - y])
    assert stability(P, y, g, SCORER, B=20).tolist() == [1.0, 0.0]
    assert stable(0.5, B=20)(P, y, g, SCORER).tolist() == [0]


def test_stability_of_a_trade_off_no_resample_can_reverse_is_one():
    """A (right on group a, 0 on group b: EOD 1, error = b's positives) is always more accurate than B
    (1 everywhere: EOD 0, error = every negative); neither dominates the other on any resample, and
    a copy of B is as stable as its twin."""
    y = np.array([1] * 10 + [0] * 10 + [1] * 2 + [0] * 18)
    g = np.array(["a"] * 20 + ["b"] * 20)
    A = np.where(g == "a", y, 0)
    B = np.ones_like(y)
    assert stability(np.stack([A, B, B]), y, g, SCORER, B=10).tolist() == [1.0, 1.0, 1.0]


def test_stratified_resample_keeps_each_group_size():
    g = np.array(["a"] * 7 + ["b"] * 2 + ["c"])
    idx = stratified_resample(g, np.random.default_rng(3))
    assert sorted(g[idx].tolist()) == sorted(g.tolist())


def test_shrinkage_pulls_a_one_of_one_group_rate_toward_the_pooled_rate_by_k_pseudo_counts():
    num = np.array([[1.0, 30.0]])  # group 0: 1 of 1; group 1: 30 of 100
    den = np.array([[1.0, 100.0]])
    pooled = 31 / 101
    out = shrunk_rate(num, den, 10.0)
    assert out[0, 0] == pytest.approx((1 + 10 * pooled) / 11)  # 0.36994 rather than 1
    assert out[0, 0] == pytest.approx(0.369937, abs=1e-6)
    assert out[0, 1] == pytest.approx((30 + 10 * pooled) / 110)


def test_shrunk_metrics_at_k_zero_are_the_library_metrics_and_large_k_removes_the_gap():
    rng = np.random.default_rng(2)
    y, g = _table(50, 2)
    P = rng.integers(0, 2, (6, 50))
    m = fairness_metrics(P, y, g, classes=np.array([0, 1]), pos_label=1)
    F0 = shrunk_metrics(P, y, g, SCORER, 0.0)
    assert np.allclose(F0, np.column_stack([m["error"], m["eod"]]))
    dtpr = Scorer(("error", "dtpr"), np.array([0, 1]), 1, (1.0, 1.0))
    assert np.allclose(shrunk_metrics(P, y, g, dtpr, 0.0)[:, 1], m["dtpr"])
    assert np.all(shrunk_metrics(P, y, g, SCORER, 1e9)[:, 1] < 1e-6)


def test_a_tiny_group_cannot_drive_shrunk_eod_to_one():
    """Group b has one positive and one negative: a model right on the big group and wrong on both of
    b's rows has EOD 1; shrunk by k = 10 toward its pooled rates, far less (hand-computed)."""
    y = np.array([1] * 10 + [0] * 10 + [1, 0])
    g = np.array(["a"] * 20 + ["b"] * 2)
    P = np.array([[1] * 10 + [0] * 10 + [0, 1]])
    assert fairness_metrics(P, y, g, classes=np.array([0, 1]), pos_label=1)["eod"][0] == 1.0
    tpr_a, tpr_b = (10 + 10 * 10 / 11) / 20, (0 + 10 * 10 / 11) / 11
    assert shrunk_metrics(P, y, g, SCORER, 10.0)[0, 1] == pytest.approx(tpr_a - tpr_b)  # FPR gap is the same


def test_best_hv_subset_beats_greedy_and_matches_brute_force():
    """A greedy pick takes the knee (0.5, 0.5) first and ends at HV 2.75; the best pair is the two
    extremes, HV 2 + 1.6 − 0.8 = 2.8 (ref (2, 2))."""
    F = np.array([[0.0, 1.0], [0.5, 0.5], [1.2, 0.0]])
    chosen = best_hv_subset(F, (2.0, 2.0), 2)
    assert chosen.tolist() == [0, 2]
    assert hypervolume(F[chosen], (2.0, 2.0)) == pytest.approx(2.8)


def test_best_hv_subset_is_the_brute_force_optimum_on_random_fronts():
    rng = np.random.default_rng(5)
    for _ in range(10):
        x = np.sort(rng.random(8))
        F = np.column_stack([x, 1 - x ** rng.uniform(0.3, 3)])  # a convex or concave front of 8
        for K in (1, 2, 3, 5):
            best = max(hypervolume(F[list(c)], (1.0, 1.0)) for c in itertools.combinations(range(len(F)), K))
            assert hypervolume(F[best_hv_subset(F, (1.0, 1.0), K)], (1.0, 1.0)) == pytest.approx(best)


def test_thin_keeps_at_most_k_front_members():
    y, g = _table(40, 4)
    rng = np.random.default_rng(4)
    P = rng.integers(0, 2, (30, 40))
    kept = thin(3)(P, y, g, SCORER)
    assert len(kept) <= 3 and set(kept.tolist()) <= set(nondominated(SCORER(P, y, g)).tolist())


def test_parse_rule_names_what_it_expected():
    for bad in ("lucky", "stability:x", "stability:0.5:median", "thin:2.5", "plain:1"):
        with pytest.raises(ValueError, match="--front-rule: expected plain"):
            parse_rule(bad)


def test_stability_on_bootstrap_means_keeps_the_same_trade_off():
    y = np.array([1] * 10 + [0] * 10 + [1] * 2 + [0] * 18)
    g = np.array(["a"] * 20 + ["b"] * 20)
    P = np.stack([np.where(g == "a", y, 0), np.ones_like(y), 1 - y])  # the third: every row wrong
    assert parse_rule("stability:0.5:mean")(P, y, g, SCORER).tolist() == [0, 1]


def test_the_plain_rule_on_the_kept_pools_gives_the_study_s_front(tmp_path):
    """End to end on a generated table: the pools kept for the rules reproduce the study's own front
    under the plain rule (same test HV), the cache reads back what was written, and a rule's row
    holds the ratios as quotients of its HVs."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "problems" / "merging"))
    import search_vs_sweep as svs
    from rule_seed import cached_pools, ceilings, rule_row
    from tasks import Task
    from test_merge_front import _loans_inner  # the generated loans table as an inner problem

    task = Task("loans", _loans_inner(tmp_path, n=300), (1.0, 1.0), ("error", "eod"))
    args = svs.parse(["--pop", "4", "--gens", "2", "--epochs", "2", "--n-boot", "10", "--front-rule", "shrunk:5"])
    pools, meta = cached_pools(task, 1, args, tmp_path / "pools")
    again, _ = cached_pools(task, 1, args, tmp_path / "pools")
    assert np.array_equal(again["pipeline"].sel, pools["pipeline"].sel)
    plain_row = rule_row(task, pools, meta, "plain", 10)
    assert plain_row["hv_pipeline"] == pytest.approx(meta["hv_pipeline_study"])
    assert plain_row["ratio_equal"] == pytest.approx(plain_row["ratio_equal_vs_plain_sweep"])
    c = ceilings(task, pools, meta)  # choosing on test itself: no rule's front can score more
    assert c["hv_all"] >= c["hv_population"] >= plain_row["hv_pipeline"]
    assert c["hv_sweep_equal"] >= plain_row["hv_sweep_equal"]
    row = rule_row(task, pools, meta, "shrunk:5@all", 10)
    assert row["n_candidates_pipeline"] == len(pools["pipeline"].sel) >= plain_row["n_candidates_pipeline"]
    if row["hv_sweep_equal"]:
        assert row["ratio_equal"] == pytest.approx(row["hv_pipeline"] / row["hv_sweep_equal"])


def test_rule_rows_interval_is_the_benchmark_s_on_the_same_resamples():
    from types import SimpleNamespace

    import search_vs_sweep as svs
    from rule_seed import paired_interval
    from tasks import Task

    rng = np.random.default_rng(7)
    y, g = rng.integers(0, 2, 120), rng.choice(["a", "b", "c"], 120)
    a, b = rng.integers(0, 2, (5, 120)), rng.integers(0, 2, (4, 120))
    task = Task("t", {}, (1.0, 1.0), ("error", "eod"))
    inner = SimpleNamespace(splits={"test": SimpleNamespace(y=y, g=g)}, n_classes=2, pos_label=1)
    theirs = svs.paired_interval(inner, task, a, b, 30, 3)
    assert paired_interval(SCORER, y, g, a, b, 30, 3, task.ref) == pytest.approx(theirs, abs=1e-12)


def test_screen_rows_add_up_across_runs_and_replace_their_own(tmp_path):
    from screen_selection import write_rows

    path = tmp_path / "selection_plain.json"
    write_rows(path, [{"task": "compas", "seed": 1, "v": 1}, {"task": "compas", "seed": 2, "v": 1}])
    write_rows(path, [{"task": "compas", "seed": 2, "v": 2}, {"task": "biasbios_head", "seed": 3, "v": 2}])
    rows = json.loads(path.read_text())
    assert [(r["task"], r["seed"], r["v"]) for r in rows] == [
        ("biasbios_head", 3, 2),
        ("compas", 1, 1),
        ("compas", 2, 2),
    ]
