"""fair_classification's baselines and report on small synthetic data (seconds): every method is
written; each reported point's metrics equal fairlearn's on the stored predictions, and refitting
the same seeded fairlearn estimator gives the same predictions; the selection rule is validate
non-domination (checked by brute force); the report's hypervolumes equal pymoo's HV on the listed
points; a multi-class target skips the binary-only fairlearn methods with a note."""

import csv
import json

import numpy as np
import pytest
import torch
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from pymoo.indicators.hv import HV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

import evofair
from evofair.core.seeding import derive_seed
from evofair.problems.common.classification import FeatureClassificationProblem, HeadArgs, SplitData
from evofair.problems.fairclass.baselines import FairBaselineArgs, read_predictions, run_fair_baselines
from evofair.problems.fairclass.report import fair_report_sections

GROUPS = np.array(["F|a", "F|b", "M|a", "M|b"])
REF = (0.5, 0.5)


class Synthetic(FeatureClassificationProblem):
    """Labels whose base rate depends on an intersectional group that the features leak, so error
    and group fairness conflict; `n_classes` 2 or 3."""

    name = "synthetic_fair"
    default_hv_ref = REF

    def __init__(self, params=None, *, n_classes=2, baselines=None):
        super().__init__(params)
        self.class_names = ("no", "yes") if n_classes == 2 else ("c0", "c1", "c2")
        self.pos_label = 1 if n_classes == 2 else None
        self.baseline_args = baselines

    def load_splits(self):
        rng = np.random.default_rng(0)
        C = len(self.class_names)
        out = {}
        for split, n in (("train", 300), ("val", 200), ("test", 200)):
            g = rng.choice(GROUPS, n)
            rate = np.select([g == "F|a", g == "F|b", g == "M|a"], [0.7, 0.5, 0.35], 0.2)
            y = (rng.random(n) < rate).astype(np.int64)
            if C == 3:
                y = np.where(rng.random(n) < 0.3, 2, y)
            X = (
                rng.normal(size=(n, 8))
                + 0.9 * y[:, None] * np.linspace(1, 0, 8)
                + 0.9 * (np.char.startswith(g.astype(str), "F"))[:, None] * np.linspace(0, 1, 8)
            )
            out[split] = SplitData(torch.tensor(X, dtype=torch.float32), y, g)
        return out

    def after_run(self, store, out, recipe):
        return run_fair_baselines(self, store, out, recipe, self.baseline_args)

    def report_sections(self, store, out, recipe):
        return fair_report_sections(self, store, out, recipe)


ARGS = dict(
    vanilla=2,
    lambdas=[2.0],
    min_epochs=2,
    epochs=2,
    batch_size=64,
    threshold=["equalized_odds"],
    reductions=["equalized_odds", "demographic_parity", "true_positive_rate_parity"],
    eps=[0.05],
    expgrad_max_iter=5,
    grid_size=4,
    n_jobs=2,
)  # fairlearn's reductions cost ~1 s per fit even on tiny data


def _run(tmp_path, n_classes=2, name="run"):
    problem = Synthetic(
        HeadArgs(hidden=[6], objectives=["error", "eod"]), n_classes=n_classes, baselines=FairBaselineArgs(**ARGS)
    )
    recipe = {
        "name": "synthetic_fair",
        "problem": {"name": "synthetic_fair"},
        "algorithm": {"name": "nsga2", "pop_size": 6, "generations": 2},
        "operators": {
            "crossover": {"name": "uniform"},
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05, "relative": True}},
            "refine": {"name": "sft", "args": {"epochs": 1, "lr": 1e-2, "batch_size": 64}},
        },
        "seed": 4,
        "hv_ref": list(REF),
    }
    out = tmp_path / name
    evofair.run(recipe, out, problem=problem, progress=False)
    return problem, out


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("fairclass"))


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_method_is_written_and_flagged(binary_run):
    problem, out = binary_run
    rows = _csv(out / "baselines.csv")
    assert list(rows[0]) == ["method", "id", "error_val", "error_test", "eod_val", "eod_test"]
    assert {r["method"] for r in rows} == {
        "vanilla",
        "scalarisation",
        "threshold",
        "exponentiated_gradient",
        "grid_search",
    }
    base = json.loads((out / "baselines.json").read_text())
    counts = base["budget"]["candidates"]
    assert counts["exponentiated_gradient"] == 3 * 1  # every (constraint, eps) is a candidate
    assert counts["grid_search"] >= 3 * 4 - 3  # every grid point of each constraint (fairlearn may drop repeats)
    assert counts["vanilla"] == 2 * 2 and counts["threshold"] == 2
    for c in base["candidates"]:
        assert c["uses_sensitive_at_prediction"] is (c["method"] == "threshold")
    preds = read_predictions(out)
    assert set(preds) == {r["id"] for r in rows}


