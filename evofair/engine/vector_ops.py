"""Operators for real-vector genomes: pymoo operator objects, shared by the pymoo and DEAP backends."""

from __future__ import annotations

from typing import Any


def vector_operators(recipe) -> dict[str, Any]:
    """The pymoo crossover/mutation objects a vector recipe names (both backends read them)."""
    from evofair.core.plugins import registry

    ops = recipe.operators
    cx = ops.crossovers[0] if ops.crossovers else None
    out = {}
    if cx is not None:
        spec = registry("vector_crossover", recipe.paths).get(cx.name)
        out["crossover"] = spec.fn(spec.args(**cx.args))
    if ops.mutation is not None:
        spec = registry("vector_mutation", recipe.paths).get(ops.mutation.name)
        out["mutation"] = spec.fn(spec.args(**ops.mutation.args))
    return out
