"""The `merge` problem: a front of merge recipes over fixed anchors, judged by another problem.

Oracles: merged weights against the formulas written out here (a weighted average; base plus
scaled deltas), every stored objective against the inner problem's own `evaluate` of the weights
recomputed from the stored recipe, export's safetensors against `weights_of`, a resumed run against
an uninterrupted one byte for byte, trained anchors against the scalarised objective they were
trained on (more fairness weight, smaller train TPR gap).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from evofair.errors import UserError
from evofair.problems.classic.toy import ToyMLP, ToyParams
from evofair.problems.merging.problem import MergeFront, MergeParams
from evofair.store.run_store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fairclass"))
from fairclass_tables import make_table  # noqa: E402

TOY = {"n_train": 64, "n_eval": 64, "n_features": 4, "hidden": 4}


def _anchors(folder: Path, n: int = 3) -> list[dict]:
    """Three toy checkpoints: the base θ₀ plus a different perturbation each, as safetensors files."""
    toy = ToyMLP(ToyParams(**TOY))
    base = toy.base_weights()
    specs = []
    for k in range(n):
        gen = torch.Generator().manual_seed(10 + k)
        weights = {name: t + 0.5 * torch.randn(t.shape, generator=gen) for name, t in base.items()}
        save_file(weights, str(folder / f"anchor{k}.safetensors"))
        specs.append({"path": f"anchor{k}.safetensors"})
    return specs


def _front(folder: Path, method: str = "linear") -> MergeFront:
    problem = MergeFront(MergeParams(inner={"name": "toy_mlp", "args": TOY}, anchors=_anchors(folder), method=method))
    problem.base_dir = str(folder)
    return problem.ensure_setup()


def test_linear_and_task_arithmetic_recipes_are_the_formulas(tmp_path):
    lin = _front(tmp_path)
    x = np.array([0.2, 0.5, 0.3])
    a = [load_file(str(tmp_path / f"anchor{k}.safetensors")) for k in range(3)]
    merged = lin.weights_of(x)
    for name in a[0]:
        expected = sum(c * t[name] for c, t in zip(x, a)) / x.sum()
        torch.testing.assert_close(merged[name], expected, atol=1e-6, rtol=0)
    assert lin.weights_of([0, 0, 0])["0.weight"].shape == a[0]["0.weight"].shape  # all-zero: the plain average
    ta = _front(tmp_path, "task_arithmetic")
    base = ta.base
    merged = ta.weights_of(x)
    for name in a[0]:
        expected = base[name] + sum(c * (t[name] - base[name]) for c, t in zip(x, a))
        torch.testing.assert_close(merged[name], expected, atol=1e-6, rtol=0)


def test_dare_recipes_rebuild_the_same_weights(tmp_path):
    dare = _front(tmp_path, "dare_ties")
    assert dare.n_var == 4 and dare.xl[-1] == 0.1  # three coefficients and the density kept
    x = np.array([0.4, 0.9, 0.1, 0.5])
    one, two = dare.weights_of(x), dare.weights_of(x.copy())
    assert all(torch.equal(one[k], two[k]) for k in one)
    other = dare.weights_of(np.array([0.4, 0.9, 0.1, 0.6]))
    assert any(not torch.equal(one[k], other[k]) for k in one)


def _write_recipe(folder: Path, generations: int) -> Path:
    recipe = {
        "name": "toy-merges",
        "seed": 3,
        "problem": {"name": "merge", "args": {"inner": {"name": "toy_mlp", "args": TOY}, "anchors": _anchors(folder)}},
        "algorithm": {"pop_size": 8, "generations": generations},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    }
    path = folder / f"merge{generations}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_merge_recipe_over_three_checkpoints_from_the_cli(tmp_path):
    from conftest import cli_subprocess

    cli_subprocess("run", str(_write_recipe(tmp_path, 4)), "--out", str(tmp_path / "full"), "--quiet")
    cli_subprocess("run", str(_write_recipe(tmp_path, 2)), "--out", str(tmp_path / "part"), "--quiet")
    cli_subprocess("run", "--resume", str(tmp_path / "part"), "--set", "algorithm.generations=4", "--quiet")
    assert (tmp_path / "full" / "front.csv").read_bytes() == (tmp_path / "part" / "front.csv").read_bytes()

    judge = _front(tmp_path)  # rebuilt independently of the run
    store = RunStore(tmp_path / "full", readonly=True)
    try:
        inds = store.individuals()
    finally:
        store.close()
    assert len(inds) == 32 and all(i.weights_hash is None and len(i.x) == 3 for i in inds)
    X = np.array([i.x for i in inds])
    assert ((0 <= X) & (X <= 1)).all()
    for split in ("val", "test"):
        truth = judge.inner.evaluate([judge.weights_of(x) for x in X], split)
        for name in ("error", "gap"):
            np.testing.assert_allclose([i.metrics[split][name] for i in inds], truth[name], rtol=0, atol=1e-12)

    front_id = next(csv.DictReader((tmp_path / "full" / "front.csv").open()))["id"]
    from evofair.explorer.export import export_model

    exported = export_model(tmp_path / "full", front_id, tmp_path / "exported")
    card = json.loads((exported / "model_card.json").read_text())
    weights = load_file(str(exported / "genome.safetensors"))
    x = json.loads((exported / "genome.json").read_text())["x"]
    expected = judge.weights_of(x)
    assert set(weights) == set(expected) and all(torch.equal(weights[k], expected[k]) for k in weights)
    import hashlib

    assert card["weights_sha256"] == hashlib.sha256((exported / "genome.safetensors").read_bytes()).hexdigest()


def test_bad_merge_recipes_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="either anchors"):
        MergeParams(inner={"name": "toy_mlp"})
    with pytest.raises(ValueError, match="at least 2"):
        MergeParams(inner={"name": "toy_mlp"}, anchors=[{"path": "a.safetensors"}])
    with pytest.raises(UserError, match="not a weights problem"):
        MergeFront(MergeParams(inner={"name": "zdt1"}, anchors=[{"path": "a"}, {"path": "b"}]))
    toy = MergeFront(
        MergeParams(
            inner={"name": "toy_mlp", "args": TOY}, train_anchors={"scalarisation": "linear", "lambdas": [0, 1]}
        )
    )
    with pytest.raises(UserError, match="cannot train anchors"):
        toy.ensure_setup()


def _loans_inner(tmp_path, n: int = 500) -> dict:
    """A generated loans table (tests/problems/fairclass) as the inner fair_classification problem."""
    path = tmp_path / "loans.csv"
    make_table(n=n).to_csv(path, index=False)
    return {
        "name": "fair_classification",
        "args": {
            "data": {"path": str(path)},
            "target": "outcome",
            "positive": "yes",
            "sensitive": ["gender"],
            "model": {"kind": "mlp", "hidden": [8]},
            "baselines": {"enabled": False},
        },
    }


def test_trained_anchors_follow_their_fairness_weight(tmp_path):
    """Anchors trained by a feature classification problem from one θ₀: the heavily fairness-weighted
    one has the smaller soft TPR gap on train, and the budget counts K × epochs × train rows."""
    inner = _loans_inner(tmp_path, n=600)
    front = MergeFront(
        MergeParams(inner=inner, train_anchors={"scalarisation": "linear", "lambdas": [0.0, 64.0], "epochs": 40})
    )
    front.ensure_setup()
    n_train = len(front.inner.splits["train"])
    assert front.training_examples == 2 * 40 * n_train and front.describe()["anchor training examples"] > 0
    from evofair.problems.common.losses import soft_tpr_gap

    data = front.inner.splits["train"]
    codes, groups = np.unique(data.g, return_inverse=True)
    y, g = torch.as_tensor(data.y)[None], torch.as_tensor(groups)[None]
    gaps = []
    with torch.no_grad():
        for head in front.anchors:
            probs = torch.softmax(front.inner.build_model(head)(torch.as_tensor(data.X, dtype=torch.float32)), -1)
            gaps.append(float(soft_tpr_gap(probs[None], y, g, len(codes))[0]))
    assert gaps[1] < gaps[0]


def test_cross_fitted_selection_scores_out_of_fold(tmp_path):
    """Recipes are scored on pooled out-of-fold predictions over train ∪ validate: recomputed here with
    each fold's merged head as a torch module on the rows it never trained on; test stays the test split."""
    from evofair.analysis.metrics import fairness_metrics

    inner = _loans_inner(tmp_path)
    front = MergeFront(
        MergeParams(
            inner=inner,
            train_anchors={"scalarisation": "linear", "lambdas": [0.0, 8.0], "epochs": 5},
            selection="cross_fit",
            folds=2,
            method="task_arithmetic",
        )
    )
    front.ensure_setup()
    cf, tr, va = front.cross_fit, front.inner.splits["train"], front.inner.splits["val"]
    pool_y = np.concatenate([tr.y, va.y])
    folds = cf.folds
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(pool_y)))  # a partition of train ∪ validate
    n_pool = len(pool_y)
    assert front.training_examples == 2 * 5 * (sum(n_pool - len(f) for f in folds) + n_pool)

    X = np.array([[0.3, 1.2], [1.0, 0.0]])
    got = front.evaluate(X, "val")
    pool_X = torch.cat([tr.X, va.X])
    pool_g = np.concatenate([tr.g, va.g])
    preds = []
    with torch.no_grad():
        for k, out in enumerate(folds):
            heads = [front.merge(cf.fold_anchors[k], x) for x in X]
            preds.append(np.stack([front.inner.build_model(h)(pool_X[out]).argmax(-1).numpy() for h in heads]))
    order = np.concatenate(folds)
    want = fairness_metrics(
        np.concatenate(preds, axis=1),
        pool_y[order],
        pool_g[order],
        classes=np.arange(2),
        pos_label=front.inner.pos_label,
    )
    for name in front.objective_names:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-12)
    test = front.evaluate(X, "test")
    truth = front.inner.evaluate([front.weights_of(x) for x in X], "test")
    for name in front.objective_names:
        np.testing.assert_array_equal(test[name], truth[name])
    with pytest.raises(ValueError, match="cross_fit trains its anchors per fold"):
        MergeParams(inner=inner, anchors=[{"path": "a"}, {"path": "b"}], selection="cross_fit")


