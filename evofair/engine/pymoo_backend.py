"""pymoo algorithms (NSGA-II, NSGA-III, SMS-EMOA) driven by ask/tell.

Local search runs between ask and tell and its result replaces the offspring's genome
(Lamarckian), because the engine tells pymoo the *realised* genome, not the plan it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.problems.static import StaticProblem

from evofair.core.genome import genome_of
from evofair.engine import pymoo_adapter
from evofair.engine.backend import Backend, rng_from_state, rng_state
from evofair.store.jsonstate import from_json, numeric_attributes, set_numeric_attributes, to_json


def build_algorithm(recipe, problem):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.algorithms.moo.sms import SMSEMOA
    from pymoo.util.ref_dirs import get_reference_directions

    alg = recipe.algorithm
    kwargs = pymoo_adapter.variation(genome_of(problem), recipe, problem)
    if alg.name == "nsga2":
        return NSGA2(pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)
    if alg.name == "nsga3":
        ref_dirs = get_reference_directions("das-dennis", len(problem.objectives), n_partitions=alg.n_partitions)
        return NSGA3(ref_dirs=ref_dirs, pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)
    return SMSEMOA(pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)


class PymooBackend(Backend):
    def __init__(self, recipe, problem):
        self.genome = genome_of(problem)
        self.algorithm = build_algorithm(recipe, problem)
        self.n_constraints = len(recipe.constraints)
        self.algorithm.setup(
            pymoo_adapter.ShapeOnly(self.genome, problem, self.n_constraints),
            termination=("n_gen", recipe.algorithm.generations),
            seed=recipe.seed,
            verbose=False,
        )
        self._asked: Population | None = None

    def _as_X(self, items: Sequence[Any]) -> np.ndarray:
        return pymoo_adapter.to_matrix(self.genome, items)

    def ask(self) -> list[Any]:
        self._asked = self.algorithm.ask()
        if self._asked is None:
            return []
        return pymoo_adapter.from_matrix(self.genome, self._asked.get("X"))

    def tell(self, items, F, ids, G=None) -> None:
        pop = (
            self._asked
            if self._asked is not None and len(self._asked) == len(items)
            else Population.new("X", self._as_X(items))
        )
        pop.set("X", self._as_X(items), "eid", np.asarray(ids, dtype=object))
        self._set_F(pop, F, G)
        self.algorithm.tell(infills=pop)
        self._asked = None

    def _set_F(self, pop: Population, F, G=None) -> None:
        """pymoo's documented ask/tell path: a StaticProblem hands over precomputed values
        (F, and G when the recipe has constraints: pymoo then derives CV and feasibility)."""
        values = {"F": np.asarray(F, dtype=float)}
        if self.n_constraints:
            if G is None or np.shape(G) != (len(values["F"]), self.n_constraints):
                raise ValueError(
                    f"tell: expected G of shape ({len(values['F'])}, {self.n_constraints}), "
                    f"got {None if G is None else np.shape(G)}"
                )
            values["G"] = np.asarray(G, dtype=float)
        Evaluator().eval(StaticProblem(self.algorithm.problem, **values), pop)

    def population(self):
        pop = self.algorithm.pop
        return [str(i) for i in pop.get("eid")], np.asarray(pop.get("F"), dtype=float)

    def state(self) -> dict[str, Any]:
        alg = self.algorithm
        return {
            "rng": rng_state(alg.random_state),
            "n_iter": alg.n_iter,
            "pop_data": [to_json({k: v for k, v in ind.data.items() if k != "eid"}) for ind in alg.pop],
            "survival": numeric_attributes(alg.survival),
            **_survival_opt(alg.survival),
        }

    def restore(self, items, F, ids, state, G=None) -> None:
        """Rebuild from the stored population and the JSON state saved with it (no unpickling):
        the population in survival order, each member's ranking data, the survival's own numeric
        state (e.g. NSGA-III's normalisation points) and the generator's exact state."""
        alg = self.algorithm
        alg._initialize()
        pop = Population.new("X", self._as_X(items), "eid", np.asarray(ids, dtype=object))
        self._set_F(pop, F, G)
        for ind, data in zip(pop, state.get("pop_data", [])):
            ind.data.update(from_json(data))
        set_numeric_attributes(alg.survival, state.get("survival", {}))
        _restore_survival_opt(alg.survival, pop, state)
        alg.pop = pop
        alg.is_initialized = True
        alg.n_iter = state["n_iter"]
        alg.random_state = rng_from_state(state["rng"])
        alg._set_optimum()


def _survival_opt(survival) -> dict[str, Any]:
    """NSGA-III's survival keeps `opt` (the first front's members closest to the reference
    directions), a Population that the numeric state cannot hold: saved as their ids."""
    opt = getattr(survival, "opt", None)
    if not isinstance(opt, Population):
        return {}
    return {"survival_opt": [str(e) for e in opt.get("eid")]}


def _restore_survival_opt(survival, pop: Population, state: dict[str, Any]) -> None:
    """`opt` back as the restored members it named; pymoo reads it as soon as the algorithm is
    resumed (`_set_optimum`). A state saved without it (or whose members did not survive) takes the
    population's first front, which is what `opt` is drawn from; `opt` steers no selection, so the
    run continues identically either way."""
    if not hasattr(survival, "opt"):
        return
    ids = set(state.get("survival_opt") or ())
    eids = [str(e) for e in pop.get("eid")]
    chosen = [i for i, e in enumerate(eids) if e in ids]
    if not chosen:
        rank = pop.get("rank")
        chosen = [i for i, r in enumerate(rank) if r == 0] if rank is not None and None not in rank else []
    survival.opt = pop[chosen or list(range(len(pop)))]
