"""The executor contract. Executors run the expensive work of a generation: realising offspring and evaluating genomes.

An executor is a component of kind `executor` (entry-point group `evofair.executor`): an `Executor`
subclass marked `@component("executor", NAME, ArgsModel)`, its `ArgsModel` an `ExecutorArgs`. A
recipe's `executor:` section is `name` plus that model's fields, written flat, and the class is
built with those fields as keyword arguments (`Executor.from_args`).

Every executor cuts evaluation into the same fixed-size chunks (`eval_chunk`, a recipe setting, not
the number of workers), so batched numerics, and therefore the front, are identical whichever
executor runs a recipe. A problem whose numerics are row-wise (`Problem.rowwise`: a genome's
metrics do not depend on its batch) may be evaluated in any batches; the serial executor then
takes a generation at once.

Weights: the engine asks `realise(plans, store)` for offspring already in the run's store and
`evaluate_stored(keys, store)` for their metrics. Whether weights travel through the driver or
the workers read and write the store themselves is the executor's own business; the default here
is "through the driver", built on `realise_weights` and `evaluate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.problem import SPLITS
from evofair.core.registry import Args
from evofair.engine.pipeline import Plan, Realised, refine_key, stack_groups
from evofair.errors import UserError

if TYPE_CHECKING:
    from evofair.lifecycle.rebuild import ProblemFactory
    from evofair.store.run_store import RunStore


class ExecutorArgs(Args):
    """Fields every executor takes; an executor's own args model derives from this."""

    eval_chunk: int = Field(
        32,
        ge=1,
        description="genomes per evaluation batch (same for every executor, so "
        "the front does not depend on which one runs)",
    )


