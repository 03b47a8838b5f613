"""Mutation: Gaussian weight noise (docs/method-definitions.md#one-generation, step 3)."""

from __future__ import annotations

import torch
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.registry import Args, component


class GaussianArgs(Args):
    sigma: float = Field(
        0.02,
        ge=0,
        le=100,
        description="noise std (absolute, or relative to each tensor's std); "
        "at most 100 (larger only turns weights into noise, or inf)",
    )
    relative: bool = Field(False, description="σ_tensor = sigma · std(tensor), for pretrained weights")
    fraction: float = Field(1.0, gt=0, le=1, description="fraction of entries that receive noise")


@component("mutation", "gaussian", GaussianArgs)
def gaussian(weights: Weights, args: GaussianArgs, *, seed: int) -> Weights:
    """θ ← θ + N(0, σ²) on floating tensors, optionally on a random fraction of entries."""
    gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
    out = {}
    for name in sorted(weights):
        w = weights[name]
        if not w.is_floating_point() or args.sigma == 0:
            out[name] = w.clone()
            continue
        scale = args.sigma
        if args.relative:
            scale = args.sigma * (float(w.float().std()) if w.numel() > 1 else abs(float(w.float())))
        noise = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.dtype) * scale
        if args.fraction < 1:
            noise = noise * (torch.rand(w.shape, generator=gen) < args.fraction).to(w.dtype)
        out[name] = w + noise
    return out
