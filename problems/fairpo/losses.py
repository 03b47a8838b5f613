"""FairPO's losses and GRPO group weights, exactly as docs/method-definitions.md#fairpo states them (the authors' code).

Everything works on a *view* of one batch that covers both problem kinds FairPO meets in evofair:

- multi-label (the paper): scores ``m = σ(logits)`` per (example, label); the privileged anchors
  are every (i, l) with l ∈ P, the non-privileged entries every (i, j) with j ∈ N;
- classification with protected groups (BiasBios): scores ``m = softmax(logits)``, the one-hot
  target plays ``y``; an example's anchor is its true class, privileged when its group is, so the
  preference pair is (true class ≻ one confusing class) and the groups are demographic groups.

A confusing partner is drawn for every anchor at once with masks and one ``torch.Generator``
(random keys, masked argmax: uniform over the confusing set) — no per-sample Python loop, which is
what makes the authors' per-example loop usable as an inner step of an evolutionary run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

PROB_CLAMP = 1e-8  # docs/method-definitions.md#privileged-loss: clamp probabilities to [1e-8, 1 − 1e-8]


@dataclass(frozen=True)
class BatchView:
    """What every FairPO loss needs from one batch (all (B, C) tensors).

    ``logm``/``logm0``: log of the clamped policy/reference scores; ``base``/``base_ref``: the
    per-entry supervised loss (BCE, or CE at the true class) of policy and reference; ``y``: 0/1
    target; ``anchors``: privileged anchor entries; ``entries_n``: non-privileged entries;
    ``rank``: what the confusing set compares — the policy's *unclamped* scores, as the logits
    (σ and softmax are strictly increasing in the logit within a row, so ``z_k ≥ z_l`` ⇔
    ``m_k ≥ m_l`` exactly, even where σ rounds to 0 or 1 in floating point). The paper defines K
    on the scores; the clamp belongs to the loss only — comparing clamped scores would turn two
    scores below 1e-8 into a tie and give a correctly ranked anchor a partner.
    """

    logm: torch.Tensor
    logm0: torch.Tensor | None
    base: torch.Tensor
    base_ref: torch.Tensor | None
    y: torch.Tensor
    anchors: torch.Tensor
    entries_n: torch.Tensor
    rank: torch.Tensor


LOG_LO, LOG_HI = math.log(PROB_CLAMP), math.log1p(-PROB_CLAMP)


def _log_clamped(logp: torch.Tensor) -> torch.Tensor:
    """log(clamp(p, 1e-8, 1 − 1e-8)) computed from log p.

    The same number as clamping p first (log is monotone), but safe in float32, where 1 − 1e-8
    rounds to 1 and the clamp would let log(1 − m) reach −inf (measured: NaN heads on enron).
    """
    return logp.clamp(LOG_LO, LOG_HI)


def bce_entries(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Element-wise BCE on clamped probabilities (the authors' form, not BCE-with-logits)."""
    return -(y * _log_clamped(F.logsigmoid(logits)) + (1 - y) * _log_clamped(F.logsigmoid(-logits)))


def multilabel_view(logits, y, privileged: torch.Tensor, ref_logits=None) -> BatchView:
    """View of a multi-label batch; `privileged` is a (C,) bool mask of P."""
    y = y.to(logits.dtype)
    logm = _log_clamped(F.logsigmoid(logits))
    logm0 = None if ref_logits is None else _log_clamped(F.logsigmoid(ref_logits)).detach()
    base_ref = None if ref_logits is None else bce_entries(ref_logits, y).detach()
    anchors = privileged.to(torch.bool).expand_as(y)
    return BatchView(logm, logm0, bce_entries(logits, y), base_ref, y, anchors, ~anchors, logits.detach())