@dataclass(frozen=True)
class Made:
    """One realised offspring, its weights already in the run's store."""

    key: str  # the weights' sha256 in the store
    log: dict[str, Any]


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def merge_metrics(parts: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Concatenate per-chunk {split: {metric: array}} results in order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        names = parts[0][split].keys() if parts else ()
        out[split] = {n: np.concatenate([np.asarray(p[split][n], dtype=float) for p in parts]) for n in names}
    return out


def evaluate_all_splits(problem, genomes: Sequence[Any]) -> dict[str, dict[str, np.ndarray]]:
    """{split: {metric: values}}; once for all splits where the problem's splits coincide."""
    if getattr(problem, "splits_coincide", False):
        values = problem.evaluate(genomes, SPLITS[0])
        return {split: dict(values) for split in SPLITS}
    return {split: problem.evaluate(genomes, split) for split in SPLITS}


class WorkerError(UserError):
    """A task failed on a worker (an exception, or a worker dead past its retries): `str()` is one line
    for the user, `traceback` the worker's own text for the run's log."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def tensor_bytes(obj: Any) -> int:
    """Bytes of every torch tensor inside a task's arguments or result (dicts, lists, dataclasses):
    the weights that would travel between driver and workers."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(tensor_bytes(getattr(obj, f)) for f in obj.__dataclass_fields__)
    return 0


@dataclass
class WireCounter:
    """What the driver sent to and received from workers: weight bytes (tensors) and weight keys."""

    weight_bytes_out: int = 0  # parents' and genomes' tensors sent to workers
    weight_bytes_in: int = 0  # offspring tensors returned to the driver
    keys: int = 0  # sha256 keys sent or received instead (64 bytes each)
    offspring: int = 0

    def record(self) -> dict[str, int]:
        return dict(self.__dict__)


class Executor(ABC):
    # Whether workers read and write weights in the run's store themselves (`attach_store` decides).
    shared_store = False
    # Whether the problem is evaluated in the driver's own process (the driver's resolved device is then
    # the run's); executors with workers elsewhere leave it False.
    in_driver = False

    def __init__(self, eval_chunk: int = 32):
        self.eval_chunk = eval_chunk
        self.wire = WireCounter()
        # set by the engine for one generation: called as (phase, done, total) while work completes
        self.on_progress: Callable[[str, int, int], None] | None = None
        self._made: dict[str, Weights] = {}  # the last `realise`'s offspring, by key, for `evaluate_stored`
        self._stacks: dict[str, int] = {}  # `refine_stacks` answers, by `pipeline.refine_key`, for this run

    @classmethod
    def from_args(cls, args: ExecutorArgs) -> Executor:
        """The executor a recipe's validated `executor:` fields describe."""
        return cls(**dict(args))

    def report(self, phase: str, done: int, total: int) -> None:
        """Tell the engine's progress display that `done` of `total` items of `phase` are finished."""
        if self.on_progress is not None:
            self.on_progress(phase, done, total)

    @staticmethod
    def realise_phase(plans: Sequence[Plan]) -> str:
        """What realising these plans mostly costs: local learning when any is refined, else variation."""
        return "local learning" if any(p.refine is not None for p in plans) else "variation"

    def plan_groups(self, plans: Sequence[Plan]) -> list[list[int]]:
        """The plans (by index) a worker realises together, `pipeline.stack_groups`: one task each.
        Singletons unless the workers' problem trains several offspring of a refine at once; the
        stack sizes are asked of the workers (`refine_stacks`) once per distinct refine."""
        ask: dict[str, Plan] = {}
        for p in plans:
            if p.refine is not None and refine_key(p.refine) not in self._stacks:
                ask.setdefault(refine_key(p.refine), p)
        if ask:
            self._stacks.update(self.refine_stacks(list(ask.values())))
        return stack_groups(plans, self._stacks)

    def refine_stacks(self, plans: Sequence[Plan]) -> dict[str, int]:
        """`pipeline.refine_stacks` of these plans, as the workers' problem answers it. By default 1
        for each (no stacking); an executor whose workers run `realise_all` on a group asks them."""
        return {refine_key(p.refine): 1 for p in plans if p.refine is not None}

    @staticmethod
    def ungroup(groups: Sequence[Sequence[int]], results: Sequence[Sequence[Realised]]) -> list[Realised]:
        """Every group's results back in plan order."""
        out: dict[int, Realised] = {}
        for idx, made in zip(groups, results, strict=True):
            out.update(zip(idx, made, strict=True))
        return [out[i] for i in range(len(out))]

    def connect(self) -> None:  # noqa: B027 - an optional hook: nothing to do by default
        """Reach and size the compute (a Ray cluster) before the driver writes anything; a request that
        cannot be met is a `UserError` here. Nothing to do where the workers are local."""

    @abstractmethod
    def start(self, factory: ProblemFactory, problem=None) -> None:
        """Prepare workers. `problem` is the driver's already-built and set-up instance: an executor
        that evaluates in the driver uses it, one with workers elsewhere builds from `factory`."""

    def attach_store(self, root) -> None:  # noqa: B027 - an optional hook
        """Offered the run directory once workers are up; an executor whose workers can see it may then
        read and write weights there itself in `realise`/`evaluate_stored`."""

    @abstractmethod
    def evaluate(self, genomes: Sequence[Any]) -> dict[str, dict[str, np.ndarray]]:
        """Metrics of every in-memory genome (vectors, or weights dicts) on every split: {split: {metric: array}}."""

    def realise_weights(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        """Make every planned offspring and return its weights; `weights_of(key)` loads a parent's.
        What the default `realise` builds on; needed only for problems whose genomes are weights."""
        raise NotImplementedError(f"{type(self).__name__} implements neither realise_weights nor realise")

    def realise(self, plans: Sequence[Plan], store: RunStore) -> list[Made]:
        """Make every planned offspring and put its weights into `store`. By default through the driver:
        the weights `realise_weights` returns are stored here, and kept for `evaluate_stored`."""
        made, self._made = [], {}
        for r in self.realise_weights(plans, store.get_weights):
            assert r.weights is not None, "realise_weights returns the offspring's weights"
            key = store.put_weights(r.weights)
            self._made[key] = r.weights
            made.append(Made(key, r.log))
        return made

    def evaluate_stored(self, keys: Sequence[str], store: RunStore) -> dict[str, dict[str, np.ndarray]]:
        """`evaluate` of the stored genomes named by key. By default the weights the last `realise`
        made, as they were made (no disk read, the same tensors as before they were stored); any
        other key is read from `store`."""
        return self.evaluate([self._made[k] if k in self._made else store.get_weights(k) for k in keys])

    def close(self) -> None:
        self._made, self._stacks = {}, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
