"""How the DEAP backend makes and varies the items of any genome, read from the genome's description.

- Real-valued array genomes use DEAP's `cxSimulatedBinaryBounded` and `mutPolynomialBounded` with
  the parameters of the recipe's `sbx`/`pm` operators, read from the very pymoo objects the pymoo
  backend would use (SBX: mating probability `prob`, per-variable probability 0.5 and a 0.5 child
  swap — fixed in DEAP and the defaults of pymoo's SBX; PM: per-individual probability `prob`
  (0.9 in pymoo's PM), per-variable `prob_var` or min(0.5, 1/n_var)). Initial vectors come from
  the genome's own `sample`.
- Checkpoint genomes write `Plan`s through `PlanMaker` with the recipe's `crossover_prob` and
  `mutation_prob`, as the pymoo adapter's plan operators do.

Other array genomes (integers, permutations) are varied by pymoo operator objects, which DEAP
cannot call: the recipe validator sends them to the pymoo backend with a one-line error.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from deap import tools

from evofair.core.genome import ArrayGenome, Genome
from evofair.engine.plans import SEED_HIGH, PlanMaker
from evofair.errors import UserError


class DeapVariation(Protocol):
    """How the DEAP backend makes and varies items of one genome."""

    def initial(self, rng: np.random.Generator, n: int) -> list[Any]: ...

    def vary(self, p1: Any, p2: Any, rng: np.random.Generator) -> list[Any]: ...

    def key(self, item: Any) -> Hashable: ...

    def item(self, told: Any) -> Any: ...


@contextlib.contextmanager
def deap_random(seed: int) -> Iterator[None]:
    """Seed Python's global `random` (which DEAP's tools use) for one block, then restore it."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(SEED_HIGH))


def deap_supports(genome: Genome) -> bool:
    """DEAP varies real vectors and checkpoints; other arrays need pymoo's operator objects."""
    return genome.encoding == "checkpoint" or (isinstance(genome, ArrayGenome) and genome.vtype is float)


def deap_variation(genome: Genome, recipe, problem) -> DeapVariation:
    """The DEAP side of `genome` (see the module docstring)."""
    if genome.encoding == "checkpoint":
        return PlanVariation(recipe, genome)
    if not (isinstance(genome, ArrayGenome) and deap_supports(genome)):
        raise UserError(
            f"algorithm.backend: deap varies real vectors and checkpoints; the {genome.name!r} genome "
            "needs algorithm.backend: pymoo"
        )
    return RealVectorVariation(recipe, problem, genome)


@dataclass(frozen=True)
class _SbxPm:
    """SBX + polynomial mutation parameters, taken from the pymoo operators of the recipe."""

    eta_c: float
    prob_c: float
    eta_m: float
    prob_m: float
    indpb: float


def _sbx_pm(recipe, n_var: int) -> _SbxPm:
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM

    from evofair.engine.vector_ops import vector_operators

    ops = vector_operators(recipe)
    # no operator in the recipe: pymoo's NSGA2 defaults, which the pymoo backend then uses
    sbx = ops.get("crossover", SBX(eta=15, prob=0.9))
    pm = ops.get("mutation", PM(eta=20))
    if not isinstance(sbx, SBX):
        raise UserError("operators.crossover.name: the deap backend supports only sbx for vector problems")
    if not isinstance(pm, PM):
        raise UserError("operators.mutation.name: the deap backend supports only pm for vector problems")
    if sbx.prob_var.value != 0.5 or sbx.prob_bin.value != 0.5 or sbx.prob_exch.value != 1.0:
        raise UserError("operators.crossover.args: DEAP's SBX fixes the per-variable and swap probabilities at 0.5")
    prob_var = pm.prob_var.value if pm.prob_var is not None else min(0.5, 1.0 / n_var)
    return _SbxPm(
        eta_c=float(sbx.eta.value),
        prob_c=float(sbx.prob.value),
        eta_m=float(pm.eta.value),
        prob_m=float(pm.prob.value),
        indpb=float(prob_var),
    )


class RealVectorVariation:
    """Real vectors: DEAP's bounded SBX and polynomial mutation."""

    def __init__(self, recipe, problem, genome: ArrayGenome):
        self.genome, self.problem = genome, problem
        self.var = _sbx_pm(recipe, genome.n_var(problem))
        xl, xu = genome.bounds(problem)
        self.xl = [float(v) for v in xl]  # DEAP wants Python sequences, not arrays
        self.xu = [float(v) for v in xu]

    def initial(self, rng: np.random.Generator, n: int) -> list[Any]:
        return list(self.genome.sample(self.problem, rng, n))

    def vary(self, p1: Any, p2: Any, rng: np.random.Generator) -> list[np.ndarray]:
        v = self.var
        c1, c2 = [float(x) for x in p1], [float(x) for x in p2]
        if rng.random() < v.prob_c:
            with deap_random(draw_seed(rng)):
                tools.cxSimulatedBinaryBounded(c1, c2, v.eta_c, self.xl, self.xu)
        out = []
        for child in (c1, c2):
            if rng.random() <= v.prob_m:
                with deap_random(draw_seed(rng)):
                    tools.mutPolynomialBounded(child, v.eta_m, self.xl, self.xu, v.indpb)
            out.append(np.asarray(child, dtype=float))
        return out

    def key(self, item: Any) -> Hashable:
        return self.genome.key(item)

    def item(self, told: Any) -> Any:
        return np.asarray(told, dtype=float)


class PlanVariation:
    """Checkpoints: `Plan`s written by `PlanMaker` with the recipe's crossover/mutation probabilities."""

    def __init__(self, recipe, genome: Genome):
        ops = recipe.operators
        self.genome = genome
        self.maker = PlanMaker(ops)
        self.crossover_prob = ops.crossover_prob if ops.crossovers else 0.0
        self.mutation_prob = ops.mutation_prob if ops.mutation is not None else 0.0

    def initial(self, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.maker.init(rng) for _ in range(n)]

    def vary(self, p1: Any, p2: Any, rng: np.random.Generator) -> list[Any]:
        children: list[Any] = [p1, p2]
        if rng.random() < self.crossover_prob:
            children = list(self.maker.cross(p1, p2, rng))
        return [self.maker.mutate(c, rng) if rng.random() <= self.mutation_prob else c for c in children]

    def key(self, item: Any) -> Hashable:
        return self.genome.key(item)  # content: GenomeRef / Plan equality

    def item(self, told: Any) -> Any:
        return told
