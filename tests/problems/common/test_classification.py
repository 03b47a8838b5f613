"""The classification base on synthetic features: batched population evaluation equals one-by-one
evaluation, the SFT contract, batched baseline training equals independent training, the
TPR-gap surrogate by hand, and a full evofair run with merges, mutation, SFT and baselines."""

import json

import numpy as np
import pytest
import torch

import evofair
from evofair.analysis.metrics import fairness_metrics
from evofair.core.plugins import registry as op_registry
from evofair.problems.common.baselines import soft_tpr_gap, train_heads
from evofair.problems.common.classification import FeatureClassificationProblem, HeadArgs, SplitData


class Synthetic(FeatureClassificationProblem):
    """Two classes whose features leak the group, so accuracy and fairness conflict."""

    name = "synthetic"
    class_names = ("a", "b")
    default_hv_ref = (0.5, 0.5)

    def load_splits(self):
        rng = np.random.default_rng(0)
        out = {}
        for split, n in (("train", 240), ("val", 160), ("test", 160)):
            g = rng.choice(np.array(["F", "M"]), n)
            y = np.where(rng.random(n) < np.where(g == "F", 0.75, 0.25), 1, 0)
            X = (
                rng.normal(size=(n, 12))
                + 0.8 * y[:, None] * np.linspace(1, 0, 12)
                + 0.8 * (g == "F")[:, None] * np.linspace(0, 1, 12)
            )
            out[split] = SplitData(torch.tensor(X, dtype=torch.float32), y.astype(np.int64), g)
        return out


@pytest.fixture
def problem():
    return Synthetic(HeadArgs(hidden=[8], init_noise=1.0)).ensure_setup()


def _one_by_one_predictions(problem, w, split):
    """An independent path: the head as float64 torch.nn.functional.linear layers, alone."""
    h = problem.splits[split].X.double()
    n = len(problem.sizes) - 1
    for k in range(n):
        h = torch.nn.functional.linear(h, w[f"layers.{k}.weight"].double(), w[f"layers.{k}.bias"].double())
        if k < n - 1:
            h = torch.relu(h)
    return h.argmax(-1).numpy()


def test_batched_population_equals_one_by_one(problem):
    genomes = [problem.init_weights(s) for s in range(9)]
    batched = problem.evaluate(genomes, "test")
    P = problem.predictions(genomes, "test")
    for k, w in enumerate(genomes):
        single = problem.evaluate([w], "test")
        np.testing.assert_array_equal(P[k], _one_by_one_predictions(problem, w, "test"))
        np.testing.assert_array_equal(P[k], problem.build_model(w)(problem.splits["test"].X).argmax(-1).numpy())
        data = problem.splits["test"]
        oracle = fairness_metrics(P[k], data.y, data.g)
        for name, values in batched.items():
            assert values[k] == single[name][0] == oracle[name][0]
    assert len(set(np.round(batched["error"], 9))) > 3  # genomes really differ


def test_init_is_around_shared_base_and_deterministic(problem):
    base = problem.base_weights()
    a, b = problem.init_weights(1), problem.init_weights(1)
    c = problem.init_weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.weight"], c["layers.0.weight"])
    d = (a["layers.0.weight"] - base["layers.0.weight"]).std() / base["layers.0.weight"].std()
    assert 0.8 < float(d) < 1.2  # init_noise = 1 relative to the tensor's std


def test_sft_refiner_lowers_training_loss(problem):
    spec = op_registry("refine").get("sft")
    w = problem.init_weights(3)
    args = spec.args(epochs=3, optimizer="adamw", lr=1e-2, batch_size=32)
    out = spec.fn(w, args, seed=5, problem=problem)
    X, y = problem.splits["train"].X, torch.as_tensor(problem.splits["train"].y)
    ce = lambda weights: float(torch.nn.functional.cross_entropy(problem.build_model(weights)(X), y))
    assert ce(out.weights) < ce(w) - 0.05
    assert set(out.weights) == set(w)
    assert out.log["steps"] == 3 * 8
    again = spec.fn(w, args, seed=5, problem=problem)
    assert all(torch.equal(out.weights[k], again.weights[k]) for k in w)