def classification_view(logits, target, privileged_example: torch.Tensor, ref_logits=None) -> BatchView:
    """View of a single-label batch; `privileged_example` (B,) bool marks examples of P groups."""
    y = F.one_hot(target.long(), logits.shape[1]).to(logits.dtype)
    logm = _log_clamped(torch.log_softmax(logits, dim=1))
    logm0 = None if ref_logits is None else _log_clamped(torch.log_softmax(ref_logits, dim=1)).detach()
    onehot = y.bool()
    base = -logm * y  # CE at the true class, zero elsewhere (only true-class entries are used)
    base_ref = None if logm0 is None else (-logm0 * y).detach()
    anchors = onehot & privileged_example[:, None]
    return BatchView(logm, logm0, base, base_ref, y, anchors, onehot & ~privileged_example[:, None], logits.detach())


def draw_partners(m: torch.Tensor, y: torch.Tensor, anchors: torch.Tensor, generator: torch.Generator):
    """One confusing partner per anchor (i, l), uniform over its confusing set K.

    `m`: the scores, or any transform strictly increasing within a row (FairPO passes the logits);
    never the clamped scores. y_l = 1: K = {k ≠ l : y_k = 0, m_k ≥ m_l}; y_l = 0: K = {k ≠ l : y_k = 1, m_k ≤ m_l}.
    Returns (partner index (B, C) long, has_partner (B, C) bool); partner is meaningless where
    has_partner is False. Random keys are drawn for the whole (B, C, C) block so the draw depends
    only on the generator's state and the batch shape.
    """
    B, C = m.shape
    pos = y.bool()
    ml, mk = m[:, :, None], m[:, None, :]
    other = ~torch.eye(C, dtype=torch.bool, device=m.device)[None]
    cand_pos = (~pos)[:, None, :] & (mk >= ml)  # anchor positive: negatives scored at or above it
    cand_neg = pos[:, None, :] & (mk <= ml)  # anchor negative: positives scored at or below it
    cand = torch.where(pos[:, :, None], cand_pos, cand_neg) & other & anchors[:, :, None]
    keys = torch.rand((B, C, C), generator=generator, dtype=torch.float64).to(m.device)
    keys = torch.where(cand, keys, torch.full_like(keys, -1.0))
    return keys.argmax(dim=2), cand.any(dim=2)


