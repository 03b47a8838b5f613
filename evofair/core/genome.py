"""Genomes: what an individual *is*, and everything the engine must know to evolve one.

A problem states its genome (`Problem.genome`, a `Genome` object); the engine, the recipe
validator and both backends ask the genome instead of branching on a name. A genome says

- which operator kinds apply to it (`crossover_kind`, `mutation_kind`, `refinable`) and checks a
  recipe's operators against them (`check_operators`);
- how the backends hold it: pymoo's population matrix (`pymoo_problem`, `to_pymoo`, `from_pymoo`,
  `pymoo_variation`: sampling, crossover, mutation, duplicate elimination) and DEAP's
  (`deap_variation`: initial items, variation of two parents, the duplicate key);
- how asked items become stored, evaluated individuals (`realise`), and how the told items are
  rebuilt from the store when a run resumes (`items`).

Built in: `VectorGenome` (real vectors in a box, varied by pymoo/DEAP's real-valued operators,
stored as `x`) and `WeightsGenome` (checkpoints: name → tensor, varied by writing `Plan`s that the
executors realise with merges/noise/local search, stored as safetensors by content hash, duplicates
found by that hash). Problem families subclass these for their own layouts (e.g. FaPareto's
LoRA-delta genome, `evofair.problems.fapareto.lora_genome.LoraDeltaGenome`). A genome with a new
representation implements every abstract method below; `tests/evofair/test_genome.py` shows the
contract on both built-ins.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Hashable, Protocol, Sequence

import numpy as np

from evofair.core import failpoints
from evofair.errors import UserError
from evofair.core.individual import Individual, individual_id
from evofair.core.seeding import derive_seed


class DeapVariation(Protocol):
    """How the DEAP backend makes and varies items of one genome."""

    def initial(self, rng: np.random.Generator, n: int) -> list[Any]: ...

    def vary(self, p1: Any, p2: Any, rng: np.random.Generator) -> list[Any]: ...

    def key(self, item: Any) -> Hashable: ...

    def item(self, told: Any) -> Any: ...


class Genome(ABC):
    """The contract of one kind of individual (see the module docstring)."""

    name: ClassVar[str]
    crossover_kind: ClassVar[str]
    mutation_kind: ClassVar[str]
    refinable: ClassVar[bool] = False
    max_crossovers: ClassVar[int | None] = None  # how many crossovers a recipe may list

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- recipes -----------------------------------------------------------------------------
    def check_operators(self, recipe, source: str, registry) -> list[tuple[str, Any]]:
        """Validate the recipe's operators for this genome: [(recipe key, Spec)] of each one named.

        `registry(kind)` looks components up (evofair.core.plugins); errors name the recipe key."""
        ops = recipe.operators
        found = []
        for i, cfg in enumerate(ops.crossovers):
            where = f"{source}: operators.crossover" + (f"[{i}]" if isinstance(ops.crossover, list) else "")
            spec = registry(self.crossover_kind).get(cfg.name, where + ".name")
            spec.parse_args(cfg.args, where + ".args")
            found.append((where + ".name", spec))
        if ops.mutation is not None:
            spec = registry(self.mutation_kind).get(ops.mutation.name, f"{source}: operators.mutation.name")
            spec.parse_args(ops.mutation.args, f"{source}: operators.mutation.args")
            found.append((f"{source}: operators.mutation.name", spec))
        initial = None if isinstance(ops.refine_initial, bool) else ops.refine_initial  # its own operator
        for key, cfg in (("refine", ops.refine), ("refine_initial", initial)):
            if cfg is None:
                continue
            if not self.refinable:
                raise UserError(f"{source}: operators.{key}: {self.name} problems have no weights to refine")
            spec = registry("refine").get(cfg.name, f"{source}: operators.{key}.name")
            spec.parse_args(cfg.args, f"{source}: operators.{key}.args")
            found.append((f"{source}: operators.{key}.name", spec))
        if self.max_crossovers is not None and isinstance(ops.crossover, list) and len(ops.crossover) > self.max_crossovers:
            raise UserError(f"{source}: operators.crossover: {self.name} problems take one crossover")
        return found

    # -- pymoo -------------------------------------------------------------------------------
    @abstractmethod
    def pymoo_problem(self, problem) -> dict[str, Any]:
        """Keyword arguments for the pymoo Problem that only carries the dimensions."""

    @abstractmethod
    def pymoo_variation(self, recipe, problem) -> dict[str, Any]:
        """sampling / crossover / mutation / eliminate_duplicates for a pymoo algorithm."""

    @abstractmethod
    def to_pymoo(self, items: Sequence[Any]) -> np.ndarray:
        """Items as pymoo's X matrix."""

    @abstractmethod
    def from_pymoo(self, X: np.ndarray) -> list[Any]:
        """The inverse of `to_pymoo`."""

    # -- DEAP --------------------------------------------------------------------------------
    @abstractmethod
    def deap_variation(self, recipe, problem) -> DeapVariation:
        """Initial items, variation and duplicate keys for the DEAP backend."""

    # -- the engine --------------------------------------------------------------------------
    @abstractmethod
    def realise(self, engine, generation: int, items: Sequence[Any]):
        """Make, store and evaluate asked items: (individuals, items to tell, metrics by split)."""

    @abstractmethod
    def items(self, individuals: Sequence[Individual]) -> list[Any]:
        """The told items of stored individuals (to rebuild a backend on resume)."""


