"""The hybrid schedule: refined anchors (a merge of the anchors before them, fine-tuned further) and
the rounds that add them.

Oracles: a refined anchor against the same fine-tuning done here by hand with `train_heads` from the
merged weights; the budget against K × epochs × rows written out; the HV contributions against
pymoo's hypervolume of the front with and without each point; the second round's config.yaml
against the first round's front (the refined recipes are the front's own vectors).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pymoo.indicators.hv import HV

from evofair.api import run
from evofair.core.indicators import hypervolume
from evofair.errors import UserError
from evofair.problems.common.baselines import train_heads
from evofair.problems.merging.hybrid import hv_contributions, run_hybrid
from evofair.problems.merging.problem import MergeFront, MergeParams

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_merge_front import _loans_inner  # noqa: E402


def test_a_refined_anchor_is_its_merge_fine_tuned_and_counted(tmp_path):
    inner = _loans_inner(tmp_path, n=400)
    recipe = [0.7, 0.6]
    cfg = {
        "scalarisation": "linear",
        "lambdas": [0.0, 8.0],
        "epochs": 3,
        "refined": [{"recipe": recipe, "lam": 4.0, "epochs": 2}],
    }
    front = MergeFront(MergeParams(inner=inner, train_anchors=cfg, method="task_arithmetic", scale_max=2))
    front.ensure_setup()
    assert front.n_var == 3 and len(front.anchors) == 3
    n_train = len(front.inner.splits["train"])
    assert front.training_examples == 2 * 3 * n_train + 2 * n_train
    theta0 = front.inner.base_weights()
    a0, a1 = front.anchors[0], front.anchors[1]
    start = {k: theta0[k] + 0.7 * (a0[k] - theta0[k]) + 0.6 * (a1[k] - theta0[k]) for k in theta0}
    torch.manual_seed(123)  # the refinement must not depend on the global RNG
    (by_hand,) = train_heads(front.inner, [start], [4.0], [1000], epochs=2, batch_size=128, lr=1e-3, weight_decay=0.01)
    for name, t in by_hand.items():
        torch.testing.assert_close(front.anchors[2][name], t, atol=1e-5, rtol=0)


def test_refined_recipes_must_fit_the_anchors_before_them(tmp_path):
    inner = _loans_inner(tmp_path, n=300)
    with pytest.raises(ValueError, match=r"refined\[0\].recipe: expected 2 to 2 coefficients"):
        MergeParams(
            inner=inner,
            train_anchors={
                "scalarisation": "linear",
                "lambdas": [0.0, 8.0],
                "refined": [{"recipe": [1, 1, 1], "lam": 1}],
            },
        )


def test_hv_contributions_match_pymoo():
    F = np.array([[0.1, 0.9], [0.3, 0.4], [0.5, 0.35], [0.8, 0.1]])
    ref = np.array([1.0, 1.0])
    hv = HV(ref_point=ref)
    expected = [hv(F) - hv(np.delete(F, i, axis=0)) for i in range(len(F))]
    np.testing.assert_allclose(hv_contributions(F, ref), expected, atol=1e-12)


def test_a_hybrid_round_searches_over_the_refined_front(tmp_path):
    inner = _loans_inner(tmp_path, n=400)
    recipe = {
        "name": "hybrid",
        "seed": 3,
        "problem": {
            "name": "merge",
            "args": {
                "inner": inner,
                "train_anchors": {"scalarisation": "linear", "lambdas": [0.0, 8.0], "epochs": 20},
                "method": "task_arithmetic",
            },
        },
        "algorithm": {"pop_size": 6, "generations": 2},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": [1.0, 1.0],
    }
    first = run(recipe, tmp_path / "alone", progress=False)
    assert hypervolume(first.F, [1.0, 1.0]) > 0
    last = run_hybrid(recipe, tmp_path / "hybrid", rounds=1, refine=2, progress=False)
    cfg = yaml.safe_load((tmp_path / "hybrid" / "round1" / "config.yaml").read_text())
    refined = cfg["problem"]["args"]["train_anchors"]["refined"]
    front_x = {tuple(np.round(first.x(i), 12)) for i in first.ids}
    assert 1 <= len(refined) <= 2 and all(tuple(np.round(r["recipe"], 12)) in front_x for r in refined)
    assert all(0.0 <= r["lam"] <= 8.0 and r["epochs"] == 6 for r in refined)
    assert last.problem.n_var == 2 + len(refined)
    n_train = len(last.problem.inner.splits["train"])
    assert last.problem.training_examples == 2 * 20 * n_train + len(refined) * 6 * n_train


def test_the_hybrid_schedule_needs_trained_anchors():
    with pytest.raises(UserError, match="train_anchors"):
        run_hybrid({"problem": {"name": "toy_mlp"}}, "unused")


def test_auto_lambdas_stop_at_the_first_near_constant_probe(tmp_path):
    """`lambdas: auto`: λ = 0, then weights a factor 4 apart up to λ_c, the smallest probe-ladder
    weight whose probe model is near-constant on validate (recomputed here from probe models
    trained by hand); the probe's examples join the budget."""
    from evofair.problems.merging.anchors import NEAR_CONSTANT_SHARE, PROBE_LADDER

    inner = _loans_inner(tmp_path, n=400)
    cfg = {"scalarisation": "linear", "lambdas": "auto", "count": 3, "probe_epochs": 4, "epochs": 2}
    front = MergeFront(MergeParams(inner=inner, train_anchors=cfg, method="task_arithmetic"))
    front.ensure_setup()
    inner_problem = front.inner
    heads = train_heads(
        inner_problem,
        [inner_problem.base_weights()] * len(PROBE_LADDER),
        list(PROBE_LADDER),
        [500 + k for k in range(len(PROBE_LADDER))],
        epochs=4,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.01,
    )
    y = np.asarray(inner_problem.splits["val"].y)
    err = (inner_problem.head_predictions(heads, "val") != y).mean(axis=1)
    constant = min(y.mean(), 1 - y.mean())
    near = [lam for lam, e in zip(PROBE_LADDER[1:], err[1:]) if e >= err[0] + NEAR_CONSTANT_SHARE * (constant - err[0])]
    top = near[0] if near else PROBE_LADDER[-1]
    assert front.anchor_lambdas == pytest.approx([0.0, top / 4, top])
    assert front.n_var == 3 and front.describe()["anchor fairness weights"] == ", ".join(
        f"{v:g}" for v in front.anchor_lambdas
    )
    n_train = len(inner_problem.splits["train"])
    assert front.training_examples == len(PROBE_LADDER) * 4 * n_train + 3 * 2 * n_train


