"""Anchors the inner problem trains: where on the trade-off they sit, and the refined ones.

Merges reach only what lies between their anchors, so the anchors must span the trade-off of
*this* data. By default each anchor is an ε-constraint model: the most accurate head whose soft TPR
gap stays under a bound ε. The bounds are in the gap's own units (a difference of rates), so the
same ladder (`EPSILON_BOUNDS`) spans the trade-off on every table; it also needs no probe.

A linear fairness weight λ does not transfer that way: the weights that span a trade-off differ by
an order of magnitude between tables (after 15 epochs, λ = 10 gives a near-constant head on
BiasBios, λ = 3 on COMPAS, λ = 1 on Adult). So with `scalarisation: linear` (or tchebycheff),
`lambdas: auto` runs a probe: it trains a wide ladder of weights as long as an anchor trains,
finds the smallest weight whose model is near-constant (the fair end: its delta from θ₀ still
points the way to fairness, which task arithmetic scales), and spaces the anchors by factors of 4
below it. The probe's examples count in the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from evofair.core.individual import Weights
from evofair.core.registry import Args
from evofair.errors import UserError
from evofair.tracking.progress import step

#: the weights the probe tries (λ = 0 is always an anchor: the accurate end)
PROBE_LADDER = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: the ratio between neighbouring automatic fairness weights
SPACING = 4.0
#: a ε-constraint anchor pays this much per unit of soft TPR gap above its bound
EPSILON_PENALTY = 100.0
#: the ε-constraint anchors' gap bounds under `lambdas: auto`, from the fair end (no gap) to the
#: accurate end (a bound of 1 never binds: plain cross-entropy). On 5 seeds this ladder's merge front
#: beat the linear probe's on COMPAS and Adult and was level with it on BiasBios
#: (studies/search_vs_sweep/README.md, "ε-constraint anchors").
EPSILON_BOUNDS = (0.0, 0.02, 0.06, 0.15, 1.0)
#: how many anchors the linear probe spaces when `count` is not given
PROBE_COUNT = 4
#: a probe model is near-constant when it gives up this share of the way from λ = 0's error to the constant predictor's
NEAR_CONSTANT_SHARE = 0.8


class RefinedAnchor(Args):
    """One more anchor: a merge recipe over the anchors listed before it, fine-tuned `epochs` more
    at fairness weight `lam`. Written out in the recipe (not found at run time) so that the run's
    config states exactly which models it merged, and cross-fitting can redo it inside every fold."""

    recipe: list[float] = Field(min_length=2, description="coefficients over the first len(recipe) anchors")
    lam: float = Field(ge=0, description="the fairness weight it is fine-tuned at (a gap bound under epsilon)")
    epochs: int = Field(5, ge=1, le=10_000)


def linear(ce: torch.Tensor, gap: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """CE + λ·gap: the λ-sweep's own scalarisation (reaches only the convex part of a front)."""
    return ce + lam * gap


