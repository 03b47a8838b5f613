"""NSGA-II from DEAP's tools, driven by ask/tell (`algorithm.backend: deap`).

The generation is DEAP's own NSGA-II recipe (deap/examples/ga/nsga2.py): `selTournamentDCD`
picks mates by dominance then crowding distance, variation makes two children per mating, and
`selNSGA2` keeps the best `pop_size` of parents ∪ offspring. Variation comes from the genome's DEAP adapter (`evofair/engine/deap_adapter.py`), which matches the
pymoo backend so that the same recipe means the same search on either backend. Offspring equal to
a population member or to an earlier offspring are dropped and re-bred (up to 100 rounds, like
pymoo's `eliminate_duplicates`), by the genome's duplicate key.

No `deap.creator`: it makes global classes at run time. `_Fitness` is an ordinary subclass of
`deap.base.Fitness` whose weights (one -1 per objective: everything the engine tells is minimised)
are set per instance, so one class serves any number of objectives.

Randomness: every draw starts from one numpy Generator seeded by `recipe.seed`, checkpointed in
`state()`. DEAP's tools draw from the global `random` module and take no generator, so each call
into DEAP runs inside `deap_random(seed)`, which seeds the global module with a seed drawn from
our generator and restores its previous state afterwards (nothing leaks to other code).
Crowding distances are always recomputed on the survivors themselves (not on parents ∪ offspring),
so that a population rebuilt from the store has exactly the mating state of an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import base, tools
from deap.tools.emo import assignCrowdingDist  # not re-exported by deap.tools

from evofair.core.genome import genome_of
from evofair.engine.backend import Backend, rng_from_state, rng_state
from evofair.engine.deap_adapter import deap_random, deap_variation, draw_seed
from evofair.errors import UserError

MAX_BREED_ROUNDS = 100  # pymoo's Mating(n_max_iterations=100)
# DEAP's O(N log^(M-1) N) sort (Fortin et al. 2013): the same fronts as its O(M N^2) "standard"
# sort (checked on 400 random sets with ties and duplicates), ~20x faster for 200 points
ND_SORT = "log"


class _Fitness(base.Fitness):
    """Minimised fitness of any length, usable by DEAP's selection tools."""

    weights: tuple[float, ...] = ()  # replaced per instance; a class-level value lets base.Fitness.__init__ pass

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


class DeapBackend(Backend):
    def __init__(self, recipe, problem):
        alg = recipe.algorithm
        if alg.name != "nsga2":
            raise UserError(
                f"algorithm.name: the deap backend implements nsga2 only (got {alg.name!r}); "
                "use algorithm.backend: pymoo for nsga3/smsemoa"
            )
        self.problem = problem
        self.pop_size = alg.pop_size
        self.n_offsprings = alg.n_offsprings or alg.pop_size
        self.rng = np.random.default_rng(recipe.seed)
        self.n_iter = 0
        self.members: list[_Member] = []
        self.variation = deap_variation(genome_of(problem), recipe, problem)

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
            with deap_random(draw_seed(self.rng)):
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
