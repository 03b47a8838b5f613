"""The front's accurate end against simple references, and near-constant flags, in a user's run.

Oracles: scikit-learn's LogisticRegression fitted here on the run's own split and features, the
training majority class counted by hand, and each front model's predictions counted by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairclass_tables import adult_recipe, table_csv, tiny, user_overrides  # noqa: F401 (fixtures)

from evofair.cli import main
from evofair.problems.fairclass.problem import FairClassification
from evofair.store.run_store import RunStore


def _run(recipe, out: Path, overrides: list[str]) -> str:
    assert main(["run", str(recipe), "--out", str(out), "--quiet", *[a for o in overrides for a in ("--set", o)]]) == 0
    return (out / "report.md").read_text()


def _rebuilt(out: Path) -> FairClassification:
    from evofair.api import build_problem
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    return build_problem(Recipe.model_validate(read_recipe_file(out / "config.yaml"))).ensure_setup()


def _majority_shares(problem, out: Path, ids: list[str]) -> dict[str, float]:
    store = RunStore(out, readonly=True)
    weights = [store.get_weights(i.weights_hash) for i in store.individuals(ids)]
    store.close()
    P = problem.predictions(weights, "test")
    return {i: np.bincount(p).max() / len(p) for i, p in zip(ids, P)}


def test_reference_errors_match_sklearn_and_an_undertrained_front_is_called_worse(
    tmp_path, adult_recipe, user_overrides, tiny
):
    from sklearn.linear_model import LogisticRegression

    out = tmp_path / "run"
    # random heads, never trained: the accurate end is far from a logistic regression's
    untrained = ["problem.args.warm_start.steps=0", "operators.refine=null", "operators.refine_initial=false"]
    report = _run(adult_recipe, out, user_overrides + tiny + untrained)
    problem = _rebuilt(out)
    train = problem.splits["train"]
    lr = LogisticRegression(max_iter=1000).fit(train.X.numpy().astype(np.float64), train.y)
    majority = np.bincount(train.y).argmax()
    summary = json.loads((out / "summary.json").read_text())
    lr_errors, constant_errors = [], []
    for split in ("val", "test"):
        data = problem.splits[split]
        lr_errors.append(float(np.mean(lr.predict(data.X.numpy().astype(np.float64)) != data.y)))
        constant_errors.append(float(np.mean(data.y != majority)))
        assert summary[f"error_{split}_logistic_regression"] == pytest.approx(lr_errors[-1], abs=1e-12)
        assert summary[f"error_{split}_constant"] == pytest.approx(constant_errors[-1], abs=1e-12)
    front = pd.read_csv(out / "front.csv")
    assert summary["error_test_front_best"] == pytest.approx(front["error_test"].min(), abs=1e-12)
    lr_row = "| plain LogisticRegression (scikit-learn defaults, same features and split) |"
    assert f"{lr_row} {lr_errors[0]:.6f} | {lr_errors[1]:.6f} |" in report
    constant_row = "| constant predictor (training majority class) |"
    assert f"{constant_row} {constant_errors[0]:.6f} | {constant_errors[1]:.6f} |" in report
    assert front["error_test"].min() > lr_errors[1] and front["error_val"].min() > lr_errors[0]  # the premise
    assert re.search(
        r"\*\*The front's best test error \([0-9.]+\) is worse than .*the plain LogisticRegression's\*\*", report
    )
    assert "it is worse on validation too, so its accurate end is undertrained" in report


def _noise_table(path: Path, n: int = 600) -> Path:
    """Features unrelated to a 95/5 target: any trained classifier predicts the majority class."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "group": rng.choice(["u", "v"], n),
            "label": np.where(rng.random(n) < 0.05, "rare", "common"),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_near_constant_models_are_flagged_and_counted(tmp_path, adult_recipe, tiny):
    data = _noise_table(tmp_path / "noise.csv")
    out = tmp_path / "run"
    users = [f"problem.args.data.path={data}", "problem.args.target=label", "problem.args.positive=rare"]
    report = _run(adult_recipe, out, users + ["problem.args.sensitive=[group]", "problem.args.min_group_size=0", *tiny])
    front = pd.read_csv(out / "front.csv")
    shares = _majority_shares(_rebuilt(out), out, front["id"].tolist())
    flagged = {i for i, s in shares.items() if s >= 0.99}
    assert flagged  # the table is built so that they exist
    assert f"- Final front: {len(front)} models ({len(flagged)} of them near-constant" in report
    for i in front["id"]:  # the front table's last column
        row = next(line for line in report.splitlines() if line.startswith(f"| {i} |"))
        assert row.rstrip(" |").endswith("**yes**" if i in flagged else "no")
    doc = json.loads((out / "near_constant.json").read_text())
    assert set(doc["near_constant"]) == flagged and doc["threshold"] == 0.99
    assert json.loads((out / "summary.json").read_text())["n_front_near_constant"] == len(flagged)
    assert f"Near-constant front models (≥ 99% one class on test): {len(flagged)} of {len(front)}." in report
    assert ("**Every front model is near-constant**" in report) == (len(flagged) == len(front))
    chosen = report.split("## Chosen models")[1]  # its front lines skip flagged models unless all are
    assert ("— **near-constant**" in chosen.split("(a) plain model")[0]) == (len(flagged) == len(front))
    assert main(["report", str(out)]) == 0  # report.html: the same count and flags
    page = (out / "report.html").read_text()
    assert f"<h2>Final front ({len(front)} models, {len(flagged)} near-constant)</h2>" in page
    assert page.count("<td class='num'>yes</td>") == len(flagged)