def tchebycheff(ce: torch.Tensor, gap: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """max((1 − w)·CE, w·gap) with w = λ / (1 + λ): reaches concave parts of a front, where the linear
    scalarisation jumps from one end to the other."""
    w = lam / (1.0 + lam)
    return torch.maximum((1.0 - w) * ce, w * gap)


def epsilon_constraint(ce: torch.Tensor, gap: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """CE + P·max(0, gap − ε) with ε = λ: the most accurate model whose soft gap stays under a bound
    (λ here is the bound, so larger values are *less* fair; λ = 0 asks for no gap at all)."""
    return ce + EPSILON_PENALTY * torch.relu(gap - lam)


SCALARISATIONS = {"linear": linear, "tchebycheff": tchebycheff, "epsilon": epsilon_constraint}


class TrainedAnchors(Args):
    """Anchors the inner problem trains from its shared base θ₀, one per fairness weight λ."""

    scalarisation: Literal["linear", "tchebycheff", "epsilon"] = Field(
        "epsilon", description="how CE and the soft TPR gap become one loss (epsilon: λ is a bound on the gap)"
    )
    lambdas: list[float] | Literal["auto"] = Field(
        "auto",
        description="weights of the fairness surrogate (bounds under epsilon), or auto: EPSILON_BOUNDS under "
        "epsilon, else a probe spreads `count` weights",
    )
    count: int | None = Field(
        None, ge=2, le=16, description="how many anchors the probe of `lambdas: auto` spaces (default 4)"
    )
    probe_epochs: int | None = Field(
        None, ge=1, le=10_000, description="epochs of each probe model (lambdas: auto; default: `epochs`)"
    )
    epochs: int = Field(30, ge=1, le=10_000)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(128, ge=2)
    seed: int = Field(0, ge=0)
    refined: list[RefinedAnchor] = Field(
        default_factory=list,
        description="more anchors: merges of the ones before them, fine-tuned further (the hybrid schedule)",
    )

    @model_validator(mode="after")
    def _count_goes_with_the_probe(self):
        if self.count is not None and self.lambdas == "auto" and self.scalarisation == "epsilon":
            raise ValueError(
                f"count: epsilon's automatic bounds are {len(EPSILON_BOUNDS)} ({', '.join(map(str, EPSILON_BOUNDS))}); "
                "give other bounds as a list in lambdas"
            )
        return self

    @property
    def n_trained(self) -> int:
        if self.lambdas != "auto":
            return len(self.lambdas)
        return len(EPSILON_BOUNDS) if self.scalarisation == "epsilon" else (self.count or PROBE_COUNT)

    @property
    def n_anchors(self) -> int:
        return self.n_trained + len(self.refined)


def _check_inner(inner) -> None:
    from evofair.problems.common.classification import FeatureClassificationProblem

    if not isinstance(inner, FeatureClassificationProblem):
        raise UserError(
            "problem.args.train_anchors: the inner problem cannot train anchors (a feature classification "
            "problem such as biasbios or fair_classification can); name your checkpoints in problem.args.anchors"
        )


def _train(inner, inits: Sequence[Weights], lambdas: Sequence[float], seeds: Sequence[int], epochs: int, cfg):
    from evofair.problems.common.baselines import train_heads

    scalarise = None if cfg.scalarisation == "linear" else SCALARISATIONS[cfg.scalarisation]
    with torch.random.fork_rng():
        return train_heads(
            inner,
            list(inits),
            list(lambdas),
            list(seeds),
            epochs=epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            scalarise=scalarise,
        )


def choose_lambdas(inner, cfg: TrainedAnchors) -> tuple[list[float], int]:
    """The anchors' fairness weights (the recipe's, ε's default bounds, or the probe's choice) and the
    probe's examples. The probe's: λ = 0, then λ_c/4^(K−2), …, λ_c/4, λ_c with λ_c the smallest
    ladder weight whose probe model is near-constant on validate (the largest, if none is)."""
    _check_inner(inner)
    if cfg.lambdas != "auto":
        return list(cfg.lambdas), 0
    if cfg.scalarisation == "epsilon":
        return list(EPSILON_BOUNDS), 0
    count = cfg.count or PROBE_COUNT
    ladder, epochs = list(PROBE_LADDER), cfg.probe_epochs or cfg.epochs
    seeds = [cfg.seed + 500 + k for k in range(len(ladder))]
    with step(f"probing {len(ladder)} fairness weights for the anchors"):
        heads = _train(inner, [inner.base_weights()] * len(ladder), ladder, seeds, epochs, cfg)
    error_name = inner.objectives[0].name
    err = np.asarray(inner.metrics_of_predictions(inner.head_predictions(heads, "val"), "val")[error_name], float)
    y = np.asarray(inner.splits["val"].y)
    constant = 1.0 - np.bincount(y).max() / len(y)
    collapsed = [k for k in range(1, len(ladder)) if err[k] >= err[0] + NEAR_CONSTANT_SHARE * (constant - err[0])]
    top = ladder[collapsed[0]] if collapsed else ladder[-1]
    lambdas = [0.0, *(top / SPACING**j for j in range(count - 2, -1, -1))]
    return lambdas, len(ladder) * epochs * len(inner.splits["train"])


def train_anchors(
    inner,
    cfg: TrainedAnchors,
    lambdas: Sequence[float],
    merge: Callable[[list[Weights], np.ndarray, int], Weights],
    density: bool,
) -> tuple[list[Weights], int]:
    """K heads from the inner problem's shared θ₀, head k trained on CE + λ_k·(soft TPR gap) (the
    scalarised training the λ-sweep uses, so the anchors merge within one basin); then each refined
    anchor: its recipe merged (`merge(anchors, recipe, n)`) over the anchors before it, fine-tuned on
    `inner`'s train split at its own weight. Returns the anchors and their training examples."""
    _check_inner(inner)
    K, n_train = len(lambdas), len(inner.splits["train"])
    heads = _train(inner, [inner.base_weights()] * K, lambdas, [cfg.seed + k for k in range(K)], cfg.epochs, cfg)
    base = inner.base_weights()
    extra = {k: v for k, v in base.items() if k not in heads[0]}  # genes the heads do not train (fair_weight)
    anchors = [{**h, **extra} for h in heads]
    examples = K * cfg.epochs * n_train
    for j, r in enumerate(cfg.refined):
        recipe = np.asarray(r.recipe, dtype=float)
        start = merge(anchors, recipe, len(recipe) - int(density))
        (head,) = _train(inner, [start], [r.lam], [cfg.seed + 1000 + j], r.epochs, cfg)
        anchors.append({**head, **extra})
        examples += r.epochs * n_train
    return anchors, examples
