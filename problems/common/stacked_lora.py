"""Several LoRA offspring through ONE forward of the shared frozen base: stacked adapters.

Why: when individuals are LoRA fine-tunes of a transformer, a generation's cost is the forward and
backward passes of local learning, and one offspring's batch rarely fills the device. S offspring
can share those passes: the input holds S slices of B rows each ([S·B, ...]; slice s is rows
s·B:(s+1)·B and belongs to offspring s), and every adapted Linear computes, per slice,

    y_s = x_s W_sᵀ + b + scaling_s · (x_s A_sᵀ) B_sᵀ

as batched matmuls over the stacked W [S, out, in], A [S, r, in] and B [S, out, r]. Every other
layer (attention, MLP, norms, pooling) acts row by row, so one forward of S·B rows is S forwards
of B rows. W_s is the offspring's frozen weight W₀ + ΔW_s (the genome it starts from), exactly the
weight its one-at-a-time peft model computes with; where all slices share one W (every offspring
starts from W₀) it is a single `linear` over all rows.

Exactness: A_s and B_s stay each offspring's own parameters (peft's `lora_A`/`lora_B` of its own
model) and are stacked inside the forward, so the backward of the sum of the per-slice losses
gives each adapter exactly the gradient of its own loss, and each offspring's own optimiser steps
it (its own AdamW state, its own gradient clipping). What differs from separate forwards is float
reassociation only: `bmm` against `linear`, and each slice padded to the group's longest text
(padded keys get exactly zero attention weight). Dropout masks cannot be matched (one random
stream draws them for the whole stack), so stacking is for dropout-free training: `dropout_free`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SliceAdapter:
    """One offspring's adapter on one Linear: its frozen weight and bias, its trainable factors."""

    weight: torch.Tensor  # (out, in), frozen: W₀ + the offspring's start ΔW
    bias: torch.Tensor | None  # (out,), frozen
    A: torch.Tensor  # (r, in), trainable
    B: torch.Tensor  # (out, r), trainable
    scaling: float  # α / r


def from_peft(layer, adapter: str = "default") -> SliceAdapter:
    """The `SliceAdapter` of a peft `LoraLayer` (its base Linear and its `adapter`'s factors)."""
    base = layer.get_base_layer()
    return SliceAdapter(
        base.weight, base.bias, layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, layer.scaling[adapter]
    )


def _same(tensors: Sequence[torch.Tensor | None]) -> bool:
    first = tensors[0]
    if first is None:
        return all(t is None for t in tensors)
    return all(t is first or (t is not None and torch.equal(t, first)) for t in tensors)


class StackedLoraLinear(torch.nn.Module):
    """A Linear with S LoRA adapters, one per slice of the batch (see the module docstring).

    The frozen weights are stacked once here; the factors are stacked at every forward so that
    gradients reach each offspring's own tensors."""

    def __init__(self, slices: Sequence[SliceAdapter]):
        super().__init__()
        if not slices:
            raise ValueError("StackedLoraLinear needs at least one adapter")
        self.n = len(slices)
        self.A = [s.A for s in slices]
        self.B = [s.B for s in slices]
        ref = slices[0].weight
        self.scaling = torch.tensor([s.scaling for s in slices], device=ref.device)[:, None, None]
        self.shared = _same([s.weight for s in slices]) and _same([s.bias for s in slices])
        if self.shared:  # one weight for every row: a plain linear, as peft's base layer computes it
            self.weight, self.bias = ref, slices[0].bias
        else:
            self.weight = torch.stack([s.weight.detach() for s in slices])
            biases = [s.bias.detach() for s in slices if s.bias is not None]
            self.bias = torch.stack(biases)[:, None] if len(biases) == self.n else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, width = x.shape[:-1], x.shape[-1]
        if x.dim() < 2 or x.shape[0] % self.n:
            raise ValueError(f"StackedLoraLinear: input {tuple(x.shape)} does not split into {self.n} slices")
        xs = x.reshape(self.n, -1, width)
        if self.shared:
            y = F.linear(xs, self.weight, self.bias)
        else:
            y = torch.bmm(xs, self.weight.transpose(1, 2))
            if self.bias is not None:
                y = y + self.bias
        A = torch.stack(self.A)
        B = torch.stack(self.B)
        low = torch.bmm(torch.bmm(xs, A.transpose(1, 2).to(xs.dtype)), B.transpose(1, 2).to(xs.dtype))
        y = y + low * self.scaling.to(low.dtype)
        return y.reshape(*lead, y.shape[-1])


@contextmanager
def stacked_adapters(
    model: torch.nn.Module, adapters: Mapping[str, Sequence[SliceAdapter]]
) -> Iterator[torch.nn.Module]:
    """`model` with each Linear named in `adapters` replaced by a `StackedLoraLinear` over its S
    slices, restored on exit (the model is shared: evaluation uses it too).

    Every entry must have the same number of slices; the model's batch is then S slices of equal
    size, slice s for adapter s in every layer."""
    counts = {len(v) for v in adapters.values()}
    if len(counts) != 1:
        raise ValueError(f"stacked_adapters: every target needs the same number of adapters, got {sorted(counts)}")
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
    try:
        for name, slices in adapters.items():
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            original = getattr(parent, attr)
            if not isinstance(original, torch.nn.Linear):
                raise TypeError(f"stacked_adapters: {name} is a {type(original).__name__}, not an nn.Linear")
            setattr(parent, attr, StackedLoraLinear(slices))
            swapped.append((parent, attr, original))
        yield model
    finally:
        for parent, attr, original in reversed(swapped):
            setattr(parent, attr, original)


def stack_batches(hiddens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """One [S·B, L, H] input and [S·B, L] mask from S right-padded slices of B rows each, padded
    to the widest slice (zeros, mask 0: the attention mask keeps padded positions out)."""
    rows = {h.shape[0] for h in hiddens}
    if len(rows) != 1:
        raise ValueError(f"stack_batches: slices must have equal row counts, got {sorted(rows)}")
    width = max(h.shape[1] for h in hiddens)
    hidden = torch.cat([F.pad(h, (0, 0, 0, width - h.shape[1])) for h in hiddens])
    mask = torch.cat([F.pad(m, (0, width - m.shape[1])) for m in masks])
    return hidden, mask


def dropout_free(model: torch.nn.Module) -> bool:
    """Whether `model` in train mode drops nothing: no `nn.Dropout` with p > 0 and no float
    attribute named like `*dropout*` above 0 (Llama's attention keeps its rate as a float)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0:
            return False
        for name, value in vars(module).items():
            if "dropout" in name and isinstance(value, float) and value > 0:
                return False
    return True
