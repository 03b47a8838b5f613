"""HyperDPO's training on the `letor` problem: one w-conditioned ranker trained with ICOS.

Every draw of a weight vector w (Dirichlet, or now and then a point of the validation grid) gives
the loss wᵀL − λ·cos(w, L) on the per-objective listwise DPO losses L against the base ranker, so
one model learns the whole front and any w picks a point of it after training. Validation scores
the model under every weight vector of the front's grid, which is what the table's methods are
compared on. The problem (ranking.py) uses it for `init: hyperdpo`; the `hyperdpo_table`
experiment (table_methods.py) for its HyperDPO rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from evofair.core.seeding import torch_seeded
from evofair.problems.hyperdpo.letor import Groups
from evofair.problems.hyperdpo.losses import icos_objective, listwise_dpo_loss, sample_w, weight_grid
from evofair.problems.hyperdpo.ranker import Ranker, fit


def aux_loss(problem, s: torch.Tensor, batch: Groups) -> torch.Tensor:
    """Per-objective listwise DPO losses against the base (s_ref = s_base); `problem` is a
    `RankingProblem`."""
    return listwise_dpo_loss(s, batch.base, batch.labels[..., 1:], batch.mask, problem.params.beta, problem.phi)


def conditioned_ranker(
    problem, seed: int, hidden: int | None, w_scale: float | None, cond: Literal["concat", "film"]
) -> Ranker:
    """The untrained conditioned g: the problem's own when nothing is overridden, else one sized
    by the overrides (same seeding, so only the overridden sizes differ)."""
    p = problem.params
    if hidden is None and w_scale is None and cond == "concat":
        return problem.g_model(conditioned=True, seed=seed)
    with torch_seeded(seed & 0xFFFFFFFFFFFF):
        return Ranker(
            problem.d, hidden or p.hidden, problem.n_aux, True, p.w_scale if w_scale is None else w_scale, cond
        )


def icos_loss_fn(
    problem, draw: Callable[[np.random.Generator], np.ndarray], *, lam: float, w_per: str, k_w: int
) -> Callable:
    """`fit`'s loss for one batch: ICOS under one w per query (`w_per="query"`, queries averaged)
    or under `k_w` draws of one w for the whole batch (averaged when more than one)."""
    p = problem.params

    def loss_fn(mdl, b, rng):
        if w_per == "query":
            W = torch.as_tensor(np.stack([draw(rng) for _ in range(len(b))]), dtype=torch.float32)
            s = b.base + mdl(b.X, W.unsqueeze(1))  # [B, 1, m] broadcast over each query's documents
            per_q = [
                icos_objective(
                    listwise_dpo_loss(
                        s[q : q + 1],
                        b.base[q : q + 1],
                        b.labels[q : q + 1, :, 1:],
                        b.mask[q : q + 1],
                        p.beta,
                        problem.phi,
                    ),
                    W[q],
                    lam,
                )
                for q in range(len(b))
            ]
            return torch.stack(per_q).mean()
        losses = []
        for _ in range(k_w):
            w = torch.as_tensor(draw(rng), dtype=torch.float32)
            losses.append(icos_objective(aux_loss(problem, b.base + mdl(b.X, w), b), w, lam))
        return losses[0] if k_w == 1 else torch.stack(losses).mean()

    return loss_fn


def grid_val_fn(problem, grid: np.ndarray) -> Callable:
    """`fit`'s validation: minus w·NDCG_aux(val; w) for each weight vector of the front's grid
    (fit takes their mean for a shared selection, or each for a per-w one)."""
    val = problem.data["val"]

    def val_fn(mdl):
        return -np.array(
            [
                np.dot(
                    w, problem.aux_ndcg((val.base + mdl(val.X, torch.as_tensor(w, dtype=torch.float32))).numpy(), "val")
                )
                for w in grid
            ]
        )

    return val_fn


def train_icos(
    problem,
    *,
    seed: int,
    epochs: int,
    alpha: float,
    lam: float,
    batch_size: int = 8,
    val_grid: np.ndarray | None = None,
    patience: int | None = None,
    hidden: int | None = None,
    w_scale: float | None = None,
    lr: float | None = None,
    val_every: int = 1,
    w_per: Literal["batch", "query"] = "batch",
    select: Literal["shared", "per_w"] = "shared",
    stop: Literal["shared", "per_w"] = "shared",
    k_w: int = 1,
    grid_mix: float = 0.0,
    cond: Literal["concat", "film"] = "concat",
):
    """One conditioned model: per batch w ~ Dir(α) (seeded), loss wᵀL − λ·cos(w, L).

    `hidden`, `w_scale`, `lr`: overrides of the problem's values for this model only (None: the
    problem's), so an experiment can size the conditioned model apart from the per-w baselines;
    `val_every`, `select`, `stop`: see `fit` (validation scores the model under each weight vector
    of `val_grid` with w·NDCG_aux; `select="per_w"` keeps each w's best-epoch snapshot in the log).
    `w_per="query"` draws one w per query of the batch instead of one per
    batch (the paper's Algorithm 1) and averages the queries' ICOS losses: the same expected
    objective E_w[wᵀL − λ·cos(w, L)] with more w per step (a lower-variance estimate of it).
    `k_w` > 1 (with w_per="batch"): k_w draws evaluated on the same batch, their ICOS losses averaged.
    `grid_mix`: each draw is, with this probability, a uniformly picked weight vector of the
    validation grid (the front's w) instead of a Dirichlet draw. `cond`: see `Ranker`.
    With the defaults (select/stop "shared", k_w 1, grid_mix 0, concat) the result is the earlier one.
    """
    p = problem.params
    model = conditioned_ranker(problem, seed, hidden, w_scale, cond)
    grid = weight_grid(problem.n_aux) if val_grid is None else val_grid

    def draw(rng):
        if grid_mix > 0 and rng.random() < grid_mix:
            return np.asarray(grid[rng.integers(len(grid))], dtype=float)
        return sample_w(rng, problem.n_aux, alpha)

    return fit(
        model,
        icos_loss_fn(problem, draw, lam=lam, w_per=w_per, k_w=k_w),
        problem.data["train"],
        epochs=epochs,
        lr=lr or p.lr,
        batch_size=batch_size,
        seed=seed,
        val_fn=grid_val_fn(problem, grid),
        patience=patience or p.patience,
        val_every=val_every,
        select=select,
        stop=stop,
    )