def _preference_h(view: BatchView, reward: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """h = r_pref − r_dispref, where the anchor is preferred iff it is a positive."""
    r_k = torch.gather(reward, 1, partner)
    sign = view.y * 2 - 1
    return sign * (reward - r_k)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum()
    return (x * mask).sum() / n if int(n) > 0 else x.sum() * 0.0


PrivLoss = Literal["dpo", "simpo", "cpo", "bce"]
NonPrivLoss = Literal["hinge", "bce"]


def privileged_loss(
    view: BatchView,
    kind: PrivLoss,
    generator: torch.Generator,
    *,
    beta: float = 0.5,
    gamma: float = 0.0,
    lam: float = 0.5,
    return_pairs: bool = False,
):
    """L_P in its DPO, SimPO (margin γ) or CPO (λ·BCE) form, or plain BCE (the ablation).

    DPO/SimPO: per anchor −log σ(β·h [− γ]) if it has a partner, else its own BCE; summed over
    anchors and divided by their number (B·|P| for multi-label). CPO: the reference-free term
    averaged over anchors that have a partner, plus λ · BCE averaged over all anchors.
    """
    anchors = view.anchors
    if kind == "bce":
        loss = _masked_mean(view.base, anchors)
        return (loss, None) if return_pairs else loss
    partner, has = draw_partners(view.rank, view.y, anchors, generator)  # K on the unclamped scores
    if kind == "dpo":
        if view.logm0 is None:
            raise ValueError("the DPO form of L_P needs reference scores")
        reward = view.logm - view.logm0
    else:
        reward = view.logm
    h = _preference_h(view, reward, partner)
    pref = -F.logsigmoid(beta * h - (gamma if kind == "simpo" else 0.0))
    if kind == "cpo":
        loss = _masked_mean(pref, has & anchors) + lam * _masked_mean(view.base, anchors)
    else:
        loss = _masked_mean(torch.where(has, pref, view.base), anchors)
    return (loss, (partner, has)) if return_pairs else loss


def nonprivileged_loss(view: BatchView, kind: NonPrivLoss, *, epsilon: float = 0.05) -> torch.Tensor:
    """L_N: mean over non-privileged entries of max(0, BCE_θ − BCE_ref − ε), or plain BCE (ablation)."""
    if kind == "bce":
        return _masked_mean(view.base, view.entries_n)
    if view.base_ref is None:
        raise ValueError("the hinge form of L_N needs reference scores")
    return _masked_mean(torch.relu(view.base - view.base_ref - epsilon), view.entries_n)


Weighting = Literal["grpo", "grpo_stable", "fixed", "static", "pooled"]


@dataclass
class GroupWeights:
    """α over the two groups (P, N), updated once per mini-batch from the detached group losses.

    - ``grpo``: mirror ascent α_g ← α_g·exp(η·L_g), then normalise (done in log space, which is
      the same map but cannot underflow over thousands of steps);
    - ``grpo_stable`` (the FairPO code): s_g = (L_g − EMA_g)/(|EMA_g| + 1e-6), α_g ← α_g·exp(clamp(η·s_g,
      −10, 10)), normalise, then EMA_g ← 0.9·EMA_g + 0.1·L_g. On the *first* update there is no
      running mean yet: the paper (Algorithm 1, §4.5) is silent and describes only the
      plain step, so we follow the authors' code — github.com/soumenkm/FairPO, ``src/train.py`` at
      commit 4bae24a7365bf84f65b1f9f30141dc2d2e80e948, the training loop's
      ``if self.num_updates_priv_loss_ema == 0: scaled_exp_term_p = current_loss_p_detached;
      self.loss_priv_ema = current_loss_p_detached`` (and the same for N): step 1 uses s_g = L_g
      itself (the plain GRPO step, clamped) and sets EMA_g = L_g without decay; from step 2 on
      s_g is relative to the EMA (starting the EMA at L instead would leave α unchanged on
      step 1). The authors normalise by Z + 1e-8; we normalise exactly in log space (a 1e-8
      relative difference);
    - ``fixed``: α stays at ``alpha0`` (the "fixed weights 0.5/0.5" ablation).
    """

    mode: Literal["grpo", "grpo_stable", "fixed"] = "grpo"
    eta: float = 0.05
    alpha0: Sequence[float] = (0.5, 0.5)
    ema_decay: float = 0.9
    log_alpha: list[float] = field(init=False)
    ema: list[float] | None = field(init=False, default=None)

    def __post_init__(self):
        total = float(sum(self.alpha0))
        self.log_alpha = [math.log(a / total) for a in self.alpha0]

    @property
    def alpha(self) -> list[float]:
        top = max(self.log_alpha)
        w = [math.exp(a - top) for a in self.log_alpha]
        s = sum(w)
        return [x / s for x in w]

    def update(self, losses: Sequence[float]) -> list[float]:
        losses = [float(v) for v in losses]
        if self.mode == "grpo":
            self.log_alpha = [a + self.eta * v for a, v in zip(self.log_alpha, losses)]
        elif self.mode == "grpo_stable":
            if self.ema is None:  # first update: s = L, EMA = L (the authors' code; see the class docstring)
                scaled = list(losses)
                self.ema = list(losses)
            else:
                scaled = [(v - e) / (abs(e) + 1e-6) for v, e in zip(losses, self.ema)]
                self.ema = [self.ema_decay * e + (1 - self.ema_decay) * v for e, v in zip(self.ema, losses)]
            steps = [min(10.0, max(-10.0, self.eta * v)) for v in scaled]
            self.log_alpha = [a + s for a, s in zip(self.log_alpha, steps)]
        top = max(self.log_alpha)  # renormalise so log α stays bounded
        lse = top + math.log(sum(math.exp(a - top) for a in self.log_alpha))
        self.log_alpha = [a - lse for a in self.log_alpha]
        return self.alpha