def test_threshold_genes_shift_the_decision_and_per_group_ones_are_flagged(tmp_path):
    from evofair.analysis.metrics import fairness_metrics

    inner = _loans_inner(tmp_path)
    glob = MergeFront(
        MergeParams(
            inner=inner,
            train_anchors={"scalarisation": "linear", "lambdas": [0.0, 8.0], "epochs": 5},
            threshold="global",
            threshold_span=3.0,
        )
    )
    glob.ensure_setup()
    assert (glob.n_var, glob.xl[-1], glob.xu[-1]) == (3, -3.0, 3.0)
    X = np.array([[0.4, 0.6, 0.0], [0.4, 0.6, 1.5], [0.9, 0.1, -2.0]])
    test = glob.inner.splits["test"]
    want = []
    with torch.no_grad():
        for x in X:  # the boundary moved by hand: class 1 where logit1 - logit0 + t > 0
            logits = glob.inner.build_model(glob.weights_of(x))(test.X).double()
            want.append(((logits[:, 1] - logits[:, 0] + x[2]) > 0).long().numpy())
    truth = fairness_metrics(np.stack(want), test.y, test.g, classes=np.arange(2), pos_label=glob.inner.pos_label)
    got = glob.evaluate(X, "test")
    for name in glob.objective_names:
        np.testing.assert_allclose(got[name], truth[name], rtol=0, atol=1e-12)
    plain = glob.inner.evaluate([glob.weights_of(X[0])], "test")  # shift 0 is the plain argmax
    assert all(got[n][0] == plain[n][0] for n in glob.objective_names)
    assert "decision thresholds" not in glob.describe()

    per = MergeFront(
        MergeParams(
            inner=inner,
            train_anchors={"scalarisation": "linear", "lambdas": [0.0, 8.0], "epochs": 5},
            threshold="per_group",
        )
    )
    per.ensure_setup()
    groups = per.thresholds.groups
    assert per.n_var == 2 + len(groups) >= 4 and "sensitive attribute" in per.describe()["decision thresholds"]
    x = np.array([0.5, 0.5] + [50.0] + [0.0] * (len(groups) - 1))  # the first group always predicted 1
    P = per.predictions(per.anchors, [x], "test")[0]
    first = np.asarray(per.inner.splits["test"].g) == groups[0]
    assert P[first].all() and not P[~first].all()

    class Stored:  # what the explorer hands a ModelCards hook
        pass

    ind = Stored()
    ind.x = tuple(x)
    ((title, rows),) = per.model_card(ind, None).items()
    assert "sensitive attribute" in title and [r["group"] for r in rows] == [str(g) for g in groups]
    assert rows[0]["logit shift"] == 50.0


