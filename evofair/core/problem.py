"""The problem contract: what a user writes once to run on any backend and executor.

A problem declares its objectives and its genome (an `evofair.core.genome.Genome`: what an individual
is and how the engine varies, stores and recognises it) and knows how to evaluate a *batch* of genomes
on a split. Neural problems (genome = `Weights`) also give the engine a way to make initial
weights, an optional shared base for merge methods that need one, and a training loss so that
local-search refiners (SFT, FairPO, HyperDPO) can work on any of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from evofair.core.genome import VECTOR, WEIGHTS, Genome
from evofair.core.individual import Weights
from evofair.core.registry import Args

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
    genome: ClassVar[Genome] = WEIGHTS
    objectives: tuple[Objective, ...] = ()
    #: reference point for hypervolume, in *minimised* objective space (see `minimised`)
    default_hv_ref: tuple[float, ...] | None = None
    #: True where `evaluate` gives every split the same values (a deterministic test function):
    #: executors then evaluate once and give each split those values.
    splits_coincide: ClassVar[bool] = False
    #: True where a genome's metrics depend on that genome alone, computed the same in any batch
    #: (row-wise numerics): an executor that runs in one process may then evaluate a generation as
    #: one batch instead of `eval_chunk`-sized ones (the chunks exist so batched numerics, and the
    #: front, do not depend on the executor; row-wise ones do not depend on the batch at all).
    rowwise: ClassVar[bool] = False

    def __init__(self, params: Args | None = None, *, data_root: str | None = None):
        self.params = params if params is not None else self.Params()
        self.data_root = data_root
        self._ready = False

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_setup(self) -> Problem:
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

    @property
    def metric_names(self) -> Sequence[str] | None:
        """Every metric `evaluate` returns, which a recipe's `constraints:` may name.

        Default: the objectives. Override to list the extra metrics too; return None when the
        names are known only after `setup()` (they are then checked after setup, still before the
        run directory is written).
        """
        return self.objective_names

    def minimised(self, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """The (n, n_obj) matrix the engine minimises."""
        cols = [np.asarray(metrics[o.name], dtype=float) * o.sign for o in self.objectives]
        return np.stack(cols, axis=1)

    def describe(self) -> dict[str, Any]:
        """Extra facts the report should show (data sizes, groups, cache hits...)."""
        return {}


class VectorProblem(Problem):
    """A problem over real vectors in a box (ZDT, DTLZ...): pymoo/DEAP operators work on x."""

    genome = VECTOR
    n_var: int
    xl: np.ndarray
    xu: np.ndarray


class WeightsProblem(Problem):
    """A problem whose genomes are neural weights (`Weights`: name → tensor)."""

    genome = WEIGHTS

    @abstractmethod
    def init_weights(self, seed: int) -> Weights:
        """A fresh genome for the initial population."""

    def extract_weights(self, model: torch.nn.Module) -> Weights:
        """The genome a trained `build_model(...)` module holds (see `Trainable`)."""
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- capabilities: what optional parts of a problem a component or the core may use -----------------
# A refiner declares the ones it needs (`component("refine", ..., requires=(Trainable,))`); the recipe
# validator checks them on the problem class, so a mismatch is a one-line error before anything runs.


@runtime_checkable
class Trainable(Protocol):
    """Gradient local search (SFT, FairPO, HyperDPO) trains a module built from a genome."""

    def build_model(self, weights: Weights) -> torch.nn.Module:
        """A trainable module whose trained part `extract_weights` turns back into a genome."""

    def extract_weights(self, model: torch.nn.Module) -> Weights: ...

    def train_batches(self, seed: int, batch_size: int) -> Iterable[Any]:
        """One epoch of training batches, shuffled by `seed`."""

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The problem's own training loss on one batch (e.g. cross-entropy)."""


@runtime_checkable
class HasBase(Protocol):
    """Task-arithmetic merges (task_arithmetic, TIES, DARE) measure each parent's delta from a base."""

    def base_weights(self) -> Weights:
        """The shared base (e.g. the pretrained or initial model) that deltas are measured from."""


@runtime_checkable
class Grouped(Protocol):
    """Group-aware refiners (FairPO) read the groups a problem declares (labels or protected groups)."""

    def groups(self) -> Mapping[str, Any]: ...


@runtime_checkable
class Exportable(Protocol):
    """`evofair export` also writes a model users can load without evofair."""

    def export_model(self, weights: Weights, path: Path) -> dict[str, Any]: ...


@runtime_checkable
class RebuildsWeights(Protocol):
    """A problem whose array genome stands for weights (a merge recipe over fixed checkpoints): the
    store keeps the vector, and export rebuilds the weights it means, deterministically."""

    def weights_of(self, x: Sequence[float]) -> Weights: ...


@runtime_checkable
class ModelCards(Protocol):
    """The explorer's model card adds per-group numbers the problem computes."""

    def model_card(self, individual, store) -> dict[str, Any]:
        """{title: rows (a list of flat dicts) or markdown} for one stored individual."""


@runtime_checkable
class AfterRun(Protocol):
    """Work after the evolution in the same run (e.g. baselines at the same budget) → phase timings."""

    def after_run(self, store, out: Path, recipe) -> dict[str, float] | None: ...


@runtime_checkable
class ReportSections(Protocol):
    """Extra sections for report.md (baselines, per-group tables)."""

    def report_sections(self, store, out: Path, recipe) -> dict[str, Any]: ...


@runtime_checkable
class PerExampleOutputs(Protocol):
    """Bootstrap intervals (`evofair.analysis.uncertainty`) recompute every metric on resampled examples.

    Problems without it still run; their report says it has no intervals."""

    def example_outputs(self, genomes: Sequence[Any], split: Split) -> dict[str, Any]:
        """Per-example outputs of a batch of genomes on `split` (an empty batch: the labels only):
        `y_true` (n,), `y_pred` (n_genomes, n) predicted labels, `groups` (n,) the protected group
        of each example (the resamples are stratified by group × class), `classes` and `pos_label`
        as `evofair.analysis.metrics.fairness_metrics` takes them, and optionally `groups_by`
        {attribute: (n,) labels} for per-attribute metrics named `<metric>_<attribute>`."""


@runtime_checkable
class FrontSections(Protocol):
    """report.md sections about a front of this problem's models that another problem built (a
    `merge` of its checkpoints): the problem that owns the data knows what its models should be
    compared with (fair_classification: the constant predictor and a plain LogisticRegression)."""

    def front_sections(
        self, front_metrics: Sequence[Mapping[str, Mapping[str, float]]], test_predictions: Any, ref: Sequence[float]
    ) -> dict[str, str]:
        """{title: markdown} from the front models' metrics per split and their predicted labels
        on test (n_models, n_test)."""


def missing_capabilities(problem: Any, required: Iterable[type]) -> list[str]:
    """The methods of the `required` protocols that `problem` (a class or an instance) lacks."""
    missing = []
    for proto in required:
        for name in _protocol_methods(proto):
            if not callable(getattr(problem, name, None)):
                missing.append(f"{proto.__name__}.{name}")
    return missing


def _protocol_methods(proto: type) -> list[str]:
    return [n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")]
