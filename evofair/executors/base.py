"""The executor contract. Executors run the expensive work of a generation: realising offspring and evaluating genomes.

Both executors cut evaluation into the same fixed-size chunks (a recipe setting, not the number
of workers), so batched numerics, and therefore the front, are identical serial or on Ray.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from evofair.errors import UserError
from evofair.core.individual import Weights
from evofair.engine.pipeline import Plan, Realised
from evofair.core.problem import SPLITS


@dataclass(frozen=True)
class ProblemFactory:
    """Everything needed to rebuild the problem in another process (sent to Ray actors)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    paths: tuple[str, ...] = ()  # folders searched for a `module:attr` problem
    instance: Any = None  # a problem object passed from Python; shipped as is
    base_dir: str | None = None  # the recipe's folder, for problems that resolve relative paths

    def build(self):
        from evofair.core.plugins import registry

        if self.instance is not None:
            return self.instance
        spec = registry("problem", self.paths).get(self.name)
        return with_base_dir(spec.fn(spec.args(**self.params), data_root=self.data_root), self.base_dir)


def with_base_dir(problem, base_dir: str | None):
    """Problems that read files by relative path (those with a `base_dir` attribute) resolve them
    against the recipe's folder."""
    if base_dir is not None and hasattr(problem, "base_dir"):
        problem.base_dir = base_dir
    return problem


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
    return {split: problem.evaluate(genomes, split) for split in SPLITS}


class WorkerError(UserError):
    """A task failed on a worker (an exception, or a worker dead past its retries): `str()` is one line
    for the user, `traceback` the worker's own text for the run's log."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def tensor_bytes(obj: Any) -> int:
    """Bytes of every torch tensor inside a task's arguments or result (dicts, lists, dataclasses):
    the weights that would travel through Ray's object store."""
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

    def __init__(self, eval_chunk: int = 32):
        self.eval_chunk = eval_chunk
        self.wire = WireCounter()
        # set by the engine for one generation: called as (phase, done, total) while work completes
        self.on_progress: Callable[[str, int, int], None] | None = None

    def report(self, phase: str, done: int, total: int) -> None:
        """Tell the engine's progress display that `done` of `total` items of `phase` are finished."""
        if self.on_progress is not None:
            self.on_progress(phase, done, total)

    @staticmethod
    def realise_phase(plans: Sequence[Plan]) -> str:
        """What realising these plans mostly costs: local learning when any is refined, else variation."""
        return "local learning" if any(p.refine is not None for p in plans) else "variation"

    def attach_store(self, root) -> None:
        """Offered the run directory once workers are up; an executor whose workers can see it may
        then take `realise_stored`/`evaluate_stored` (serial: the driver is the worker, nothing to do)."""

    def realise_stored(self, plans: Sequence[Plan]) -> list[Realised]:
        """Make every planned offspring and write its weights to the store on the worker; each
        `Realised` carries only the weights' key. Only where `shared_store` is true."""
        raise NotImplementedError

    def evaluate_stored(self, keys: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """`evaluate` of the stored genomes named by key, read from the store by the workers."""
        raise NotImplementedError

    def connect(self) -> None:
        """Reach and size the compute (a Ray cluster) before the driver writes anything; a request that
        cannot be met is a `UserError` here. Serial: nothing to do."""

    @abstractmethod
    def start(self, factory: ProblemFactory, problem=None) -> None:
        """Prepare workers. `problem` is the driver's already-built instance, if any."""

    @abstractmethod
    def realise(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        """Make every planned offspring; `weights_of(hash)` loads a parent's weights."""

    @abstractmethod
    def evaluate(self, genomes: Sequence[Any]) -> dict[str, dict[str, np.ndarray]]:
        """Metrics of every genome on every split: {split: {metric: array}}."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
