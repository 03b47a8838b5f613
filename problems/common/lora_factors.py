"""The `lora` genome stored as low-rank factors (`problem.args.lora.storage: factors`).

Why: the dense-delta genome (lora_model.py) stores ΔW = W − W₀ of every adapted matrix, m·n
floats each; for a 7B decoder that is gigabytes per individual where LoRA's factors are megabytes
(benchmarks/genome_scale.py). This layout stores `lora_B.{t}.weight` (m × k) and
`lora_A.{t}.weight` (k × n) with ΔW = B·A, k ≤ `max_rank` (default 2r), plus the same head.

- Crossover acts on the deltas, not the factors (problems/common/low_rank.py): exact as stacked
  factors for linear / task arithmetic / scalar uniform up to `max_rank`, truncated SVD of the
  merged delta (one matrix at a time) for TIES / DARE / SLERP / element-wise uniform.
- Mutation (operators.mutation.gaussian) adds noise to the *factors*: ΔW' = (B+E_B)(A+E_A) stays
  of rank ≤ k, so it costs O((m+n)k) and loses nothing to truncation; noise on the dense delta
  would be full-rank, and re-factorising it would discard all but its projection onto k directions
  at the price of an SVD per matrix per offspring.
- Local learning trains a fresh peft adapter on W₀ + B·A and stacks it: B ← [B | s·B_new],
  A ← [A; A_new] (s = α/r), truncated to `max_rank` when the stack is larger (exact QR + SVD of a
  k × k core, never the dense matrix).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from evofair.core.genome import WeightsGenome
from evofair.core.individual import Weights
from evofair.problems.common.lora_model import LoraAdapterModel
from evofair.problems.common.low_rank import FactorMerge, a_key, b_key, truncate_factors


def compact(B: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop rank-one terms that are exactly zero (e.g. a zero-initialised adapter, an untrained
    LoRA B), keeping at least one so every tensor has a shape safetensors stores."""
    keep = (B.abs().sum(0) > 0) & (A.abs().sum(1) > 0)
    if not bool(keep.any()):
        keep[0] = True
    return (B, A) if bool(keep.all()) else (B[:, keep].contiguous(), A[keep].contiguous())


class LoraFactorAdapterModel(LoraAdapterModel):
    """`LoraAdapterModel` for genomes that store the adapters as factors (see the module docstring)."""

    def __init__(self, problem):
        super().__init__(problem)
        self.max_rank = self.args.max_rank or 2 * self.args.r

    def _adapters(self, weights: Weights) -> dict[str, Any]:
        return {t: (weights[b_key(t)], weights[a_key(t)]) for t in self.targets}

    def _deltas(self, adapters: dict[str, Any]) -> Iterator[tuple[str, torch.Tensor]]:
        for t, (B, A) in adapters.items():
            yield t, B.to(self.device) @ A.to(self.device)

    def _join(self, adapters: dict[str, Any], head: Weights) -> Weights:
        out: Weights = {}
        for t, (B, A) in adapters.items():
            out[b_key(t)], out[a_key(t)] = B, A
        return {**out, **{f"head.{k}": v for k, v in head.items()}}

    def _zero_adapters(self) -> dict[str, Any]:
        return {
            t: (torch.zeros(w.shape[0], 1, dtype=w.dtype), torch.zeros(1, w.shape[1], dtype=w.dtype))
            for t, w in self.W0.items()
        }

    def _fold(self, target: str, start: Any, mod) -> Any:
        B0, A0 = start
        scale = mod.scaling["default"]
        B_new = mod.lora_B["default"].weight.detach().cpu() * scale
        A_new = mod.lora_A["default"].weight.detach().cpu()
        B, A = compact(torch.cat([B0, B_new.to(B0.dtype)], 1), torch.cat([A0, A_new.to(A0.dtype)], 0))
        B, A, _ = truncate_factors(B, A, self.max_rank)
        return B, A


class LoraFactorGenome(WeightsGenome):
    """Stored, deduplicated and varied like any checkpoint, except that crossover goes through
    `FactorMerge` so that merges mean what they mean for the dense deltas."""

    name = "lora_factors"

    def crossover(self, problem, spec, parents, args, *, seed: int, base: Weights | None):
        lora = problem.params.lora
        merge = FactorMerge(max_rank=lora.max_rank or 2 * lora.r, svd=lora.svd)
        kids = merge.crossover(spec.name, spec.fn, [_compacted(p) for p in parents], args, seed=seed, base=base)
        errors = [e for per in merge.log.values() for e in per]
        log = {"refactor_max_rel_error": max(errors), "refactored": len(errors)} if errors else {}
        return kids, log


def _compacted(weights: Weights) -> Weights:
    """Parents with zero rank-one terms dropped, so stacking two fresh genomes does not spend rank."""
    out = dict(weights)
    for k in weights:
        if k.startswith("lora_B."):
            a = "lora_A." + k[len("lora_B.") :]
            out[k], out[a] = compact(weights[k], weights[a])
    return out


LORA_FACTORS = LoraFactorGenome()