def test_points_match_fairlearn_on_stored_predictions(binary_run):
    problem, out = binary_run
    preds = read_predictions(out)
    base = json.loads((out / "baselines.json").read_text())
    for row in _csv(out / "baselines.csv"):
        for split in ("val", "test"):
            data = problem.splits[split]
            p = preds[row["id"]][split]
            assert float(row[f"error_{split}"]) == pytest.approx(1 - accuracy_score(data.y, p), abs=1e-12)
            assert float(row[f"eod_{split}"]) == pytest.approx(
                equalized_odds_difference(data.y, p, sensitive_features=data.g), abs=1e-12
            )
    model = next(m for m in base["models"] if m["method"] == "exponentiated_gradient")
    dpd = demographic_parity_difference(
        problem.splits["test"].y, preds[model["id"]]["test"], sensitive_features=problem.splits["test"].g
    )
    assert model["metrics"]["test"]["dpd"] == pytest.approx(dpd, abs=1e-12)
    from evofair.store.run_store import RunStore

    store = RunStore(out, readonly=True)
    for m in base["models"]:  # a head's stored predictions are its stored weights' predictions
        if "weights_hash" in m:
            w = store.get_weights(m["weights_hash"])
            np.testing.assert_array_equal(problem.predictions_of_head(w, "test"), preds[m["id"]]["test"])
    store.close()


def test_refitting_the_seeded_fairlearn_estimators_gives_the_same_predictions(binary_run):
    from fairlearn.reductions import EqualizedOdds, ExponentiatedGradient, GridSearch, TruePositiveRateParity

    problem, out = binary_run
    base = json.loads((out / "baselines.json").read_text())
    X = {s: problem.splits[s].X.numpy().astype(np.float64) for s in ("train", "val", "test")}
    train = problem.splits["train"]
    eg_c = next(
        c
        for c in base["candidates"]
        if c["method"] == "exponentiated_gradient" and c["constraints"] == "true_positive_rate_parity"
    )
    lr = lambda seed: LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200, random_state=seed % 2**32)  # noqa
    eg = ExponentiatedGradient(
        lr(eg_c["seed"]),
        constraints=TruePositiveRateParity(difference_bound=eg_c["eps"]),
        eps=eg_c["eps"],
        max_iter=ARGS["expgrad_max_iter"],
    )
    eg.fit(X["train"], train.y, sensitive_features=train.g)
    pred = eg.predict(X["test"], random_state=derive_seed(eg_c["seed"], "predict", "test") % 2**32)
    data = problem.splits["test"]
    assert eg_c["metrics"]["test"]["error"] == pytest.approx(1 - accuracy_score(data.y, pred), abs=1e-12)
    assert eg_c["metrics"]["test"]["eod"] == pytest.approx(
        equalized_odds_difference(data.y, pred, sensitive_features=data.g), abs=1e-12
    )
    gs_c = [c for c in base["candidates"] if c["method"] == "grid_search" and c["constraints"] == "equalized_odds"]
    gs = GridSearch(lr(gs_c[0]["seed"]), constraints=EqualizedOdds(), grid_size=ARGS["grid_size"], grid_limit=2.0)
    gs.fit(X["train"], train.y, sensitive_features=train.g)
    assert len(gs.predictors_) == len(gs_c)
    for c, predictor in zip(gs_c, gs.predictors_):
        p = predictor.predict(X["val"])
        assert c["metrics"]["val"]["error"] == pytest.approx(1 - accuracy_score(problem.splits["val"].y, p), abs=1e-12)


def _dominates(a, b):
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _val_non_dominated(models):
    pts = [(m["metrics"]["val"]["error"], m["metrics"]["val"]["eod"]) for m in models]
    return [m for m, p in zip(models, pts) if not any(_dominates(q, p) for q in pts)]


def test_selection_is_validate_non_domination(binary_run):
    problem, out = binary_run
    base = json.loads((out / "baselines.json").read_text())
    reported = {m["id"] for m in base["models"]}
    for method in ("vanilla", "scalarisation", "threshold", "exponentiated_gradient", "grid_search"):
        cands = [c for c in base["candidates"] if c["method"] == method]
        keep = _val_non_dominated(cands)
        mine = {m["id"] for m in base["models"] if m["method"] == method}
        assert mine <= {c["id"] for c in keep}  # nothing dominated on val is reported
        key = lambda c: tuple(c["metrics"][s][n] for s in ("val", "test") for n in ("error", "eod"))
        assert {key(c) for c in keep} == {key(c) for c in cands if c["id"] in mine}  # each point once
        dominated = [c for c in cands if c not in keep]
        assert not any(c["id"] in reported for c in dominated)


