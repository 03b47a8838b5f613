"""Operators, each a pure function registered by name with typed arguments.

Kinds and signatures (weights are `dict[str, Tensor]`; no operator edits its inputs):
- ``crossover``: ``fn(parents, args, *, seed, base) -> [child0, child1]`` — a model merge; the
  second child mirrors the first (coefficients swapped), as in NSGA-II's two-child crossover.
- ``mutation``: ``fn(weights, args, *, seed) -> weights``.
- ``refine``: ``fn(weights, args, *, seed, problem, reference) -> Refined`` — local search.
- ``vector_crossover`` / ``vector_mutation``: build pymoo operators for real-vector problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evofair.individual import Weights
from evofair.registry import Registry

KINDS = ("crossover", "mutation", "refine", "vector_crossover", "vector_mutation")


@dataclass(frozen=True)
class Refined:
    """What a refiner returns: new weights and what it logged (per-step losses, weights...)."""

    weights: Weights
    log: dict[str, Any] = field(default_factory=dict)


def _modules():
    from operators import merge, mutation, refine, vector

    modules = [merge, mutation, refine, vector]
    for optional in ("operators.fairpo", "operators.hyperdpo"):
        try:
            modules.append(__import__(optional, fromlist=["_"]))
        except ModuleNotFoundError as exc:  # refiners added by later modules
            if exc.name != optional:
                raise
    return modules


def registry(kind: str) -> Registry:
    """The registry of one operator kind, built from the operator modules (no import-time state)."""
    if kind not in KINDS:
        raise ValueError(f"unknown operator kind {kind!r}")
    return Registry.from_modules(kind, _modules())