def test_report_and_export_say_what_was_merged_and_flag_per_group_thresholds(tmp_path):
    """report.md of a `merge` run lists the anchors' gap bounds and their training and says that
    per-group thresholds read the sensitive attribute; an exported front model says so too, in
    model_card.json and README.md, with one shift per group. A run without them carries no flag."""
    import csv
    import json

    from evofair.api import run
    from evofair.explorer.export import export_model
    from evofair.problems.merging.anchors import EPSILON_BOUNDS
    from evofair.problems.merging.thresholds import PER_GROUP_NOTE

    def run_and_export(threshold: str) -> tuple[str, dict, str]:
        recipe = {
            "name": f"merge-{threshold}",
            "seed": 2,
            "problem": {
                "name": "merge",
                "args": {
                    "inner": _loans_inner(tmp_path, n=300),
                    "train_anchors": {"epochs": 2},
                    "threshold": threshold,
                },
            },
            "algorithm": {"pop_size": 4, "generations": 1},
            "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
            "hv_ref": [1.0, 1.0],
        }
        out = tmp_path / threshold
        run(recipe, out, progress=False)
        with open(out / "front.csv") as f:
            first = next(csv.DictReader(f))["id"]
        exported = export_model(out, first, tmp_path / f"{threshold}-export")
        card = json.loads((exported / "model_card.json").read_text())
        return (out / "report.md").read_text(), card, (exported / "README.md").read_text()

    (per, per_card, per_readme), (plain, plain_card, plain_readme) = run_and_export("per_group"), run_and_export("off")
    bounds = ", ".join(f"{b:g}" for b in EPSILON_BOUNDS)
    assert f"- decision thresholds: {PER_GROUP_NOTE}" in per and PER_GROUP_NOTE not in plain
    assert f"- anchor gap bounds (ε): {bounds}" in plain and "- anchor training examples: " in plain
    ((title, rows),) = per_card["problem_card"].items()
    assert PER_GROUP_NOTE in title and sorted(r["group"] for r in rows) == ["f", "m"]
    assert PER_GROUP_NOTE in per_readme and "| group | logit shift |" in per_readme
    assert not plain_card["problem_card"] and PER_GROUP_NOTE not in plain_readme


def test_anchor_training_reports_every_fit(tmp_path, monkeypatch, caplog):
    """Under cross_fit the anchors are trained once per fold and once on the whole pool, and each fit
    moves the progress line (logged, as on any output that is not a terminal)."""
    import logging

    monkeypatch.setenv("EVOFAIR_PROGRESS_INTERVAL", "0")  # a line per update
    inner = _loans_inner(tmp_path, n=300)
    params = MergeParams(inner=inner, train_anchors={"epochs": 1}, selection="cross_fit", folds=2)
    with caplog.at_level(logging.INFO, logger="evofair.progress"):
        MergeFront(params).ensure_setup()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training 5 merge anchors")]
    assert [line.split(" (")[0] for line in lines] == [f"training 5 merge anchors: {k}/3 fit" for k in (1, 2, 3)]
