"""Genomes: what an individual *is* — a description the engine and the backends read, never a runner.

A problem states its genome (`Problem.genome`). A genome says

- its **encoding**: `"array"` (a fixed-length numeric vector, stored as the individual's `x` in the
  index) or `"checkpoint"` (tensors by name, stored as safetensors by content hash);
- its **duplicate key**: when two items are the same individual;
- which **operator kinds** apply (`crossover_kind`, `mutation_kind`, `refinable`), and it checks a
  recipe's operators against them (`check_operators`);
- how an item is **stored and read back** (`encode`/`decode` for arrays; the store's content hash
  for checkpoints).

Everything that *runs* lives elsewhere: the pymoo and DEAP adapters beside their backends
(`evofair/engine/pymoo_adapter.py`, `deap_adapter.py`) adapt any genome from this description, and
the engine (`evofair/engine/offspring.py`) turns asked items into stored, evaluated individuals. A
new representation of either encoding is one file — a subclass of `ArrayGenome` or
`WeightsGenome` — set as its problem's `genome` and, to be named by others, announced in the
entry-point group `evofair.genome` (docs/architecture.md, "Adding a genome").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from evofair.errors import UserError

Encoding = Literal["array", "checkpoint"]


class Genome(ABC):
    """The description every genome gives (see the module docstring)."""

    name: ClassVar[str]
    encoding: ClassVar[Encoding]
    crossover_kind: ClassVar[str]
    mutation_kind: ClassVar[str]
    refinable: ClassVar[bool] = False
    max_crossovers: ClassVar[int | None] = None  # how many crossovers a recipe may list

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @abstractmethod
    def key(self, item: Any) -> Hashable:
        """Duplicate identity: two items with the same key are the same individual."""

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
        found += self._check_refiners(ops, source, registry)
        if (
            self.max_crossovers is not None
            and isinstance(ops.crossover, list)
            and len(ops.crossover) > self.max_crossovers
        ):
            raise UserError(f"{source}: operators.crossover: {self.name} problems take one crossover")
        return found

    def _check_refiners(self, ops, source: str, registry) -> list[tuple[str, Any]]:
        found = []
        initial = None if isinstance(ops.refine_initial, bool) else ops.refine_initial  # its own operator
        for key, cfg in (("refine", ops.refine), ("refine_initial", initial)):
            if cfg is None:
                continue
            if not self.refinable:
                raise UserError(f"{source}: operators.{key}: {self.name} problems have no weights to refine")
            spec = registry("refine").get(cfg.name, f"{source}: operators.{key}.name")
            spec.parse_args(cfg.args, f"{source}: operators.{key}.args")
            found.append((f"{source}: operators.{key}.name", spec))
        return found


class ArrayGenome(Genome):
    """A fixed-length numeric vector in a box, stored as the individual's `x`.

    Varied by the components of kinds `vector_crossover`/`vector_mutation` (pymoo operator objects,
    e.g. SBX/PM for reals or a permutation crossover for orderings). A subclass changes how vectors
    are drawn (`sample`), their type (`vtype`), their box (`bounds`) or their duplicate key."""

    encoding = "array"
    crossover_kind = "vector_crossover"
    mutation_kind = "vector_mutation"
    refinable = False
    max_crossovers = 1
    vtype: ClassVar[type] = float

    def n_var(self, problem) -> int:
        return int(problem.n_var)

    def bounds(self, problem) -> tuple[np.ndarray, np.ndarray]:
        n = self.n_var(problem)
        return (
            np.array(np.broadcast_to(np.asarray(problem.xl, dtype=float), (n,))),
            np.array(np.broadcast_to(np.asarray(problem.xu, dtype=float), (n,))),
        )

    @abstractmethod
    def sample(self, problem, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` initial vectors, shape (n, n_var), drawn from `rng` only (the backend checkpoints it)."""

    def key(self, item: Any) -> Hashable:
        return tuple(np.asarray(item).tolist())

    def encode(self, item: Any) -> tuple[float, ...]:
        """The stored form (the index's `x` column holds floats; integers up to 2**53 are exact)."""
        return tuple(map(float, np.asarray(item).ravel()))

    def decode(self, stored: Sequence[float]) -> np.ndarray:
        """The item `encode` stored, with this genome's type."""
        return np.asarray(stored, dtype=self.vtype)


class VectorGenome(ArrayGenome):
    """Real vectors in the problem's box (`n_var`, `xl`, `xu`): ZDT, DTLZ, ..."""

    name = "vector"

    def sample(self, problem, rng, n):
        xl, xu = self.bounds(problem)
        # the same draw and arithmetic as pymoo's FloatRandomSampling, so fronts match pymoo's
        return xl + (xu - xl) * rng.random((n, self.n_var(problem)))

    def key(self, item):
        return tuple(float(v) for v in item)  # exact values


class WeightsGenome(Genome):
    """Checkpoints (name → tensor): merges are the crossover, noise the mutation, gradient local
    search the refinement. Backends write `Plan`s; executors realise them; the store keeps each
    distinct checkpoint once, named by the sha256 of its bytes, which is also its duplicate key."""

    name = "weights"
    encoding = "checkpoint"
    crossover_kind = "crossover"
    mutation_kind = "mutation"
    refinable = True

    def key(self, item: Any) -> Hashable:
        return item  # a GenomeRef (by content hash) or a Plan (by its own key): both hash by content

    def crossover(self, problem, spec, parents, args, *, seed: int, base) -> tuple[list[Any], dict[str, Any]]:
        """Both children of one merge and what to log. The tensors here are the model's own weights,
        so the registered operator applies as is; a genome whose tensors *represent* weights
        (e.g. low-rank factors of adapter deltas) overrides this so merges act on what they represent."""
        return spec.fn(list(parents), args, seed=seed, base=base), {}


VECTOR = VectorGenome()
WEIGHTS = WeightsGenome()


def genome_of(problem) -> Genome:
    """The problem's genome: its `genome` attribute, or a genome announced in `evofair.genome` by name."""
    genome = getattr(problem, "genome", None)
    if isinstance(genome, Genome):
        return genome
    if isinstance(genome, str):
        from evofair.core.plugins import registry  # same layer; plugins imports the registry only

        spec = registry("genome", getattr(problem, "paths", ())).get(genome, f"{type(problem).__name__}.genome")
        made = spec.fn() if isinstance(spec.fn, type) else spec.fn
        if isinstance(made, Genome):
            return made
    raise UserError(
        f"{type(problem).__name__}.genome: expected a Genome (evofair.core.genome) or the name of "
        f"one announced in evofair.genome, got {genome!r}"
    )
