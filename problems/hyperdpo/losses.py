"""HyperDPO (docs/method-definitions.md#hyperdpo): listwise DPO, the ICOS objective, post-training temperature control
(the `hyperdpo` refiner in `refiner.py` uses them as local search in the engine, docs/method-definitions.md#memetic-use-how-the-methods-meet-in-evofair).

The losses are written here rather than taken from TRL because TRL's DPO trainers are pairwise
and sequence-only; HyperDPO needs the listwise (Plackett–Luce / ListNet) form over padded groups
with per-objective label transforms φ, which no installed library provides.

A problem that supports the `hyperdpo` refiner implements, besides `WeightsProblem`'s
`build_model` / `extract_weights` / `train_batches`:

- ``n_aux``: the number m of auxiliary objectives (the length of a weight vector w);
- ``phi``: a tuple of m label transforms, each ``"softmax"`` or ``"l1"``;
- ``listwise_scores(model, batch) -> Tensor[B, n]``: the model's score of every item of each group;
- ``listwise_labels(batch) -> (Tensor[B, n, m], BoolTensor[B, n])``: graded labels and the mask of
  real (non-padding) items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from evofair.core.individual import Weights
from evofair.errors import UserError

Phi = Literal["softmax", "l1"]


# -- listwise DPO -----------------------------------------------------------------------------
def phi_transform(z: torch.Tensor, mask: torch.Tensor, kind: Phi) -> tuple[torch.Tensor, torch.Tensor]:
    """Target distribution φ(z) over the real items of each group, and which groups have one.

    `z`, `mask`: [..., n]. softmax: φ = softmax(z) over real items (dense labels). l1: φ = z/‖z‖₁
    (sparse, non-negative labels); a group whose labels are all zero has no target and is marked
    invalid (it contributes nothing, instead of a 0/0).
    """
    mask = mask.bool()
    if kind == "softmax":
        p = torch.softmax(z.masked_fill(~mask, float("-inf")), dim=-1)
        valid = mask.any(-1)
        return torch.nan_to_num(p, nan=0.0) * mask, valid
    if kind == "l1":
        zz = torch.where(mask, z, torch.zeros_like(z))
        if bool((zz < 0).any()):
            raise ValueError("phi='l1' needs non-negative labels")
        total = zz.sum(-1, keepdim=True)
        valid = total.squeeze(-1) > 0
        return zz / total.clamp_min(torch.finfo(z.dtype).tiny), valid
    raise ValueError(f"phi: expected 'softmax' or 'l1', got {kind!r}")


def listwise_dpo_loss(
    s_theta: torch.Tensor,
    s_ref: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    beta: float | Sequence[float],
    phi: Phi | Sequence[Phi],
) -> torch.Tensor:
    """Per-objective listwise DPO losses L ∈ R^m, each averaged over the groups that have a target.

    L_j = −Σ_i φ(z^j)_i · log softmax_i(β_j·(s_θ,i − s_ref,i)) over the real items of a group.
    `s_theta`, `s_ref`: [B, n]; `labels`: [B, n, m] (or [B, n] for one objective); `mask`: [B, n].
    With n = 2, binary labels and φ = l1 this is exactly the DPO loss −log σ(β(Δθ − Δref)).
    """
    if labels.dim() == s_theta.dim():
        labels = labels.unsqueeze(-1)
    m = labels.shape[-1]
    betas = [float(beta)] * m if np.isscalar(beta) else [float(b) for b in beta]
    phis = [phi] * m if isinstance(phi, str) else list(phi)
    if len(betas) != m or len(phis) != m:
        raise ValueError(f"beta/phi: expected 1 or {m} values")
    mask = mask.bool()
    margin = s_theta - s_ref
    losses = []
    for j in range(m):
        logp = torch.log_softmax((betas[j] * margin).masked_fill(~mask, float("-inf")), dim=-1)
        p, valid = phi_transform(labels[..., j], mask, phis[j])
        per_group = -(p * logp.masked_fill(~mask, 0.0)).sum(-1)
        n_valid = valid.sum()
        losses.append((per_group * valid).sum() / n_valid.clamp_min(1))
    return torch.stack(losses)


def modpo_listwise_loss(
    s_theta: torch.Tensor,
    s_ref: torch.Tensor,
    labels0: torch.Tensor,
    mask: torch.Tensor,
    margins: torch.Tensor,
    w: Sequence[float],
    beta: float,
    phi: Phi,
) -> torch.Tensor:
    """MO-DPO (MODPO) for objective 0, listwise: CE(φ(z⁰), softmax((β·(s_θ − s_ref) − Σ_{j≥1} w_j r_j) / w_0)).

    `margins`: [B, n, m−1] the other objectives' rewards r_j per item (from their reward models).
    For n = 2 and binary labels this is MODPO's −log σ((1/w_0)(β·Δlogratio − w_{1:}·Δmargin)).
    """
    w = torch.as_tensor(list(w), dtype=s_theta.dtype)
    if float(w[0]) <= 0:
        raise ValueError("MO-DPO needs w_0 > 0 (it divides by the weight of the trained objective)")
    logits = (beta * (s_theta - s_ref) - (margins * w[1:]).sum(-1)) / w[0]
    mask = mask.bool()
    logp = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    p, valid = phi_transform(labels0, mask, phi)
    per_group = -(p * logp.masked_fill(~mask, 0.0)).sum(-1)
    return (per_group * valid).sum() / valid.sum().clamp_min(1)


# -- ICOS -------------------------------------------------------------------------------------
def icos_objective(L: torch.Tensor, w: torch.Tensor | Sequence[float], lam: float) -> torch.Tensor:
    """wᵀL − λ·cos(w, L) (COSMOS's sign, docs/method-definitions.md#icos-training; the paper's extracted text is garbled).

    The cosine term rewards a loss vector pointing along w, which lets one conditioned model
    reach the concave parts of the front; λ = 0 gives plain linear scalarisation (DPO-LS).
    """
    w = torch.as_tensor(w, dtype=L.dtype)
    out = (w * L).sum()
    if lam:
        out = out - lam * torch.nn.functional.cosine_similarity(w, L, dim=0, eps=1e-12)
    return out


def sample_w(rng: np.random.Generator, m: int, alpha: float | Sequence[float] = 1.0) -> np.ndarray:
    """w ~ Dirichlet(α·1) from a seeded generator (one draw per mini-batch in ICOS training)."""
    a = np.full(m, float(alpha)) if np.isscalar(alpha) else np.asarray(alpha, dtype=float)
    return rng.dirichlet(a)


def weight_grid(m: int, n_points: int = 11, seed: int = 0) -> np.ndarray:
    """n_points weight vectors on the simplex Δ_m used as front points by every method.

    m = 2: the uniform grid (i/(n−1), 1 − i/(n−1)) — 11 points as in the paper. m > 2: the m
    vertices (the single-objective models) plus pymoo's Riesz-energy directions for the rest.
    """
    if m == 1:
        return np.ones((1, 1))
    if m == 2:
        t = np.linspace(0.0, 1.0, n_points)
        return np.stack([t, 1.0 - t], axis=1)
    if n_points < m:
        raise UserError(f"n_points: expected at least {m} (one per objective), got {n_points}")
    from pymoo.util.ref_dirs import get_reference_directions

    eye = np.eye(m)
    if n_points == m:
        return eye
    rest = get_reference_directions("energy", m, n_points, seed=seed)
    # keep the vertices, then the energy points farthest from the vertices already chosen
    d = np.min(np.linalg.norm(rest[:, None, :] - eye[None], axis=-1), axis=1)
    extra = rest[np.argsort(-d, kind="stable")[: n_points - m]]
    return np.concatenate([eye, extra])


def reference_directions(m: int, n_partitions: int) -> np.ndarray:
    """NSGA-III's Das–Dennis directions (pymoo), from which the refiner picks an individual's w."""
    from pymoo.util.ref_dirs import get_reference_directions

    return get_reference_directions("das-dennis", m, n_partitions=n_partitions)


# -- post-training temperature control --------------------------------------------------------
def temperature_transform(s_base, s_beta, c: float):
    """s_{cβ} = (1 − 1/c)·s_base + (1/c)·s_β (linear-transformation property, paper Prop. 3.1).

    Exact for the ICOS optimum whenever the model class is closed under it: the transformed model
    at temperature cβ has the same margins β·(s − s_base), hence the same loss vector, as s_β at β.
    """
    if c <= 0:
        raise ValueError("c must be > 0")
    return (1.0 - 1.0 / c) * s_base + s_beta / c


def seed_population(
    problem, conditioned: Weights, n: int, seed: int, alpha: float = 1.0
) -> list[tuple[np.ndarray, Weights]]:
    """n individuals from one HyperDPO-conditioned model: w_i ~ Dirichlet(α) (seeded), each folded
    into a plain model by the problem's `condition(conditioned, w)` (for a w-concatenated input
    layer W·[x; w] + b this is exact: the bias becomes b + W_w·w)."""
    missing = [n for n in ("n_aux", "condition") if not hasattr(problem, n)]
    if missing:
        raise UserError(f"problem {problem.name} cannot seed a HyperDPO population (missing {', '.join(missing)})")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = sample_w(rng, int(problem.n_aux), alpha)
        out.append((w, problem.condition(conditioned, w)))
    return out
