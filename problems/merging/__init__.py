"""Merge-recipe search: the Pareto front of merges of fixed anchor checkpoints.

An individual is a *recipe* — a real vector of mixing coefficients over K anchors (and, for TIES
and DARE, the density kept) — realised by mergekit's in-memory merge and judged by any weights
problem's own `evaluate`, without training. Anchors are a user's own checkpoints (safetensors
files, Hugging Face folders, PEFT adapters) or checkpoints the inner problem trains along its
trade-off from one shared initialisation (docs/merging.md).
"""
