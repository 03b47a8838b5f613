"""NSGA-II from DEAP's tools, driven by ask/tell (`algorithm.backend: deap`).

The generation is DEAP's own NSGA-II recipe (deap/examples/ga/nsga2.py): `selTournamentDCD`
picks mates by dominance then crowding distance, variation makes two children per mating, and
`selNSGA2` keeps the best `pop_size` of parents ∪ offspring. Variation matches the pymoo backend so
that the same recipe means the same search on either backend:

- vector problems use DEAP's `cxSimulatedBinaryBounded` and `mutPolynomialBounded` with the
  parameters of the recipe's `sbx`/`pm` operators, read from the very pymoo objects the pymoo
  backend would use (SBX: mating probability `prob`, per-variable probability 0.5 and a 0.5 child
  swap — fixed in DEAP and the defaults of pymoo's SBX; PM: per-individual probability `prob`
  (0.9 in pymoo's PM), per-variable `prob_var` or min(0.5, 1/n_var));
- weights problems write `Plan`s through `PlanMaker` with the recipe's `crossover_prob` and
  `mutation_prob`, as `pymoo_backend._PlanCrossover/_PlanMutation` do.
Offspring equal to a population member or to an earlier offspring are dropped and re-bred (up to
100 rounds, like pymoo's `eliminate_duplicates`): by exact value for vectors, by content
(`GenomeRef`/`Plan` equality) for weights.

No `deap.creator`: it makes global classes at run time. `_Fitness` is an ordinary subclass of
`deap.base.Fitness` whose weights (one -1 per objective: everything the engine tells is minimised)
are set per instance, so one class serves any number of objectives.

Randomness: every draw starts from one numpy Generator seeded by `recipe.seed`, checkpointed in
`state()`. DEAP's tools draw from the global `random` module and take no generator, so each call
into DEAP runs inside `_deap_random(seed)`, which seeds the global module with a seed drawn from
our generator and restores its previous state afterwards (nothing leaks to other code).
Crowding distances are always recomputed on the survivors themselves (not on parents ∪ offspring),
so that a population rebuilt from the store has exactly the mating state of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
from deap import base, tools
from deap.tools.emo import assignCrowdingDist  # not re-exported by deap.tools

from evofair.engine.backend import Backend, rng_from_state, rng_state
from evofair.engine.plans import PlanMaker
from evofair.errors import UserError

MAX_BREED_ROUNDS = 100  # pymoo's Mating(n_max_iterations=100)
SEED_HIGH = 2**62
# DEAP's O(N log^(M-1) N) sort (Fortin et al. 2013): the same fronts as its O(M N^2) "standard"
# sort (checked on 400 random sets with ties and duplicates), ~20x faster for 200 points
ND_SORT = "log"


@contextlib.contextmanager
def _deap_random(seed: int) -> Iterator[None]:
    """Seed Python's global `random` (which DEAP's tools use) for one block, then restore it."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


class _Fitness(base.Fitness):
    """Minimised fitness of any length, usable by DEAP's selection tools."""

    weights = ()  # replaced per instance; a class-level value lets base.Fitness.__init__ pass

    def __init__(self, values: Sequence[float] = ()):
        self.weights = (-1.0,) * len(values)
        super().__init__(tuple(float(v) for v in values))

    def __deepcopy__(self, memo):  # base.Fitness's copy would lose the per-instance weights
        return _Fitness(self.values)


@dataclass(eq=False)
class _Member:
    """A population member for DEAP's tools: the genome item, its store id and fitness."""

    item: Any  # np.ndarray (vector problems) or GenomeRef (weights problems)
    id: str
    fitness: _Fitness


@dataclass(frozen=True)
class _VectorVariation:
    """SBX + polynomial mutation parameters, taken from the pymoo operators of the recipe."""

    eta_c: float
    prob_c: float
    eta_m: float
    prob_m: float
    indpb: float


def _vector_variation(recipe, problem) -> _VectorVariation:
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
    prob_var = pm.prob_var.value if pm.prob_var is not None else min(0.5, 1.0 / problem.n_var)
    return _VectorVariation(eta_c=float(sbx.eta.value), prob_c=float(sbx.prob.value),
                            eta_m=float(pm.eta.value), prob_m=float(pm.prob.value), indpb=float(prob_var))


def _assign_crowding(members: list[_Member]) -> None:
    """Rank into fronts and set each fitness's `crowding_dist`, without reordering `members`."""
    for front in tools.sortLogNondominated(members, len(members)):
        assignCrowdingDist(front)


def _select_mates(members: list[_Member], k: int) -> list[_Member]:
    """`k` parents by DEAP's selTournamentDCD, whatever the population size.

    selTournamentDCD wants a multiple of four no larger than the population; it is called on the
    largest such multiple as often as needed (a population under four is cycled up to four).
    """
    pool = members if len(members) >= 4 else [members[i % len(members)] for i in range(4)]
    per_call = 4 * (len(pool) // 4)
    chosen: list[_Member] = []
    while len(chosen) < k:
        chosen.extend(tools.selTournamentDCD(pool, per_call))
    return chosen[:k]


def _no_constraints(G) -> None:
    """The recipe validator refuses `constraints:` with this backend (selNSGA2 has no
    constrained domination); a G reaching here is a programming error."""
    if G is not None and np.shape(G)[-1]:
        raise UserError("algorithm.backend: deap does not support constraints; use pymoo")


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(SEED_HIGH))


