"""How pymoo holds and varies the items of any genome, read from the genome's description.

- Array genomes are pymoo's own: the population matrix holds the vectors (`vtype` from the
  genome), the initial ones come from the genome's `sample`, the recipe's `vector_crossover` /
  `vector_mutation` components give pymoo operator objects, and pymoo's vectorised duplicate
  elimination (distance 0) applies, which is what equal keys mean for numbers.
- Checkpoint genomes live in an (n, 1) object matrix of `Plan`s and `GenomeRef`s: sampling,
  crossover and mutation write plans (`PlanMaker`) and never touch tensors; duplicates are found
  by content (pymoo's default elimination would do arithmetic on the objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DefaultDuplicateElimination, ElementwiseDuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem as PymooProblem
from pymoo.core.sampling import Sampling

from evofair.core.genome import ArrayGenome, Genome
from evofair.engine.plans import PlanMaker


class ShapeOnly(PymooProblem):
    """Only tells pymoo the dimensions; evaluation happens in evofair's executors.

    With `n_ieq_constr` > 0 (a recipe's `constraints:`), pymoo's algorithms select feasibility
    first on their own: `Survival.do` ranks the feasible members and fills up with the infeasible
    ones by CV, and NSGA-II's/SMS-EMOA's tournaments compare CV before dominance.
    """

    def __init__(self, genome: Genome, problem, n_ieq_constr: int = 0):
        super().__init__(n_obj=len(problem.objectives), n_ieq_constr=n_ieq_constr, **_dimensions(genome, problem))

    def _evaluate(self, x, out, *args, **kwargs):
        raise RuntimeError("evofair evaluates through its executor, not through pymoo")


def _dimensions(genome: Genome, problem) -> dict[str, Any]:
    if isinstance(genome, ArrayGenome):
        xl, xu = genome.bounds(problem)
        return {"n_var": genome.n_var(problem), "xl": xl, "xu": xu, "vtype": genome.vtype}
    return {"n_var": 1, "vtype": object}


def to_matrix(genome: Genome, items: Sequence[Any]) -> np.ndarray:
    """Items as pymoo's X matrix."""
    if isinstance(genome, ArrayGenome):
        return np.asarray(items, dtype=genome.vtype)
    X = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        X[i, 0] = item
    return X


def x_matrix(pop) -> np.ndarray:
    """A population's X matrix, built as `pop.get("X")` builds it but reading the property
    directly: pymoo asks for it several times a generation (duplicate elimination compares the
    offspring with the population on every mating round), and `Individual.get`'s `hasattr`
    lookup per member was a large part of asking."""
    return np.array([ind.X for ind in pop])


def from_matrix(genome: Genome, X: np.ndarray) -> list[Any]:
    """The inverse of `to_matrix`."""
    if isinstance(genome, ArrayGenome):
        return [X[i] for i in range(len(X))]
    return [X[i, 0] for i in range(len(X))]


def variation(genome: Genome, recipe, problem) -> dict[str, Any]:
    """sampling / crossover / mutation / eliminate_duplicates for a pymoo algorithm."""
    if isinstance(genome, ArrayGenome):
        from evofair.engine.vector_ops import vector_operators

        return {
            "sampling": _ArraySampling(genome, problem),
            # pymoo's own elimination (`eliminate_duplicates=True`: distance 0), fed the X matrix directly
            "eliminate_duplicates": DefaultDuplicateElimination(func=x_matrix),
            **vector_operators(recipe),
        }
    return plan_variation(recipe)


class _ArraySampling(Sampling):
    def __init__(self, genome: ArrayGenome, problem):
        super().__init__()
        self.genome, self.evofair_problem = genome, problem

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return np.asarray(self.genome.sample(self.evofair_problem, random_state, n_samples), dtype=self.genome.vtype)


class _PlanSampling(Sampling):
    def __init__(self, maker: PlanMaker):
        super().__init__()
        self.maker = maker

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        X = np.empty((n_samples, 1), dtype=object)
        for i in range(n_samples):
            X[i, 0] = self.maker.init(random_state)
        return X


class _PlanCrossover(Crossover):
    def __init__(self, maker: PlanMaker, prob: float):
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)
        self.maker = maker

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, _ = X.shape
        Y = np.empty((2, n_matings, 1), dtype=object)
        for k in range(n_matings):
            Y[0, k, 0], Y[1, k, 0] = self.maker.cross(X[0, k, 0], X[1, k, 0], random_state)
        return Y


class _PlanMutation(Mutation):
    def __init__(self, maker: PlanMaker, prob: float):
        super().__init__(prob=prob)
        self.maker = maker

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        Y = np.empty_like(X)
        for i in range(len(X)):
            Y[i, 0] = self.maker.mutate(X[i, 0], random_state)
        return Y


class _SameContent(ElementwiseDuplicateElimination):
    """Duplicates by content: equal weights hash (GenomeRef) or equal plan (Plan.key)."""

    def is_equal(self, a, b):
        return a.X[0] == b.X[0]


def plan_variation(recipe) -> dict[str, Any]:
    """pymoo operators that write `Plan`s for checkpoint genomes."""
    maker = PlanMaker(recipe.operators)
    kwargs: dict[str, Any] = {"sampling": _PlanSampling(maker), "eliminate_duplicates": _SameContent()}
    # No crossover in the recipe: pymoo's own copy path (prob 0) hands parents to mutation. Leaving
    # the key out would let pymoo's default SBX do arithmetic on GenomeRefs.
    kwargs["crossover"] = _PlanCrossover(maker, recipe.operators.crossover_prob if recipe.operators.crossovers else 0.0)
    kwargs["mutation"] = (
        _PlanMutation(maker, recipe.operators.mutation_prob)
        if recipe.operators.mutation is not None
        else Mutation(prob=0.0)
    )
    return kwargs
