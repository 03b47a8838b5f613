"""The differentiable fairness surrogate (soft TPR gap) shared by local learning and baseline (b)."""

from __future__ import annotations

import math

import torch


def soft_tpr_gap(probs: torch.Tensor, y: torch.Tensor, g: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Differentiable ΔTPR of each head on its batch: soft TPR_c(a) = mean over (y=c, group a) of
    p(c|x); per class, max − min over the groups present in the batch; mean over the classes that
    have at least two groups present. probs (K, B, C), y and g (K, B) → (K,)."""
    K, B, C = probs.shape
    p_true = probs.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (K, B)
    cell = torch.nn.functional.one_hot(g * C + y, n_groups * C).to(probs.dtype)  # (K, B, G*C)
    counts = cell.sum(1).view(K, n_groups, C)
    soft = (torch.einsum("kb,kbj->kj", p_true, cell).view(K, n_groups, C)) / counts.clamp(min=1)
    present = counts > 0
    hi = torch.where(present, soft, torch.full_like(soft, -math.inf)).amax(1)
    lo = torch.where(present, soft, torch.full_like(soft, math.inf)).amin(1)
    valid = present.sum(1) >= 2  # (K, C)
    gaps = torch.where(valid, hi - lo, torch.zeros_like(hi))
    return gaps.sum(1) / valid.sum(1).clamp(min=1)
