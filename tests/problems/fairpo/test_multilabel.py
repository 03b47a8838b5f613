"""Multi-label problem: MULAN loader, metrics against sklearn, the FairPO table and the memetic recipe."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, hamming_loss

import evofair
from evofair.errors import UserError
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.fairpo.metrics import average_precision_columns, population_metrics
from evofair.problems.fairpo.mulan import load_mulan, privileged_labels
from evofair.problems.fairpo.multilabel import MultiLabelParams, MultiLabelProblem
from evofair.store.run_store import RunStore

ROOT = Path(__file__).resolve().parents[3]


# ---- metrics against sklearn ---------------------------------------------------------------
def _sk_map(y, s):
    """mAP over the labels with a positive; 0.0 when none has one (the FairPO authors' convention)."""
    aps = [average_precision_score(y[:, j], s[:, j]) for j in range(y.shape[1]) if y[:, j].any()]
    return float(np.mean(aps)) if aps else 0.0


def test_average_precision_with_ties_matches_sklearn():
    rng = np.random.default_rng(0)
    s = np.round(rng.random((60, 9)), 1)  # many tied scores
    y = (rng.random((60, 9)) < 0.3).astype(int)
    y[:, 0] = 0
    ap = average_precision_columns(s, y)
    assert np.isnan(ap[0])
    ref = [average_precision_score(y[:, j], s[:, j]) for j in range(1, 9)]
    np.testing.assert_allclose(ap[1:], ref, atol=1e-12)


def test_population_metrics_match_sklearn_overall_and_per_group():
    rng = np.random.default_rng(1)
    G, n, C = 3, 80, 7
    probs = rng.random((G, n, C))
    y = (rng.random((n, C)) < 0.25).astype(int)
    y[:, 2] = 0  # a label without positives: skipped by mAP
    groups = {"_P": np.array([1, 2, 5]), "_N": np.array([0, 3, 4, 6])}
    got = population_metrics(probs, y, groups)
    for g in range(G):
        for suffix, idx in {"": np.arange(C), **groups}.items():
            yt, pr = y[:, idx], probs[g][:, idx]
            pred = (pr >= 0.5).astype(int)
            assert got["map" + suffix][g] == pytest.approx(_sk_map(yt, pr), abs=1e-12)
            assert got["f1" + suffix][g] == pytest.approx(
                f1_score(yt, pred, average="samples", zero_division=0), abs=1e-12
            )
            assert got["acc" + suffix][g] == pytest.approx(1 - hamming_loss(yt, pred), abs=1e-12)
            assert got["em" + suffix][g] == pytest.approx(accuracy_score(yt, pred), abs=1e-12)


def test_threshold_is_at_least_one_half():
    """A score of exactly 0.5 (a logit of exactly 0) is a positive prediction (the authors'
    `>= threshold`). Hand case: y = [1, 0], logits [0, −3] → predictions [1, 0]: F1 1,
    accuracy 1, exact match 1 (with `> 0.5` they would be 0, 1/2, 0)."""
    probs = torch.sigmoid(torch.tensor([[[0.0, -3.0]]])).double().numpy()
    assert probs[0, 0, 0] == 0.5
    got = population_metrics(probs, np.array([[1, 0]]), {"_P": np.array([0]), "_N": np.array([1])})
    assert (got["f1"][0], got["acc"][0], got["em"][0]) == (1.0, 1.0, 1.0)
    assert (got["f1_P"][0], got["acc_P"][0], got["em_P"][0]) == (1.0, 1.0, 1.0)
    # against sklearn on the thresholded predictions, with many exact 0.5 scores (logit 0)
    rng = np.random.default_rng(2)
    logits = rng.integers(-2, 3, size=(2, 50, 6)).astype(float)  # a fifth of the logits are exactly 0
    probs = torch.sigmoid(torch.tensor(logits)).numpy()
    y = (rng.random((50, 6)) < 0.4).astype(int)
    groups = {"_P": np.array([0, 4]), "_N": np.array([1, 2, 3, 5])}
    got = population_metrics(probs, y, groups)
    for g in range(2):
        for suffix, idx in {"": np.arange(6), **groups}.items():
            pred = (logits[g][:, idx] >= 0).astype(int)  # the prediction rule on the logit, independent of σ
            yt = y[:, idx]
            assert got["f1" + suffix][g] == pytest.approx(
                f1_score(yt, pred, average="samples", zero_division=0), abs=1e-12
            )
            assert got["acc" + suffix][g] == pytest.approx(1 - hamming_loss(yt, pred), abs=1e-12)
            assert got["em" + suffix][g] == pytest.approx(accuracy_score(yt, pred), abs=1e-12)
    strict = population_metrics(np.where(probs == 0.5, 0.4999, probs), y, groups)
    assert strict["f1"][0] != got["f1"][0]  # the exact-0.5 entries really change the numbers


def test_metric_conventions_are_the_authors():
    """The authors' conventions: sample F1 scores an example with no true and no predicted label as 0
    (sklearn `zero_division=0`), and a group without any positive has mAP 0.0, not NaN."""
    # two examples, group P = label 0. Example 0: no true P label, none predicted → 0; example 1: y=1, p=.9 → 1
    probs = np.array([[[0.1, 0.7], [0.9, 0.2]]])
    y = np.array([[0, 1], [1, 0]])
    got = population_metrics(probs, y, {"_P": np.array([0]), "_N": np.array([1])})
    assert got["f1_P"][0] == pytest.approx((0 + 1) / 2)
    # overall (both labels): example 0 is {1} vs {1} → 1, example 1 is {0} vs {0} → 1; sklearn agrees
    assert (
        got["f1"][0]
        == pytest.approx(f1_score(y, (probs[0] >= 0.5).astype(int), average="samples", zero_division=0))
        == pytest.approx(1.0)
    )
    # the other reading (empty = 1), kept for the labelled table, equals sklearn's zero_division=1
    other = population_metrics(probs, y, {"_P": np.array([0]), "_N": np.array([1])}, zero_division=1.0)
    assert other["f1_P"][0] == pytest.approx(1.0)
    # a group none of whose labels has a positive: mAP 0.0 (the authors' `if not ap_scores: return 0.0`)
    y2 = np.array([[0, 1], [0, 0]])
    got = population_metrics(probs, y2, {"_P": np.array([0]), "_N": np.array([1])})
    assert got["map_P"][0] == 0.0
    assert got["map_N"][0] == pytest.approx(average_precision_score(y2[:, 1], probs[0][:, 1]))
    assert got["map"][0] == pytest.approx(got["map_N"][0])  # overall: the label without positives is skipped
    # random data with many empty rows against sklearn
    rng = np.random.default_rng(3)
    probs = rng.random((2, 70, 5)) ** 3  # mostly below 0.5: many examples predict nothing
    y = (rng.random((70, 5)) < 0.15).astype(int)
    y[:, 2:4] = 0
    groups = {"_P": np.array([2, 3]), "_N": np.array([0, 1, 4])}
    got = population_metrics(probs, y, groups)
    for g in range(2):
        for suffix, idx in groups.items():
            pred = (probs[g][:, idx] >= 0.5).astype(int)
            assert got["f1" + suffix][g] == pytest.approx(
                f1_score(y[:, idx], pred, average="samples", zero_division=0), abs=1e-12
            )
        assert got["map_P"][g] == 0.0
        assert got["map_N"][g] == pytest.approx(
            np.mean([average_precision_score(y[:, j], probs[g][:, j]) for j in (0, 1, 4)]), abs=1e-12
        )


# ---- loader on the shipped data -------------------------------------------------------------
def _first_data_line(path):
    lines = Path(path).read_text().splitlines()
    return lines[[i for i, line in enumerate(lines) if line.strip().lower() == "@data"][0] + 1]


def test_loader_yeast_dense():
    d = load_mulan("mulan_yeast")
    assert d.name == "yeast" and d.x_train.shape == (1500, 103) and d.y_train.shape == (1500, 14)
    assert d.x_test.shape == (917, 103)
    assert d.label_names[:4] == ("Class1", "Class2", "Class3", "Class6")  # the .xml's order, not the ARFF's
    raw = _first_data_line(ROOT / "data/mulan_yeast/yeast-train.arff").split(",")
    np.testing.assert_allclose(d.x_train[0], [float(v) for v in raw[:103]])
    assert d.y_train[0, d.label_names.index("Class4")] == int(raw[103 + 3])  # ARFF: Class1..Class14
    assert d.y_train[0, d.label_names.index("Class6")] == int(raw[103 + 5])
    freq = np.concatenate([d.y_train, d.y_test]).mean(axis=0)
    assert freq.min() == pytest.approx(0.014, abs=0.001) and freq.max() == pytest.approx(0.751, abs=0.001)


def test_loader_enron_sparse_and_emotions():
    d = load_mulan("mulan_enron")
    assert d.x_train.shape == (1123, 1001) and d.y_train.shape == (1123, 53) and d.x_test.shape == (579, 1001)
    raw = _first_data_line(ROOT / "data/mulan_enron/enron-train.arff").strip("{} ")
    ones = {int(pair.split()[0]) for pair in raw.split(",")}
    assert set(np.flatnonzero(d.x_train[0])) == {i for i in ones if i < 1001}
    e = load_mulan(str(ROOT / "data/mulan_emotions"))
    assert e.x_train.shape == (391, 72) and e.y_test.shape == (202, 6)


def test_loader_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no MULAN dataset folder"):
        load_mulan("no_such_dataset")
    (tmp_path / "bad.xml").write_text('<labels xmlns="http://mulan.sourceforge.net/labels"><label name="y"/></labels>')
    (tmp_path / "bad-train.arff").write_text("@relation r\n@attribute a numeric\n@data\n1\n")
    with pytest.raises(UserError, match="missing"):
        load_mulan(str(tmp_path))


def test_privileged_set_is_rarest_quarter_or_explicit():
    y = np.array([[1, 0, 1, 1, 0, 1, 1, 1], [1, 1, 0, 1, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 0, 0]])
    names = [f"L{i}" for i in range(8)]
    # frequencies: .67 .33 .33 1 .33 1 .67 .33 → rarest ⌈0.25·8⌉ = 2, ties broken by index → {1, 2}
    assert privileged_labels(y, names).tolist() == [1, 2]
    assert privileged_labels(y, names, explicit=["L7", 0]).tolist() == [0, 7]
    with pytest.raises(UserError):
        privileged_labels(y, names, explicit=["nope"])


@pytest.fixture(scope="module")
def emotions():
    p = MultiLabelProblem(MultiLabelParams(data="mulan_emotions", hidden=16, sft_epochs=2))
    return p.ensure_setup()


def test_problem_partition_splits_and_batched_evaluation(emotions):
    p = emotions
    assert len(p.y["train"]) + len(p.y["val"]) == 391 and len(p.y["test"]) == 202
    freq = p.y["train"].mean(axis=0)
    assert p.priv.tolist() == sorted(np.argsort(freq, kind="stable")[:2].tolist())
    a, b = p.init_weights(1), p.init_weights(2)
    both = p.evaluate([a, b], "test")
    one = p.evaluate([b], "test")
    for k in both:
        assert both[k][1] == one[k][0], k
    # the batched forward is the model's forward
    probs = torch.sigmoid(p.build_model(a)(p.x["test"])).detach().double().numpy()
    np.testing.assert_allclose(p.probabilities([a], "test")[0], probs, atol=1e-6)
    assert both["err_map_P"][0] == pytest.approx(1 - _sk_map(p.y["test"][:, p.priv], probs[:, p.priv]), abs=1e-6)


# ---- the experiment and the memetic recipe, tiny --------------------------------------------
def test_fairpo_table_tiny(tmp_path):
    recipe = evofair.load_experiment(
        ROOT / "runs/fairpo_yeast.yaml",
        [
            "problem.args.data=mulan_emotions",
            "problem.args.hidden=8",
            "experiment.args.seeds=[0,1]",
            "experiment.args.epochs=1",
            "experiment.args.batch_size=64",
        ],
    )
    evofair.experiment(recipe, tmp_path / "t", progress=False)
    out = tmp_path / "t"
    for name in (
        "fairpo_table.csv",
        "fairpo_runs.csv",
        "trajectories.csv",
        "partition.json",
        "claims.json",
        "plots/alpha.png",
        "report.md",
    ):
        assert (out / name).exists(), name
    runs = list(csv.DictReader(open(out / "fairpo_runs.csv")))
    table = list(csv.DictReader(open(out / "fairpo_table.csv")))
    assert len(table) == 13 and len(runs) == 26 and all(r["n_seeds"] == "2" for r in table)
    # the claim is recomputed from the per-seed table
    c = json.loads((out / "claims.json").read_text())[0]
    mp = {(r["method"], r["seed"]): float(r["map_P"]) for r in runs}
    mn = {(r["method"], r["seed"]): float(r["map_N"]) for r in runs}
    dp = np.mean([mp["dpo_stable", s] - mp["sft", s] for s in "01"])
    dn = np.mean([mn["dpo_stable", s] - mn["sft", s] for s in "01"])
    assert c["delta_map_P"] == pytest.approx(dp) and c["holds"] == bool(dp > 0 and dn >= -0.05)
    # every training step is recorded: 5 steps/epoch (313 rows / 64) × 1 epoch × 13 methods × 2 seeds
    traj = list(csv.DictReader(open(out / "trajectories.csv")))
    assert len(traj) == 5 * 13 * 2
    grpo = [float(t["alpha_P"]) for t in traj if t["method"] == "dpo_grpo"]
    assert all(0 < a < 1 for a in grpo)
    report = (out / "report.md").read_text()
    assert "| FairPO-DPO (stabilised GRPO) |" in report
    # the verdict gives the seed count; the other F1 convention is in its own, labelled table
    assert f"rose on {c['seeds_P_raised']}/2 seeds" in report
    assert "## Sample-F1 under the other convention (not the paper's)" in report
    for r in runs:  # scoring empty-vs-empty examples 1 instead of 0 can only raise sample F1
        assert float(r["f1_zd1_P"]) >= float(r["f1_P"]) and float(r["f1_zd1_N"]) >= float(r["f1_N"])
    part = json.loads((out / "partition.json").read_text())
    assert set(part["privileged_positives"]["train"]) == set(part["privileged"])
    assert all(v > 0 for v in part["privileged_positives"]["train"].values())  # none-positive labels are refused
    assert all(f"- {w}" in report for w in part["warnings"]) and ("## Warnings" in report) == bool(part["warnings"])


def test_memetic_recipe_tiny(tmp_path):
    recipe = load_recipe(
        ROOT / "runs/fairpo_memetic_yeast.yaml",
        [
            "problem.args.data=mulan_emotions",
            "problem.args.hidden=8",
            "problem.args.sft_epochs=2",
            "algorithm.pop_size=4",
            "algorithm.generations=2",
            "operators.refine.args.steps=2",
            "operators.refine.args.reference=parent",
        ],
    )
    res = evofair.run(recipe, tmp_path / "m", progress=False)
    assert res.front and len(res.history) == 2
    inds = RunStore(tmp_path / "m", readonly=True).individuals()
    refs = {
        i.generation: {i.operator["log"]["refine"]["reference"] for i in inds if i.generation == g}
        for g in (0, 1)
        for i in inds
        if i.generation == g
    }
    assert refs == {0: {"sft"}, 1: {"parent"}}
    assert all(len(i.operator["log"]["refine"]["alpha_p"]) == 2 for i in inds)
    assert all(0 <= i.metrics["test"]["err_map_P"] <= 1 for i in inds)


def test_recorded_yeast_table_has_every_row_and_its_claim_recomputes():
    """The committed real-size yeast run (studies/fairpo_table/results/fairpo_yeast, from runs/fairpo_yeast.yaml):
    every method on 5+ seeds, and the FairPO-DPO claim recomputed from its per-seed rows."""
    from evofair.problems.fairpo.claims import claim
    from evofair.problems.fairpo.train import METHODS

    d = ROOT / "studies/fairpo_table/results/fairpo_yeast"
    runs = list(csv.DictReader(open(d / "fairpo_runs.csv")))
    seeds = {m: {r["seed"] for r in runs if r["method"] == m} for m in METHODS}
    assert all(len(s) >= 5 for s in seeds.values()), seeds
    recorded = {c["method"]: c for c in json.loads((d / "claims.json").read_text())}
    report = (d / "report.md").read_text()
    for method in ("dpo_stable", "dpo_grpo"):
        c = claim(runs, method, epsilon=0.05)
        for key in ("delta_map_P", "delta_map_N", "map_P_method", "map_P_baseline", "holds"):
            assert c[key] == pytest.approx(recorded[method][key]), key
        verdict = "HOLDS" if c["holds"] else "DOES NOT HOLD"
        assert f"- {method}: **{verdict}**" in report
    # the verdict itself, from the rows: mAP_P up on average, mAP_N within ε = 0.05
    mp = {(r["method"], r["seed"]): float(r["map_P"]) for r in runs}
    mn = {(r["method"], r["seed"]): float(r["map_N"]) for r in runs}
    s = sorted(seeds["sft"])
    dp = np.mean([mp["dpo_stable", k] - mp["sft", k] for k in s])
    dn = np.mean([mn["dpo_stable", k] - mn["sft", k] for k in s])
    assert recorded["dpo_stable"]["holds"] == bool(dp > 0 and dn >= -0.05)


def test_reference_point_comes_from_the_data():
    """Without a recipe hv_ref, the reference lies just past a constant score's (1 − mAP_P, 1 − mAP_N)
    on the worse of validate and test; the oracle is sklearn's average precision of a constant score."""
    from sklearn.metrics import average_precision_score

    from evofair.core.indicators import just_past

    p = MultiLabelProblem(MultiLabelParams(data="mulan_emotions", hidden=16, sft_epochs=2)).ensure_setup()
    worst = [0.0, 0.0]
    for split in ("val", "test"):
        y = p.y[split]
        ap = [average_precision_score(y[:, c], np.full(len(y), 0.5)) for c in range(p.C)]
        for k, labels in enumerate((p.priv, p.nonpriv)):
            worst[k] = max(worst[k], 1 - float(np.mean([ap[c] for c in labels])))
    assert p.default_hv_ref == (just_past(worst[0]), just_past(worst[1]))
    assert all(w < r <= w + 0.02 for w, r in zip(worst, p.default_hv_ref))
    assert "hv_ref unless the recipe pins one" in p.describe()
