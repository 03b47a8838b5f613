"""The problem contract: what a user writes once to run on any backend and executor.

A problem declares its objectives and genome kind and knows how to evaluate a *batch* of genomes
on a split. Neural problems (genome = `Weights`) also give the engine a way to make initial
weights, an optional shared base for merge methods that need one, and a training loss so that
local-search refiners (SFT, FairPO, HyperDPO) can work on any of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch

from evofair.individual import Weights
from evofair.registry import Args

Split = Literal["val", "test"]
SPLITS: tuple[Split, ...] = ("val", "test")


@dataclass(frozen=True)
class Objective:
    """An objective as measured (`direction` says which way is better)."""

    name: str
    direction: Literal["min", "max"] = "min"

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "min" else -1.0


class Problem(ABC):
    """Base of every problem. Subclasses set `objectives` and implement `evaluate`.

    `setup()` loads data and models; it runs once per process (the serial executor, or each Ray
    actor), so construction stays cheap and a problem can be shipped to workers by its arguments.
    """

    name: ClassVar[str] = "problem"
    Params: ClassVar[type[Args]] = Args
    genome: ClassVar[Literal["vector", "weights"]] = "weights"
    objectives: tuple[Objective, ...] = ()
    #: reference point for hypervolume, in *minimised* objective space (see `minimised`)
    default_hv_ref: tuple[float, ...] | None = None

    def __init__(self, params: Args | None = None, *, data_root: str | None = None):
        self.params = params if params is not None else self.Params()
        self.data_root = data_root
        self._ready = False

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_setup(self) -> "Problem":
        if not self._ready:
            self.setup()
            self._ready = True
        return self

    def setup(self) -> None:
        """Load data, build the base model, fill caches. Called once per process."""

    def check_inputs(self) -> None:
        """Raise `UserError` for missing or unreadable data files, *before* a run writes anything."""

    # -- evaluation ------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, genomes: Sequence[Any], split: Split) -> dict[str, np.ndarray]:
        """Metrics of a batch of genomes: name → array of length len(genomes).

        Must contain every objective (in its natural direction) and may contain more metrics,
        which are stored and reported but not optimised. Evaluating a batch must give the same
        numbers as evaluating each genome alone.
        """

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def minimised(self, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """The (n, n_obj) matrix the engine minimises."""
        cols = [np.asarray(metrics[o.name], dtype=float) * o.sign for o in self.objectives]
        return np.stack(cols, axis=1)

    def describe(self) -> dict[str, Any]:
        """Extra facts the report should show (data sizes, groups, cache hits...)."""
        return {}


class VectorProblem(Problem):
    """A problem over real vectors in a box (ZDT, DTLZ...): pymoo/DEAP operators work on x."""

    genome = "vector"
    n_var: int
    xl: np.ndarray
    xu: np.ndarray


class WeightsProblem(Problem):
    """A problem whose genomes are neural weights (`Weights`: name → tensor)."""

    genome = "weights"

    @abstractmethod
    def init_weights(self, seed: int) -> Weights:
        """A fresh genome for the initial population."""

    def base_weights(self) -> Weights | None:
        """The shared base that task-arithmetic style merges measure deltas from (or None)."""
        return None

    # -- training contract used by local-search refiners -------------------------------------
    def build_model(self, weights: Weights) -> torch.nn.Module:
        """A trainable module whose `state_dict()` (trained part) round-trips `weights`."""
        raise NotImplementedError(f"{self.name} does not support gradient refinement")

    def extract_weights(self, model: torch.nn.Module) -> Weights:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def train_batches(self, seed: int, batch_size: int) -> Iterable[Any]:
        """One epoch of training batches, shuffled by `seed`."""
        raise NotImplementedError(f"{self.name} does not support gradient refinement")

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The problem's own training loss on one batch (e.g. cross-entropy)."""
        raise NotImplementedError(f"{self.name} does not support gradient refinement")

    def groups(self) -> Mapping[str, Any]:
        """Groups the problem declares (protected groups, label groups) for group-aware refiners."""
        return {}