def test_ties_merge_uses_shared_base(problem):
    spec = op_registry("crossover").get("ties")
    p1, p2 = problem.init_weights(1), problem.init_weights(2)
    c1, c2 = spec.fn([p1, p2], spec.args(density=0.5), seed=0, base=problem.base_weights())
    base = problem.base_weights()["layers.0.weight"]
    # TIES keeps at most density of each delta: many entries of the child equal the base exactly
    assert float((c1["layers.0.weight"] == base).float().mean()) > 0.1
    assert problem.evaluate([c1, c2], "val")["error"].shape == (2,)


def test_soft_tpr_gap_by_hand():
    # one head, 6 samples: class 1 in F (p 0.9, 0.7) and M (p 0.2); class 0 in F (0.6) and M (0.5, 0.3)
    p1 = torch.tensor([0.9, 0.7, 0.2, 0.4, 0.5, 0.7])
    probs = torch.stack([1 - p1, p1], -1)[None]
    y = torch.tensor([[1, 1, 1, 0, 0, 0]])
    g = torch.tensor([[0, 0, 1, 0, 1, 1]])
    # soft TPR_1: F 0.8, M 0.2 → 0.6 ; soft TPR_0: F 0.6, M (0.5+0.3)/2 = 0.4 → 0.2 ; mean 0.4
    assert float(soft_tpr_gap(probs, y, g, 2)[0]) == pytest.approx(0.4)
    # a class with one group only in the batch is skipped
    g2 = torch.tensor([[0, 0, 0, 0, 1, 1]])
    assert float(soft_tpr_gap(probs, y, g2, 2)[0]) == pytest.approx(abs(0.6 - 0.4))


def test_batched_training_equals_independent_training(problem):
    inits = [problem.init_weights(s) for s in (1, 2, 3)]
    lams, seeds = [0.0, 1.0, 4.0], [11, 12, 13]
    together = train_heads(problem, inits, lams, seeds, epochs=2, batch_size=64, lr=1e-2, weight_decay=0.01)
    for k in range(3):
        alone = train_heads(
            problem, [inits[k]], [lams[k]], [seeds[k]], epochs=2, batch_size=64, lr=1e-2, weight_decay=0.01
        )[0]
        for name in alone:
            torch.testing.assert_close(together[k][name], alone[name], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0]["layers.0.weight"], inits[0]["layers.0.weight"])


def test_surrogate_weight_lowers_the_gap(problem):
    inits = [problem.init_weights(7)] * 2
    heads = train_heads(problem, inits, [0.0, 20.0], [1, 1], epochs=30, batch_size=120, lr=1e-2, weight_decay=0.0)
    m = problem.evaluate(heads, "val")
    assert m["dtpr"][1] < m["dtpr"][0]


def test_full_run_with_baselines(tmp_path, problem):
    recipe = {
        "name": "synthetic",
        "problem": {"name": "synthetic"},
        "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 3},
        "operators": {
            "crossover": [{"name": "uniform"}, {"name": "ties", "args": {"density": 0.5}}],
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05, "relative": True}},
            "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "adamw", "lr": 1e-2, "batch_size": 64}},
        },
        "seed": 2,
    }
    fresh = Synthetic(HeadArgs(hidden=[8]))

    def after_run(store, out, recipe_):
        from evofair.problems.common.baselines import BaselineArgs, run_baselines

        return run_baselines(
            fresh,
            store,
            out,
            recipe_,
            BaselineArgs(vanilla=2, lambdas=[1.0, 4.0], min_epochs=2, threshold=["equalized_odds"]),
        )

    fresh.after_run = after_run
    res = evofair.run(recipe, tmp_path / "run", problem=fresh, progress=False)
    assert len(res.history) == 3 and res.front
    lines = (tmp_path / "run" / "baselines.csv").read_text().splitlines()
    assert lines[0] == "method,id,error_val,error_test,dtpr_val,dtpr_test"
    assert (tmp_path / "run" / "front.csv").read_text().splitlines()[
        0
    ] == "id,generation,error_val,error_test,dtpr_val,dtpr_test,error_test_lo,error_test_hi,dtpr_test_lo,dtpr_test_hi"
    assert {line.split(",")[0] for line in lines[1:]} <= {"vanilla", "scalarisation", "threshold"}
    base = json.loads((tmp_path / "run" / "baselines.json").read_text())
    epochs = base["budget"]["baseline_epochs_per_head"]
    # budget matched: every method got at least the evolution's training examples
    assert epochs * 2 * 240 >= base["budget"]["examples"] > 0 and epochs >= 2
    assert base["budget"]["candidates"] == {"vanilla": 2 * epochs, "scalarisation": 2 * epochs, "threshold": 2}