def _skewed_table(n: int = 1200) -> pd.DataFrame:
    """A 10%-positive target that the features predict well: a random head predicts one class."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 3))
    score = 2.5 * x[:, 0] - 1.5 * x[:, 1] + rng.normal(0, 0.5, n)
    label = np.where(score > np.quantile(score, 0.9), "yes", "no")
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "g": rng.choice(["a", "b"], n), "y": label})


def test_anchors_reach_logistic_regression_where_random_heads_do_not():
    from sklearn.linear_model import LogisticRegression

    args = dict(target="y", positive="yes", sensitive=["g"], baselines={"enabled": False})
    warm = FairClassification(_skewed_table(), **args, model={"kind": "mlp", "hidden": [8]})
    cold = FairClassification(_skewed_table(), **args, model={"kind": "mlp", "hidden": [8]}, warm_start={"steps": 0})
    assert (warm.params.warm_steps, cold.params.warm_steps) == (500, 0)
    errors = {}
    for name, problem in (("warm", warm), ("cold", cold)):
        problem.setup()
        heads = [problem.init_weights(seed) for seed in range(40)]
        errors[name] = np.mean(problem.predictions(heads, "val") != problem.splits["val"].y, axis=1)
    train, val = warm.splits["train"], warm.splits["val"]
    lr = LogisticRegression(max_iter=1000).fit(train.X.numpy(), train.y)
    lr_error = float(np.mean(lr.predict(val.X.numpy()) != val.y))
    majority_error = float(np.mean(val.y != np.bincount(train.y).argmax()))
    assert lr_error + 0.03 < majority_error  # the table is learnable
    anchors = errors["warm"] <= lr_error + 0.02
    assert 10 <= anchors.sum() <= 30  # about `share` 0.5 of the heads are anchors
    assert errors["cold"].min() > lr_error + 0.02  # random heads: none is near a logistic regression
    same = [k for k in range(40) if not anchors[k]]  # the others are drawn as before, seed for seed
    assert np.allclose(errors["warm"][same], errors["cold"][same])


def test_a_linear_heads_base_is_sklearns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    args = dict(target="y", positive="yes", sensitive=["g"], baselines={"enabled": False})
    anchors_only = {"share": 1.0, "noise": 0.0}  # every initial head is the trained θ₀ itself
    problem = FairClassification(_skewed_table(), **args, model={"kind": "logistic"}, warm_start=anchors_only)
    problem.setup()
    train = problem.splits["train"]
    lr = LogisticRegression(max_iter=1000).fit(train.X.numpy().astype(np.float64), train.y)
    for split in ("val", "test"):
        X = problem.splits[split].X
        assert (problem.predictions([problem.init_weights(7)], split)[0] == lr.predict(X.numpy())).all()


@pytest.mark.parametrize(
    ("model", "steps"),
    [
        ({"kind": "head", "hidden": []}, 500),  # a linear head on embeddings: anchored like `logistic`
        ({"kind": "head", "hidden": [8]}, 0),  # an MLP head keeps the `biasbios` problem's random θ₀
        ({"kind": "lora", "hidden": []}, 0),
        ({"kind": "logistic"}, 500),
    ],
)
def test_default_warm_start_by_model(model, steps):
    """Who gets anchors by default; an explicit `warm_start.steps` always wins."""
    table = _skewed_table(60).assign(t=lambda d: d["y"] + " text")
    args = dict(target="y", positive="yes", sensitive=["g"], text="t", features=[], baselines={"enabled": False})
    assert FairClassification(table, **args, model=model).params.warm_steps == steps
    assert FairClassification(table, **args, model=model, warm_start={"steps": 7}).params.warm_steps == 7


def test_shipped_biasbios_recipe_is_an_anchored_linear_head():
    """runs/biasbios_fair_classification.yaml resolves to a linear head with LogisticRegression anchors."""
    from evofair.lifecycle.recipe import load_recipe
    from evofair.problems.fairclass.params import FairClassificationParams

    repo = Path(__file__).resolve().parents[3]
    args = load_recipe(repo / "runs" / "biasbios_fair_classification.yaml").problem.args
    params = FairClassificationParams.model_validate(args)
    assert (params.hidden_sizes, params.warm_steps) == ([], 500)


def test_warm_start_examples_are_counted_by_hand_and_by_sklearn():
    """The run's budget counts the warm start: an MLP's Adam steps over batches (the last batch of
    each pass is short), a linear head's lbfgs iterations each reading every training row."""
    from sklearn.linear_model import LogisticRegression

    args = dict(target="y", positive="yes", sensitive=["g"], baselines={"enabled": False})
    warm = {"steps": 10, "batch_size": 64}
    mlp = FairClassification(_skewed_table(), **args, model={"kind": "mlp", "hidden": [8]}, warm_start=warm)
    mlp.setup()
    n = len(mlp.splits["train"])
    full, rest = divmod(n, 64)
    per_pass = [64] * full + ([rest] if rest else [])
    by_hand = sum((per_pass * 10)[:10])  # 10 steps walk the passes' batches in order
    assert mlp.warm_start_examples() == by_hand and by_hand < 10 * 64 + 1

    linear = FairClassification(_skewed_table(), **args, model={"kind": "logistic"})
    linear.setup()
    train = linear.splits["train"]
    lr = LogisticRegression(max_iter=500).fit(train.X.numpy().astype(np.float64), train.y)
    assert 0 < lr.n_iter_[0] < 500  # converged: the count is what ran, not the cap
    assert linear.warm_start_examples() == lr.n_iter_[0] * len(train)
    cold = FairClassification(_skewed_table(), **args, model={"kind": "logistic"}, warm_start={"steps": 0})
    cold.setup()
    assert cold.warm_start_examples() == 0


def test_the_report_states_the_warm_starts_examples(tmp_path, adult_recipe, user_overrides, tiny):
    out = tmp_path / "run"
    cheap_baselines = [  # heads only: the budget line is the baselines' section's
        "problem.args.baselines.enabled=true",
        "problem.args.baselines.reductions=[]",
        "problem.args.baselines.threshold=[]",
        "problem.args.baselines.epochs=1",
    ]
    report = _run(adult_recipe, out, user_overrides + tiny + ["problem.args.warm_start.steps=3", *cheap_baselines])
    problem = _rebuilt(out)
    n = len(problem.splits["train"])
    batch = problem.params.warm_start.batch_size
    expected = sum((([batch] * (n // batch) + ([n % batch] if n % batch else [])) * 3)[:3])
    assert f", and the warm start of θ₀ (plain cross-entropy) {expected} more;" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples_warm_start"] == expected
    assert summary["examples_evolution"] > 0
