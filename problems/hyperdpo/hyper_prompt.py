"""Hyper Prompt Tuning (HyperDPO paper §4.2, docs/method-definitions.md#conditioning): condition any causal LM on a weight
vector w (and optionally the temperature β) without changing its architecture.

Two small MLPs map w to A (k×r) and B (r×d); the mask A·B multiplies, element-wise, a block of k
trainable prefix embeddings, which is prepended to the token embeddings (`inputs_embeds`), so it
works for every Hugging Face causal LM and composes with peft LoRA (the LM may be a `PeftModel`).
Depends only on torch and the transformers calling convention (no evofair imports).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from evofair.core.seeding import torch_seeded


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))


class HyperPromptTuning(nn.Module):
    """w ∈ Δ_m (optionally with β) → k prefix embeddings P ⊙ (A(w)·B(w)), shape [batch, k, d].

    `k`: virtual tokens; `r`: rank of the mask (paper: k = 8, r = 4). With `temperature=True` the
    MLPs also read log β, which makes a temperature-conditioned model (paper Appendix C).
    """

    def __init__(
        self,
        n_obj: int,
        embed_dim: int,
        k: int = 8,
        r: int = 4,
        hidden: int = 32,
        temperature: bool = False,
        init_std: float = 0.02,
        seed: int = 0,
    ):
        super().__init__()
        if min(n_obj, embed_dim, k, r, hidden) < 1:
            raise ValueError("n_obj, embed_dim, k, r and hidden must be ≥ 1")
        self.n_obj, self.embed_dim, self.k, self.r, self.temperature = n_obj, embed_dim, k, r, temperature
        d_in = n_obj + int(temperature)
        with torch_seeded(seed):  # seeded init, global RNG state left as it was
            self.mlp_a, self.mlp_b = _mlp(d_in, hidden, k * r), _mlp(d_in, hidden, r * embed_dim)
            self.prefix = nn.Parameter(torch.randn(k, embed_dim) * init_std)

    def mask(self, w: torch.Tensor, beta: torch.Tensor | float | None = None) -> torch.Tensor:
        """A(w)·B(w): [batch, k, d]."""
        w = torch.as_tensor(w, dtype=self.prefix.dtype, device=self.prefix.device)
        if w.dim() == 1:
            w = w.unsqueeze(0)
        if w.shape[-1] != self.n_obj:
            raise ValueError(f"w: expected {self.n_obj} weights, got {w.shape[-1]}")
        x = w
        if self.temperature:
            if beta is None:
                raise ValueError("a temperature-conditioned prompt needs beta")
            b = torch.as_tensor(beta, dtype=w.dtype, device=w.device).reshape(-1, 1).expand(len(w), 1)
            x = torch.cat([w, torch.log(b)], dim=-1)
        A = self.mlp_a(x).view(-1, self.k, self.r)
        B = self.mlp_b(x).view(-1, self.r, self.embed_dim)
        return A @ B

    def forward(self, w, beta=None) -> torch.Tensor:
        return self.prefix.unsqueeze(0) * self.mask(w, beta)


class HyperPromptLM(nn.Module):
    """A causal LM (plain or peft) with a Hyper Prompt prefix; logits come back aligned with input_ids."""

    def __init__(self, lm: nn.Module, hpt: HyperPromptTuning):
        super().__init__()
        emb = lm.get_input_embeddings()
        if emb.embedding_dim != hpt.embed_dim:
            raise ValueError(f"prompt width {hpt.embed_dim} ≠ the LM's embedding width {emb.embedding_dim}")
        self.lm, self.hpt = lm, hpt

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, w, beta=None) -> torch.Tensor:
        emb = self.lm.get_input_embeddings()(input_ids)
        prefix = self.hpt(w, beta).to(emb.dtype)
        if prefix.shape[0] == 1:
            prefix = prefix.expand(len(input_ids), -1, -1)
        inputs = torch.cat([prefix, emb], dim=1)
        mask = torch.cat(
            [
                torch.ones(len(input_ids), self.hpt.k, dtype=attention_mask.dtype, device=attention_mask.device),
                attention_mask,
            ],
            dim=1,
        )
        return self.lm(inputs_embeds=inputs, attention_mask=mask).logits[:, self.hpt.k :]


def trainable_parameters(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """Every parameter that requires grad, once (LoRA adapters + the prompt's MLPs and prefix)."""
    seen, out = set(), []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
