"""The individual: an immutable handle on one checkpoint and what is known about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

Weights = dict[str, torch.Tensor]
"""A genome of a neural problem: the *trained* tensors only (a head, adapters, or a delta)."""


def individual_id(generation: int, index: int) -> str:
    return f"g{generation:04d}i{index:04d}"


@dataclass(frozen=True)
class Individual:
    """One evaluated model. Its weights live in the store under `weights_hash`.

    `operator` records how it was made ({"init"|"crossover"|"mutation"|"refine": {name, args,
    seed, ...}}) so its lineage can be replayed; `metrics[split][name]` holds every measured value
    (objectives and reported-only metrics) in their natural direction.
    """

    id: str
    generation: int
    parents: tuple[str, ...] = ()
    operator: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    weights_hash: str | None = None
    x: tuple[float, ...] | None = None
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def value(self, name: str, split: str = "val") -> float:
        return self.metrics[split][name]


_new = object.__new__


def array_individual(
    id: str, generation: int, seed: int, x: tuple[float, ...], metrics: Mapping[str, Mapping[str, float]]
) -> Individual:
    """`Individual(id=..., generation=..., seed=..., x=..., metrics=...)` (no parents, operator
    record or weights), built about four times faster: a vector problem makes and reads back tens
    of thousands of these, and the frozen dataclass's `__init__` (one `object.__setattr__` per
    field) cost more than storing them. It fills the same fields `__init__` would, so it must
    change with them (tests/evofair/test_seeding.py compares the two)."""
    ind = _new(Individual)
    ind.__dict__.update(
        id=id, generation=generation, parents=(), operator={}, seed=seed, weights_hash=None, x=x, metrics=metrics
    )
    return ind