def test_scalarisations_are_their_formulas():
    from evofair.problems.merging.anchors import EPSILON_PENALTY, SCALARISATIONS

    ce, gap, lam = torch.tensor([0.6, 0.4, 0.3]), torch.tensor([0.2, 0.05, 0.5]), torch.tensor([0.0, 1.0, 3.0])
    torch.testing.assert_close(SCALARISATIONS["linear"](ce, gap, lam), torch.tensor([0.6, 0.45, 1.8]))
    # w = λ/(1+λ) = 0, 0.5, 0.75: max((1−w)·ce, w·gap)
    torch.testing.assert_close(SCALARISATIONS["tchebycheff"](ce, gap, lam), torch.tensor([0.6, 0.2, 0.375]))
    # ε = λ: ce + P·max(0, gap − ε)
    expected = torch.tensor([0.6 + EPSILON_PENALTY * 0.2, 0.4, 0.3])
    torch.testing.assert_close(SCALARISATIONS["epsilon"](ce, gap, lam), expected)


def test_anchors_follow_the_chosen_scalarisation(tmp_path):
    """The same weights, another scalarisation, other anchors; λ = 0 is CE alone under linear and
    Tchebycheff alike, and so is an ε-constraint whose bound the gap never exceeds (the same model)."""
    inner = _loans_inner(tmp_path, n=300)
    fronts = {}
    for name, lambdas in (("linear", [0.0, 4.0]), ("tchebycheff", [0.0, 4.0]), ("epsilon", [1.0, 0.0])):
        cfg = {"lambdas": lambdas, "epochs": 3, "scalarisation": name}
        fronts[name] = MergeFront(MergeParams(inner=inner, train_anchors=cfg)).ensure_setup()
    lin, tch, eps = (fronts[name].anchors for name in ("linear", "tchebycheff", "epsilon"))
    for key in lin[0]:
        torch.testing.assert_close(lin[0][key], tch[0][key])
        torch.testing.assert_close(lin[0][key], eps[0][key])
    assert any(not torch.allclose(lin[1][k], tch[1][k]) for k in lin[1])
    assert any(not torch.allclose(lin[1][k], eps[1][k]) for k in lin[1])


def test_the_default_anchors_are_epsilon_bounds_without_a_probe(tmp_path):
    """`train_anchors: {}`: ε-constraint anchors at EPSILON_BOUNDS and no probe, so the budget is
    the anchors' alone; the bound of 1 is the plain cross-entropy head trained here by hand, and the
    bound of 0 has the smaller soft TPR gap on train. `count` belongs to the probe: refused here."""
    from evofair.problems.common.losses import soft_tpr_gap
    from evofair.problems.merging.anchors import EPSILON_BOUNDS

    inner = _loans_inner(tmp_path, n=600)
    front = MergeFront(MergeParams(inner=inner, train_anchors={"epochs": 20}, method="task_arithmetic"))
    front.ensure_setup()
    K, data = len(EPSILON_BOUNDS), front.inner.splits["train"]
    assert front.anchor_lambdas == list(EPSILON_BOUNDS) and front.n_var == K
    assert front.training_examples == K * 20 * len(data)
    assert front.describe()["anchor gap bounds (ε)"] == "0, 0.02, 0.06, 0.15, 1"
    (plain,) = train_heads(
        front.inner, [front.inner.base_weights()], [0.0], [K - 1], epochs=20, batch_size=128, lr=1e-3, weight_decay=0.01
    )
    for key, value in plain.items():
        torch.testing.assert_close(front.anchors[K - 1][key], value)
    codes, groups = np.unique(data.g, return_inverse=True)
    y, g = torch.as_tensor(data.y)[None], torch.as_tensor(groups)[None]
    with torch.no_grad():
        gaps = [
            float(
                soft_tpr_gap(torch.softmax(front.inner.build_model(a)(data.X.float()), -1)[None], y, g, len(codes))[0]
            )
            for a in (front.anchors[0], front.anchors[K - 1])
        ]
    assert gaps[0] < gaps[1]
    with pytest.raises(ValueError, match="count: epsilon's automatic bounds are 5"):
        MergeParams(inner=inner, train_anchors={"count": 3})


def test_the_packaged_merge_recipe_is_valid():
    from evofair.cli import recipe_path
    from evofair.lifecycle.recipe import load_recipe

    recipe = load_recipe(recipe_path("merge_biasbios"))
    assert recipe.problem.name == "merge" and recipe.problem.args["selection"] == "cross_fit"
    params = MergeParams(**recipe.problem.args)
    assert params.train_anchors.lambdas == "auto" and params.train_anchors.scalarisation == "epsilon"
    assert params.n_anchors == 5