class VectorVariation:
    """Real vectors: DEAP's bounded SBX and polynomial mutation (`evofair.core.genome.VectorGenome`)."""

    def __init__(self, recipe, problem):
        self.var = _vector_variation(recipe, problem)
        self.pop_size = recipe.algorithm.pop_size
        self.xl = [float(v) for v in problem.xl]  # DEAP wants Python sequences, not arrays
        self.xu = [float(v) for v in problem.xu]

    def initial(self, rng: np.random.Generator, n: int) -> list[Any]:
        xl, xu = np.asarray(self.xl), np.asarray(self.xu)
        return list(rng.random((n, len(xl))) * (xu - xl) + xl)

    def vary(self, p1: Any, p2: Any, rng: np.random.Generator) -> list[np.ndarray]:
        v = self.var
        c1, c2 = [float(x) for x in p1], [float(x) for x in p2]
        if rng.random() < v.prob_c:
            with _deap_random(_seed(rng)):
                tools.cxSimulatedBinaryBounded(c1, c2, v.eta_c, self.xl, self.xu)
        out = []
        for child in (c1, c2):
            if rng.random() <= v.prob_m:
                with _deap_random(_seed(rng)):
                    tools.mutPolynomialBounded(child, v.eta_m, self.xl, self.xu, v.indpb)
            out.append(np.asarray(child, dtype=float))
        return out

    def key(self, item: Any) -> Any:
        return tuple(float(v) for v in item)  # exact values

    def item(self, told: Any) -> Any:
        return np.asarray(told, dtype=float)


class PlanVariation:
    """Checkpoints: `Plan`s written by `PlanMaker` with the recipe's crossover/mutation probabilities,
    as `pymoo_backend._PlanCrossover/_PlanMutation` do (`evofair.core.genome.WeightsGenome`)."""

    def __init__(self, recipe):
        ops = recipe.operators
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

    def key(self, item: Any) -> Any:
        return item  # content: GenomeRef / Plan equality

    def item(self, told: Any) -> Any:
        return told


class DeapBackend(Backend):
    def __init__(self, recipe, problem):
        alg = recipe.algorithm
        if alg.name != "nsga2":
            raise UserError(f"algorithm.name: the deap backend implements nsga2 only (got {alg.name!r}); "
                            "use algorithm.backend: pymoo for nsga3/smsemoa")
        self.problem = problem
        self.pop_size = alg.pop_size
        self.n_offsprings = alg.n_offsprings or alg.pop_size
        self.rng = np.random.default_rng(recipe.seed)
        self.n_iter = 0
        self.members: list[_Member] = []
        self.variation = problem.genome.deap_variation(recipe, problem)

    # -- items ------------------------------------------------------------------------------
    def _key(self, item: Any) -> Any:
        """Duplicate identity, as the genome defines it."""
        return self.variation.key(item)

    def _initial(self) -> list[Any]:
        return self.variation.initial(self.rng, self.pop_size)

    def _breed(self) -> list[Any]:
        seen = {self._key(m.item) for m in self.members}
        offspring: list[Any] = []
        for _ in range(MAX_BREED_ROUNDS):
            need = self.n_offsprings - len(offspring)
            if need <= 0:
                break
            with _deap_random(_seed(self.rng)):
                mates = _select_mates(self.members, 2 * math.ceil(need / 2))
            for p1, p2 in zip(mates[::2], mates[1::2]):
                for child in self.variation.vary(p1.item, p2.item, self.rng):
                    key = self._key(child)
                    if key not in seen:
                        seen.add(key)
                        offspring.append(child)
        return offspring[: self.n_offsprings]

    # -- the Backend contract ---------------------------------------------------------------
    def ask(self) -> list[Any]:
        if not self.members:
            items, seen = [], set()
            for item in self._initial():
                if self._key(item) not in seen:
                    seen.add(self._key(item))
                    items.append(item)
            return items
        return self._breed()

    def _members(self, items, F, ids) -> list[_Member]:
        F = np.asarray(F, dtype=float)
        if len(items) != len(F) or len(items) != len(ids):
            raise ValueError(f"tell: {len(items)} items, {len(F)} objective rows, {len(ids)} ids")
        return [_Member(self.variation.item(it), str(i), _Fitness(f)) for it, f, i in zip(items, F, ids)]

    def tell(self, items, F, ids, G=None) -> None:
        _no_constraints(G)
        union = self.members + self._members(items, F, ids)
        survivors = tools.selNSGA2(union, min(self.pop_size, len(union)), nd=ND_SORT)
        _assign_crowding(survivors)
        self.members = survivors
        self.n_iter += 1

    def population(self) -> tuple[list[str], np.ndarray]:
        return [m.id for m in self.members], np.array([m.fitness.values for m in self.members], dtype=float)

    def state(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "n_iter": self.n_iter}

    def restore(self, items, F, ids, state, G=None) -> None:
        """The stored population, in its stored order, with crowding recomputed as `tell` does."""
        _no_constraints(G)
        self.members = self._members(items, F, ids)
        _assign_crowding(self.members)
        self.rng = rng_from_state(state["rng"])
        self.n_iter = int(state["n_iter"])