def metrics_row(metrics: dict[str, dict[str, np.ndarray]], i: int) -> dict[str, dict[str, float]]:
    return {split: {name: float(values[i]) for name, values in per.items()} for split, per in metrics.items()}


class VectorGenome(Genome):
    """Real vectors in the problem's box (`n_var`, `xl`, `xu`): ZDT, DTLZ, ..."""

    name = "vector"
    crossover_kind = "vector_crossover"
    mutation_kind = "vector_mutation"
    refinable = False
    max_crossovers = 1

    def pymoo_problem(self, problem) -> dict[str, Any]:
        return {"n_var": problem.n_var, "xl": problem.xl, "xu": problem.xu}

    def pymoo_variation(self, recipe, problem) -> dict[str, Any]:
        from pymoo.operators.sampling.rnd import FloatRandomSampling

        from evofair.engine.vector_ops import vector_operators

        return {"sampling": FloatRandomSampling(), "eliminate_duplicates": True, **vector_operators(recipe)}

    def to_pymoo(self, items):
        return np.asarray(items, dtype=float)

    def from_pymoo(self, X):
        return [X[i] for i in range(len(X))]

    def deap_variation(self, recipe, problem):
        from evofair.engine.deap_backend import VectorVariation

        return VectorVariation(recipe, problem)

    def realise(self, engine, generation, items):
        X = np.asarray(items, dtype=float)
        metrics = engine.executor.evaluate(X)
        seed = engine.recipe.seed
        individuals = [Individual(id=individual_id(generation, i), generation=generation,
                                  seed=derive_seed(seed, generation, i), x=tuple(map(float, X[i])),
                                  metrics=metrics_row(metrics, i)) for i in range(len(X))]
        return individuals, list(X), metrics

    def items(self, individuals):
        return [np.asarray(ind.x) for ind in individuals]


class WeightsGenome(Genome):
    """Checkpoints (name → tensor): merges are the crossover, noise the mutation, gradient local
    search the refinement; the backends write `Plan`s and the executors realise them."""

    name = "weights"
    crossover_kind = "crossover"
    mutation_kind = "mutation"
    refinable = True

    def crossover(self, problem, spec, parents, args, *, seed: int, base) -> tuple[list[Any], dict[str, Any]]:
        """Both children of one merge and what to log. The tensors here are the model's own weights,
        so the registered operator applies as is; a genome whose tensors *represent* weights
        (e.g. low-rank factors of adapter deltas) overrides this so merges act on what they represent."""
        return spec.fn(list(parents), args, seed=seed, base=base), {}

    def pymoo_problem(self, problem) -> dict[str, Any]:
        return {"n_var": 1, "vtype": object}

    def pymoo_variation(self, recipe, problem) -> dict[str, Any]:
        from evofair.engine.pymoo_backend import plan_variation

        return plan_variation(recipe)

    def to_pymoo(self, items):
        X = np.empty((len(items), 1), dtype=object)
        for i, item in enumerate(items):
            X[i, 0] = item
        return X

    def from_pymoo(self, X):
        return [X[i, 0] for i in range(len(X))]

    def deap_variation(self, recipe, problem):
        from evofair.engine.deap_backend import PlanVariation

        return PlanVariation(recipe)

    def realise(self, engine, generation, items):
        from evofair.engine.plans import as_plan
        from evofair.engine.pipeline import GenomeRef

        plans = [as_plan(it).with_refine(engine.refine_call(generation, i)) for i, it in enumerate(items)]
        if engine.executor.shared_store:  # workers wrote the weights; only their keys came back
            realised = engine.executor.realise_stored(plans)
            failpoints.hit("kill_after_worker_writes")  # files on disk, no row yet: orphans until committed
            hashes = [r.key for r in realised]
            engine.store.require_weights(hashes)
            metrics = engine.executor.evaluate_stored(hashes)
        else:
            realised = engine.executor.realise(plans, engine.store.get_weights)
            genomes = [r.weights for r in realised]
            hashes = [engine.store.put_weights(w) for w in genomes]
            metrics = engine.executor.evaluate(genomes)
        individuals, refs = [], []
        for i, (plan, r, digest) in enumerate(zip(plans, realised, hashes)):
            iid = individual_id(generation, i)
            if "refine_rejected" in r.log:
                engine.store.log_event("refine_rejected", r.log["refine_rejected"], generation=generation,
                                       individual=iid)
            individuals.append(Individual(
                id=iid, generation=generation, parents=tuple(p.id for p in plan.parents),
                operator={**plan.record(), **({"log": r.log} if r.log else {})},
                seed=derive_seed(engine.recipe.seed, generation, i), weights_hash=digest,
                metrics=metrics_row(metrics, i)))
            refs.append(GenomeRef(iid, digest))
        return individuals, refs, metrics

    def items(self, individuals):
        from evofair.engine.pipeline import GenomeRef

        return [GenomeRef(ind.id, ind.weights_hash) for ind in individuals]


VECTOR = VectorGenome()
WEIGHTS = WeightsGenome()
