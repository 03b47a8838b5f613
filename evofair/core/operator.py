"""The operator contract: what crossover, mutation and local-search functions receive and return.

Kinds and signatures (weights are `dict[str, Tensor]`; no operator edits its inputs):
- ``crossover``: ``fn(parents, args, *, seed, base) -> [child0, child1]`` — a model merge; the
  second child mirrors the first (coefficients swapped), as in NSGA-II's two-child crossover.
  Tag ``needs_base=True, requires=(evofair.core.problem.HasBase,)`` to receive the problem's shared base.
- ``mutation``: ``fn(weights, args, *, seed) -> weights``.
- ``refine``: ``fn(weights, args, *, seed, problem, reference) -> Refined`` — local search.
- ``vector_crossover`` / ``vector_mutation``: ``fn(args) -> pymoo operator`` for vector genomes.

Any operator tags ``requires=(Protocol, ...)`` with the problem capabilities it uses
(`evofair.core.problem.Trainable`, `HasBase`, ...): a recipe pairing it with a problem that lacks one is
refused when it is validated. Each is a function marked with `evofair.core.registry.component(kind, name, ArgsModel, **tags)` and
announced in the entry-point group `evofair.<kind>` (see `evofair.core.plugins`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evofair.core.individual import Weights


@dataclass(frozen=True)
class Refined:
    """What a refiner returns: new weights and what it logged (per-step losses, weights...)."""

    weights: Weights
    log: dict[str, Any] = field(default_factory=dict)


def training_batches(problem, *, seed: int, epochs: int, steps: int | None, batch_size: int) -> Iterator[Any]:
    """The batches of one local search: `epochs` passes over the problem's training data, each
    shuffled by `seed + epoch`, or exactly `steps` batches when `steps` is given."""
    step, epoch = 0, 0
    while (epoch < epochs) if steps is None else (step < steps):
        before = step
        for batch in problem.train_batches(seed + epoch, batch_size):
            yield batch
            step += 1
            if steps is not None and step >= steps:
                return
        if step == before:  # an empty epoch: no more data will come
            return
        epoch += 1
