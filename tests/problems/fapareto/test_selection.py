"""Selection options of `biasbios`: the re-drawn train/validate split, the shrunk
ΔTPR by hand, the bootstrap upper ΔTPR against fairlearn on the same resampled indices, and a tiny
run where the evolution's fitness and the baselines' selection both use the robust ΔTPR."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_bert
from fairlearn.metrics import MetricFrame, true_positive_rate

import evofair
from evofair.analysis.metrics import GroupCounts, fairness_metrics
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
from evofair.problems.fapareto.selection import (
    bootstrap_dtpr,
    bootstrap_indices,
    multiplicities,
    shrunk_dtpr,
    stratified_resplit,
)
from evofair.store.run_store import RunStore

REPO_ROOT = Path(__file__).resolve().parents[3]


def _labels(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, n), rng.choice(np.array(["F", "M"]), n)


def test_resplit_is_stratified_disjoint_and_seeded():
    y_tr, g_tr = _labels(90, 0)
    y_va, g_va = _labels(30, 1)
    tr, va = stratified_resplit(y_tr, g_tr, y_va, g_va, 0.5, seed=3)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(120))  # a partition of train ∪ val
    y, g = np.concatenate([y_tr, y_va]), np.concatenate([g_tr, g_va])
    for a in ("F", "M"):
        for c in (0, 1):
            n_cell = int(((g == a) & (y == c)).sum())
            assert int(((g[va] == a) & (y[va] == c)).sum()) == round(0.5 * n_cell)
    again = stratified_resplit(y_tr, g_tr, y_va, g_va, 0.5, seed=3)
    other = stratified_resplit(y_tr, g_tr, y_va, g_va, 0.5, seed=4)
    assert np.array_equal(again[1], va) and not np.array_equal(other[1], va)


def _predictions_with_counts(cells):
    """y, g, predictions of one model with the given {(group, class): (n, correct)} counts."""
    y, g, p = [], [], []
    for (a, c), (n, ok) in cells.items():
        y += [c] * n
        g += [a] * n
        p += [c] * ok + [1 - c] * (n - ok)
    return np.array(y), np.array(g), np.array(p)[None, :]


def test_shrunk_dtpr_by_hand():
    # nurse (1): F 8/10, M 1/2, pooled 9/12; surgeon (0): F 3/4, M 9/10, pooled 12/14; k = 2
    y, g, P = _predictions_with_counts({("F", 1): (10, 8), ("M", 1): (2, 1), ("F", 0): (4, 3), ("M", 0): (10, 9)})
    nurse = (8 + 2 * 9 / 12) / 12 - (1 + 2 * 9 / 12) / 4
    surgeon = (9 + 2 * 12 / 14) / 12 - (3 + 2 * 12 / 14) / 6
    got = shrunk_dtpr(GroupCounts.of(P, y, g, classes=[0, 1]), 2.0)
    assert got[0] == pytest.approx((nurse + surgeon) / 2, abs=1e-12)
    assert got[0] < fairness_metrics(P, y, g, classes=[0, 1])["dtpr"][0]  # the small M-nurse cell counts less
    assert shrunk_dtpr(GroupCounts.of(P, y, g, classes=[0, 1]), 1e-9)[0] == pytest.approx(
        fairness_metrics(P, y, g, classes=[0, 1])["dtpr"][0], abs=1e-8
    )  # k → 0: the plain ΔTPR


def test_bootstrap_dtpr_equals_fairlearn_on_the_same_resamples():
    y, g = _labels(60, 2)
    rng = np.random.default_rng(5)
    P = np.where(rng.random((3, 60)) < 0.75, y, 1 - y)
    idx = bootstrap_indices(y, g, 40, seed=7)
    fast = bootstrap_dtpr(P, y, g, multiplicities(idx), classes=[0, 1])
    for b in range(40):
        r = idx[b]
        assert np.array_equal(
            np.bincount((g[r] == "F") * 2 + y[r], minlength=4), np.bincount((g == "F") * 2 + y, minlength=4)
        )  # cell sizes kept
        for m in range(3):
            gaps = [
                MetricFrame(
                    metrics=true_positive_rate, y_true=y[r] == c, y_pred=P[m, r] == c, sensitive_features=g[r]
                ).difference()
                for c in (0, 1)
            ]
            assert fast[m, b] == pytest.approx(np.mean(gaps), abs=1e-12)
    assert np.array_equal(bootstrap_indices(y, g, 40, seed=7), idx)


def _tiny_recipe(tmp_path, **selection):
    data = tmp_path / "model"
    data.mkdir()
    tiny_bert(data)
    recipe = load_recipe(REPO_ROOT / "runs" / "fapareto_biasbios.yaml").model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(
        cache_dir=str(tmp_path / "cache"),
        model_dir=str(data),
        limit=40,
        max_length=32,
        hidden=[8],
        embed_workers=1,
        selection=selection,
    )
    recipe["algorithm"].update(pop_size=6, generations=2, n_offsprings=6)
    recipe["problem"]["args"]["baselines"] = {
        "vanilla": 2,
        "lambdas": [0.5, 2.0],
        "epochs": 3,
        "threshold": ["true_positive_rate_parity"],
    }
    return recipe


def test_robust_fitness_and_baselines_use_the_same_rule(tmp_path):
    recipe = _tiny_recipe(tmp_path, val_fraction=0.5, split_seed=1, dtpr="upper", n_boot=50, upper_level=0.9)
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    problem = BiasBios(BiasBiosParams(**recipe["problem"]["args"])).ensure_setup()
    assert len(problem.splits["train"]) + len(problem.splits["val"]) == 80 and len(problem.splits["test"]) == 40
    val, test, train = problem.splits["val"], problem.splits["test"], problem.splits["train"]
    y, g = np.concatenate([train.y, val.y]), np.concatenate([train.g, val.g])
    assert len(val) == sum(round(0.5 * int(((g == a) & (y == c)).sum())) for a in ("F", "M") for c in (0, 1))
    mult = multiplicities(bootstrap_indices(val.y, val.g, 50, 0))

    def robust(w):
        pred = problem.predictions_of_head(w, "val")[None, :]
        return float(np.quantile(bootstrap_dtpr(pred, val.y, val.g, mult, [0, 1]), 0.9, axis=1)[0])

    store = RunStore(out, readonly=True)
    for ind in res.front:  # the evolution's fitness: the upper bootstrap ΔTPR on validate; test plain
        w = store.get_weights(ind.weights_hash)
        assert ind.metrics["val"]["dtpr"] == pytest.approx(robust(w), abs=1e-12)
        plain = fairness_metrics(problem.predictions_of_head(w, "test")[None, :], test.y, test.g, classes=[0, 1])
        assert ind.metrics["test"]["dtpr"] == plain["dtpr"][0]
    base = json.loads((out / "baselines.json").read_text())
    heads = [m for m in base["models"] if "weights_hash" in m]
    assert heads
    for m in heads:  # the baselines were selected on the same robust ΔTPR
        assert m["metrics"]["val"]["dtpr"] == pytest.approx(robust(store.get_weights(m["weights_hash"])), abs=1e-12)
    store.close()
