"""Plan-making shared by every backend: what the genetic operators mean for checkpoint genomes.

For weights problems the backends' crossover and mutation do not touch tensors: they write
`Plan`s (which merge, which arguments, which seed), and executors carry them out. Random choices
here draw from the backend's own generator, which the store checkpoints every generation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from evofair.engine.pipeline import GenomeRef, OpCall, Plan

SEED_HIGH = 2**62


class PlanMaker:
    def __init__(self, cfg):  # a recipe's OperatorsCfg
        self.crossovers = cfg.crossovers
        self.mutation = cfg.mutation
        w = np.array([c.weight for c in self.crossovers], dtype=float)
        self.crossover_p = w / w.sum() if len(w) else w

    def init(self, rng: np.random.Generator) -> Plan:
        return Plan(init=OpCall("init", {}, int(rng.integers(SEED_HIGH))))

    def cross(self, p1: GenomeRef, p2: GenomeRef, rng: np.random.Generator) -> tuple[Plan, Plan]:
        """Two mirrored children of one mating, sharing the mating's seed."""
        k = int(rng.choice(len(self.crossovers), p=self.crossover_p)) if len(self.crossovers) > 1 else 0
        cfg = self.crossovers[k]
        seed = int(rng.integers(SEED_HIGH))
        return tuple(
            Plan(parents=(p1, p2), crossover=OpCall(cfg.name, cfg.args, seed, child=c))  # type: ignore
            for c in (0, 1)
        )

    def mutate(self, item: Any, rng: np.random.Generator) -> Plan:
        call = OpCall(self.mutation.name, self.mutation.args, int(rng.integers(SEED_HIGH)))
        if isinstance(item, GenomeRef):
            return Plan(parents=(item,), mutation=call)
        return replace(item, mutation=call)


def as_plan(item: Any) -> Plan:
    """An offspring that is a bare parent copy becomes a plan with that single parent."""
    return item if isinstance(item, Plan) else Plan(parents=(item,))