def _hv(points):
    P = np.asarray(points, dtype=float).reshape(-1, 2)
    return float(HV(ref_point=np.asarray(REF))(P)) if len(P) else 0.0


def test_report_hypervolumes_equal_pymoo(binary_run):
    problem, out = binary_run
    summary = json.loads((out / "summary.json").read_text())
    rows = _csv(out / "baselines.csv")
    base = json.loads((out / "baselines.json").read_text())
    test_pt = lambda r: (float(r["error_test"]), float(r["eod_test"]))
    for method in ("vanilla", "scalarisation", "threshold", "exponentiated_gradient", "grid_search"):
        pts = [test_pt(r) for r in rows if r["method"] == method]
        assert summary[f"hv_{method}_test"] == pytest.approx(_hv(pts), abs=1e-12)
    for key, methods in (
        ("fairlearn_union", {"exponentiated_gradient", "grid_search"}),
        ("no_sensitive_union", {"vanilla", "scalarisation", "exponentiated_gradient", "grid_search"}),
        ("all_union", None),
    ):
        models = [m for m in base["models"] if methods is None or m["method"] in methods]
        pts = [(m["metrics"]["test"]["error"], m["metrics"]["test"]["eod"]) for m in _val_non_dominated(models)]
        assert summary[f"hv_{key}_test"] == pytest.approx(_hv(pts), abs=1e-12)
    front = _csv(out / "front.csv")
    hv_front = _hv([(float(r["error_test"]), float(r["eod_test"])) for r in front])
    assert summary["hv_front_test"] == pytest.approx(hv_front, abs=1e-12)
    if summary["hv_fairlearn_union_test"] > 0:
        assert summary["ratio_front_vs_fairlearn_union"] == pytest.approx(hv_front / summary["hv_fairlearn_union_test"])
    report = (out / "report.md").read_text()
    assert "## Evolved front vs baselines (test split)" in report and "fairlearn ExponentiatedGradient" in report
    assert f"{summary['hv_fairlearn_union_test']:.6f}" in report
    assert "## Chosen models: per-group metrics (test)" in report
    assert "| F\\|a | " in report  # group names are escaped in markdown tables


def test_multiclass_skips_binary_only_fairlearn_methods(tmp_path):
    problem, out = _run(tmp_path, n_classes=3)
    base = json.loads((out / "baselines.json").read_text())
    assert {m["method"] for m in base["models"]} <= {"vanilla", "scalarisation"}
    assert base["budget"]["candidates"]["exponentiated_gradient"] == 0
    assert base["budget"]["candidates"]["threshold"] == 0
    assert any("binary-only" in n for n in base["budget"]["notes"])
    report = (out / "report.md").read_text()
    assert "binary-only" in report  # the note is in the report (events and budget line)
    summary = json.loads((out / "summary.json").read_text())
    assert "hv_fairlearn_union_test" not in summary and "hv_vanilla_test" in summary


class OneLabelGroup(Synthetic):
    """Validation group 'M|b' has only negatives: fairlearn's ThresholdOptimizer refuses it."""

    def load_splits(self):
        out = super().load_splits()
        val = out["val"]
        y = np.where(val.g == "M|b", 0, val.y)
        out["val"] = SplitData(val.X, y, val.g)
        return out


def test_refused_threshold_optimizer_is_skipped_with_a_note(tmp_path):
    from types import SimpleNamespace

    from evofair.problems.common.baselines import BaselineArgs, head_candidates
    from evofair.store.run_store import RunStore

    problem = OneLabelGroup(HeadArgs(hidden=[6], objectives=["error", "eod"])).ensure_setup()
    args = BaselineArgs(vanilla=1, lambdas=[], epochs=1, threshold=["equalized_odds"])
    store = RunStore(tmp_path / "store")
    try:
        refused: list[str] = []
        cands, *_ = head_candidates(problem, store, SimpleNamespace(seed=1), args, threshold_errors=refused)
        assert [c["method"] for c in cands] == ["vanilla"] and "Degenerate labels" in refused[0]
        with pytest.raises(ValueError, match="Degenerate labels"):  # FaPareto's own behaviour: it raises
            head_candidates(problem, store, SimpleNamespace(seed=1), args)
    finally:
        store.close()
