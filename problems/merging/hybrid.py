"""The hybrid schedule: anchors → merge-recipe search → fine-tune the front models that add most
hypervolume → they join the anchors → search again.

A merge front can only reach what lies between its anchors; a few steps of the gradient from the
front's most valuable merges move the anchors themselves. Each round is an ordinary `merge` run
whose recipe lists the refined anchors explicitly (`train_anchors.refined`: the recipe they were
merged from, the fairness weight and the epochs they were fine-tuned for), so every round's
`config.yaml` states exactly which models it searched over, resumes and verifies like any run, and
cross-fitted selection redoes the refinement inside every fold. Training examples of every stage
are counted in each round's budget (`anchor training examples` in its report).

    from evofair.problems.merging.hybrid import run_hybrid
    result = run_hybrid(recipe, "out/hybrid", rounds=1, refine=2)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evofair.core.indicators import hypervolume
from evofair.errors import UserError


def hv_contributions(F: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """How much hypervolume each row of the (minimised) front `F` adds: HV(F) − HV(F without it)."""
    total = hypervolume(F, ref)
    return np.array([total - hypervolume(np.delete(F, i, axis=0), ref) for i in range(len(F))])


def refined_anchors(result, recipe: Mapping[str, Any], refine: int, epochs: int) -> list[dict[str, Any]]:
    """The `refine` front recipes that add most validate hypervolume, as `train_anchors.refined`
    entries: their merge coefficients, and a fairness weight that is the coefficient-weighted mean of
    the anchors' own (where on the trade-off the merge sits), to fine-tune at."""
    problem = result.problem
    cfg = problem.params.train_anchors
    lambdas = [*problem.anchor_lambdas, *(r.lam for r in cfg.refined)]
    ref = np.asarray(recipe.get("hv_ref") or problem.default_hv_ref, dtype=float)
    F = np.asarray(result.F, dtype=float)
    _, first = np.unique(F, axis=0, return_index=True)  # a repeated point adds nothing once it is there
    first = np.sort(first)
    order = first[np.argsort(-hv_contributions(F[first], ref), kind="stable")][:refine]
    picks = []
    for i in order:
        x = np.asarray(result.x(result.ids[i]), dtype=float)[: problem.n_recipe]
        coeffs = np.clip(x[: len(lambdas)], 0.0, None)
        lam = float(coeffs @ np.asarray(lambdas) / coeffs.sum()) if coeffs.sum() > 0 else float(np.mean(lambdas))
        picks.append({"recipe": [float(v) for v in x], "lam": lam, "epochs": epochs})
    return picks


def run_hybrid(
    recipe: Mapping[str, Any],
    out: str | Path,
    *,
    rounds: int = 1,
    refine: int = 2,
    epochs: int | None = None,
    run: Callable[..., Any] | None = None,
    **run_kwargs: Any,
):
    """Round 0 is `recipe` as written; each further round adds the `refine` best front merges of
    the round before, fine-tuned `epochs` more (default: a third of the anchors' epochs), to the
    anchors and searches again in `out/round<k>`. Returns the last round's `Result`."""
    if run is None:
        from evofair.api import run
    args = recipe.get("problem", {}).get("args", {})
    if recipe.get("problem", {}).get("name") != "merge" or "train_anchors" not in args:
        raise UserError("hybrid schedule: expected a `merge` recipe with problem.args.train_anchors")
    if rounds < 0 or refine < 1:
        raise UserError(f"hybrid schedule: expected rounds ≥ 0 and refine ≥ 1, got {rounds} and {refine}")
    current: dict[str, Any] = copy.deepcopy(dict(recipe))
    anchors_cfg = current["problem"]["args"]["train_anchors"]
    epochs = epochs or max(1, int(anchors_cfg.get("epochs", 30)) // 3)
    result = run(current, Path(out) / "round0", **run_kwargs)
    for k in range(1, rounds + 1):
        anchors_cfg.setdefault("refined", []).extend(refined_anchors(result, current, refine, epochs))
        result = run(current, Path(out) / f"round{k}", **run_kwargs)
    return result
