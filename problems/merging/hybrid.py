"""The hybrid schedule: anchors → merge-recipe search → fine-tune the front models that add most
hypervolume → they join the anchors → search again.

A merge front can only reach what lies between its anchors; a few steps of the gradient from the
front's most valuable merges move the anchors themselves. A recipe asks for it with
`problem.args.hybrid: {rounds, refine, epochs}`; the `merge` problem's `stages` hook returns the
rounds and evofair's staged runs (evofair/lifecycle/stages.py) lay them out as OUT/round0, round1, …
Each round is an ordinary `merge` run whose recipe lists the refined anchors explicitly
(`train_anchors.refined`: the recipe they were merged from, the fairness weight and the epochs they
were fine-tuned for) and has no `hybrid` key, so every round's `config.yaml` states exactly which
models it searched over, resumes and verifies like any run, and cross-fitted selection redoes the
refinement inside every fold. Training examples of every stage are counted in each round's budget
(`anchor training examples` in its report).

    from evofair.problems.merging.hybrid import run_hybrid
    result = run_hybrid(recipe, "out/hybrid", rounds=1, refine=2)   # the same as the recipe key
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from evofair.core.indicators import hypervolume
from evofair.core.registry import Args
from evofair.errors import UserError
from evofair.lifecycle.stages import Stages

Whole = Annotated[int, Field(strict=True)]  # `rounds: true` is not one round


class HybridCfg(Args):
    """`problem.args.hybrid`: rounds of refine-then-search after the first search (0: off)."""

    rounds: Whole = Field(0, ge=0, le=100, description="rounds after the first search (0: one ordinary run)")
    refine: Whole = Field(2, ge=1, le=64, description="front merges fine-tuned into new anchors per round")
    epochs: Whole | None = Field(
        None, ge=1, le=10_000, description="their fine-tuning epochs (default: a third of the anchors')"
    )


def hv_contributions(F: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """How much hypervolume each row of the (minimised) front `F` adds: HV(F) − HV(F without it)."""
    total = hypervolume(F, ref)
    return np.array([total - hypervolume(np.delete(F, i, axis=0), ref) for i in range(len(F))])


def refined_anchors(result, recipe: Mapping[str, Any], refine: int, epochs: int) -> list[dict[str, Any]]:
    """The `refine` front recipes that add most validate hypervolume, as `train_anchors.refined`
    entries: their merge coefficients, and a fairness weight that is the coefficient-weighted mean of
    the anchors' own (where on the trade-off the merge sits; a gap bound under the ε-constraint), to
    fine-tune at."""
    problem = result.problem.ensure_setup()  # a round read back by --resume is rebuilt, not set up
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


def hybrid_stages(params, recipe: Mapping[str, Any]) -> Stages | None:
    """The rounds `params.hybrid` asks for (None when `rounds` is 0): round 0 is the recipe without
    the `hybrid` key; each further round adds the `refine` best front merges of the round before,
    fine-tuned `epochs` more (default: a third of the anchors' epochs), to `train_anchors.refined`."""
    hybrid = params.hybrid
    if hybrid.rounds == 0:
        return None
    first = copy.deepcopy(dict(recipe))
    first["problem"]["args"].pop("hybrid", None)
    epochs = hybrid.epochs or max(1, params.train_anchors.epochs // 3)

    def next_problem(tree: dict[str, Any], result) -> dict[str, Any]:
        problem = copy.deepcopy(tree["problem"])
        picks = refined_anchors(result, tree, hybrid.refine, epochs)
        problem["args"]["train_anchors"].setdefault("refined", []).extend(picks)
        return problem

    return Stages(
        count=hybrid.rounds + 1,
        first=first,
        next_problem=next_problem,
        label="round",
        what="hybrid schedule",
        may_change=("problem.args.hybrid.rounds",),  # more rounds leave the finished ones as they are
    )


def run_hybrid(
    recipe: Mapping[str, Any],
    out: str | Path,
    *,
    rounds: int = 1,
    refine: int = 2,
    epochs: int | None = None,
    **run_kwargs: Any,
):
    """The Python form of the recipe key `problem.args.hybrid` (evofair.run with it set): rounds in
    `out/round<k>`, `out/stages.json` naming the final one. Returns the last round's `Result`.
    `rounds=0` runs the recipe once, in `out/round0`."""
    from evofair.api import run

    problem = recipe.get("problem", {})
    if problem.get("name") != "merge" or "train_anchors" not in problem.get("args", {}):
        raise UserError("hybrid schedule: expected a `merge` recipe with problem.args.train_anchors")
    if rounds == 0:
        return run(recipe, Path(out) / "round0", **run_kwargs)
    staged = copy.deepcopy(dict(recipe))
    staged["problem"]["args"]["hybrid"] = {"rounds": rounds, "refine": refine, "epochs": epochs}
    return run(staged, out, **run_kwargs)
