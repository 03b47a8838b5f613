"""A reusable base for fair classification over fixed features: the genome is an MLP head.

A concrete problem (BiasBios, a tabular set...) only loads its splits (`load_splits`): features,
labels, protected groups. This base gives it everything else the engine, the refiners and the
report need:

- `head` genomes: the tensors of a small MLP (`layers.{k}.weight/bias`, ReLU between layers);
- evaluation of a whole population as ONE batched computation: the heads' weights are stacked
  into (n_models, out, in) tensors and applied with `einsum`/`baddbmm`, then every metric of
  `evofair.analysis.metrics` comes from one count tensor. This equals evaluating the heads one by one
  (tested), and is what makes hundreds of evaluations per second possible on 2 cores;
- the training contract for local search (`build_model`, `train_batches`, `loss` = cross-entropy);
- a shared base head θ₀ (`base_weights`) that the initial population is drawn around, so that
  task-arithmetic merges (TIES, DARE, task arithmetic) act on real deltas from a common origin,
  as fine-tuned checkpoints of one pretrained model do. A shared origin also keeps hidden units
  aligned between individuals, which is what makes weight averaging of MLPs meaningful.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from evofair.analysis.metrics import METRIC_NAMES, fairness_metrics
from evofair.core.individual import Weights
from evofair.core.problem import Objective, WeightsProblem
from evofair.problems.common.devices import DeviceArgs, check_precision, describe_device, resolve_device

EVAL_DTYPE = torch.float64  # evaluation in float64: no argmax flips between batched and single paths


class HeadArgs(DeviceArgs):
    """Parameters of the MLP-head genome shared by every feature classification problem."""

    hidden: list[int] = Field(default_factory=lambda: [64], description="hidden layer widths ([] = linear)")
    base_seed: int = Field(0, ge=0, description="seed of the shared base head θ₀")
    init_noise: float = Field(1.0, ge=0, description="initial heads = θ₀ + init_noise·std(tensor)·N(0,1)")
    objectives: list[Literal["error", "dtpr", "dtpr_rms", "eod", "dpd"]] = Field(
        default_factory=lambda: ["error", "dtpr"], min_length=2, description="metrics minimised"
    )
    local_loss: Literal["ce", "ce+tpr_gap"] = Field(
        "ce",
        description="training loss of local search: cross-entropy, or CE + w·(soft TPR gap) where "
        "each individual carries and evolves its own w (genome key `fair_weight`)",
    )
    fair_weight_init: tuple[float, float] = Field(
        (0.1, 5.0), description="initial w drawn log-uniformly from this range (local_loss ce+tpr_gap)"
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch threads for head training/evaluation (tiny ops: 1 thread is as fast "
        "as 2 on idle cores and 4.5x faster next to one busy process, "
        "benchmarks/fapareto_threads.py); None: leave as is",
    )


@dataclass(frozen=True)
class SplitData:
    """One split: features (n, d) float32, integer labels 0..C-1, group labels (strings)."""

    X: torch.Tensor
    y: np.ndarray
    g: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


class MLPHead(torch.nn.Module):
    """Linear layers with ReLU between them; its state_dict *is* the genome (with, when the
    individual carries one, its fairness weight as a buffer that training leaves unchanged)."""

    def __init__(self, sizes: Sequence[int], fair_weight: torch.Tensor | None = None):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if fair_weight is not None:
            self.register_buffer("fair_weight", fair_weight.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def head_init(sizes: Sequence[int], seed: int) -> Weights:
    """torch's default Linear initialisation, drawn from a generator seeded by `seed`."""
    gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
    out = {}
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / np.sqrt(a)  # kaiming_uniform(a=√5) and the bias rule both reduce to 1/√fan_in
        out[f"layers.{k}.weight"] = (torch.rand((b, a), generator=gen) * 2 - 1) * bound
        out[f"layers.{k}.bias"] = (torch.rand((b,), generator=gen) * 2 - 1) * bound
    return out


def stack_heads(genomes: Sequence[Weights], n_layers: int, dtype=EVAL_DTYPE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(W (n, out, in), b (n, out)) per layer] for a population of heads."""
    return [
        (
            torch.stack([g[f"layers.{k}.weight"] for g in genomes]).to(dtype),
            torch.stack([g[f"layers.{k}.bias"] for g in genomes]).to(dtype),
        )
        for k in range(n_layers)
    ]


def population_logits(stacked: Sequence[tuple[torch.Tensor, torch.Tensor]], X: torch.Tensor) -> torch.Tensor:
    """Logits (n_models, n_samples, n_classes) of every head on shared inputs X (n_samples, d)."""
    W0, b0 = stacked[0]
    h = torch.einsum("nd,mod->mno", X.to(W0.dtype), W0) + b0[:, None, :]
    for W, b in stacked[1:]:
        h = torch.baddbmm(b[:, None, :], torch.relu(h), W.transpose(1, 2))
    return h


class FeatureClassificationProblem(WeightsProblem):
    """Base class: subclasses implement `load_splits()` and set `class_names`, `name`, `Params`."""

    Params = HeadArgs
    class_names: tuple[str, ...] = ()
    pos_label: int | None = None  # the class fairlearn's EOD/DPD treat as positive (None: the largest)

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.objectives = tuple(Objective(n) for n in self.params.objectives)
        self.splits: dict[str, SplitData] = {}
        self._base: Weights | None = None
        self.device = torch.device("cpu")
        self._resident_X: dict[str, torch.Tensor] = {}  # features on a non-CPU device, per split

    # -- data --------------------------------------------------------------------------------
    def load_splits(self) -> dict[str, SplitData]:
        """{"train", "val", "test"} → SplitData. Called once per process by `setup`."""
        raise NotImplementedError

    def setup(self) -> None:
        self.device = resolve_device(self.params.device)  # a CUDA device that is not there fails first
        check_precision(self.device, self.params.precision)
        self.splits = self.load_splits()
        missing = {"train", "val", "test"} - set(self.splits)
        if missing:
            raise ValueError(f"{self.name}: load_splits() lacks {sorted(missing)}")
        if self.params.torch_threads is not None:
            torch.set_num_threads(self.params.torch_threads)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def metric_names(self) -> Sequence[str]:
        """`evaluate` returns every fairness metric, so recipes may constrain any of them."""
        return METRIC_NAMES

    @property
    def sizes(self) -> list[int]:
        return [int(self.splits["train"].X.shape[1]), *self.params.hidden, self.n_classes]

    # -- genomes -----------------------------------------------------------------------------
    @property
    def carries_fair_weight(self) -> bool:
        return self.params.local_loss == "ce+tpr_gap"

    def base_weights(self) -> Weights:
        return self.head_base_weights()

    def head_base_weights(self) -> Weights:
        """θ₀, the shared base head (also for problems whose genome wraps a head)."""
        if self._base is None:
            self._base = head_init(self.sizes, self.params.base_seed)
            if self.carries_fair_weight:
                lo, hi = self.params.fair_weight_init
                self._base["fair_weight"] = torch.tensor([float(np.sqrt(lo * hi))])  # geometric middle
        return self._base

    def init_weights(self, seed: int) -> Weights:
        return self.head_init_weights(seed)

    def head_init_weights(self, seed: int) -> Weights:
        """θ₀ + noise relative to each tensor's std (biases: relative to the weight's std); when
        individuals carry a fairness weight, it is drawn log-uniformly from `fair_weight_init`."""
        base = self.head_base_weights()
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        out = {}
        for name in sorted(base):
            if name == "fair_weight":
                continue
            t = base[name]
            ref = base[name.replace(".bias", ".weight")]
            out[name] = t + self.params.init_noise * float(ref.std()) * torch.randn(t.shape, generator=gen)
        if self.carries_fair_weight:
            lo, hi = np.log(self.params.fair_weight_init)
            u = float(torch.rand((), generator=gen, dtype=torch.float64))
            out["fair_weight"] = torch.tensor([float(np.exp(lo + u * (hi - lo)))])
        return out

    def compute_info(self) -> dict[str, str]:
        """Where this process computes (recorded in the run's store, report.md and model cards)."""
        return describe_device(self.device, self.params.precision)

    # -- evaluation --------------------------------------------------------------------------
    def population_logits(self, genomes: Sequence[Weights], split: str) -> torch.Tensor:
        if self.device.type == "cpu":  # the CPU path exactly as before (fronts byte-identical)
            return population_logits(stack_heads(genomes, len(self.sizes) - 1), self.splits[split].X)
        return self._device_logits(genomes, split)

    def _device_logits(self, genomes: Sequence[Weights], split: str) -> torch.Tensor:
        """The same float64 computation with the features resident on the device (copied once)."""
        if split not in self._resident_X:
            self._resident_X[split] = self.splits[split].X.to(self.device)
        stacked = [(W.to(self.device), b.to(self.device)) for W, b in stack_heads(genomes, len(self.sizes) - 1)]
        return population_logits(stacked, self._resident_X[split]).cpu()

    def predictions(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        return self.head_predictions(genomes, split)

    def head_predictions(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        """Predicted class (n_models, n_samples) of every head genome, in one batched computation."""
        if not genomes:
            return np.zeros((0, len(self.splits[split])), dtype=np.int64)
        with torch.no_grad():
            return self.population_logits(genomes, split).argmax(-1).numpy()

    def predictions_of_head(self, weights: Weights, split: str) -> np.ndarray:
        """Predictions of one head genome on the frozen features (also in problems whose own
        genome is bigger, e.g. BiasBios `lora`, whose baselines are heads)."""
        return self.head_predictions([weights], split)[0]

    def scores(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        """Class probabilities (n_models, n_samples, n_classes), float64."""
        with torch.no_grad():
            return torch.softmax(self.population_logits(genomes, split), -1).numpy()

    def metrics_of_predictions(self, P: np.ndarray, split: str) -> dict[str, np.ndarray]:
        data = self.splits[split]
        return fairness_metrics(P, data.y, data.g, classes=np.arange(self.n_classes), pos_label=self.pos_label)

    def evaluate(self, genomes: Sequence[Weights], split) -> dict[str, np.ndarray]:
        return self.metrics_of_predictions(self.predictions(genomes, split), split)

    # -- training contract (SFT and other refiners) ------------------------------------------
    def build_model(self, weights: Weights) -> torch.nn.Module:
        return self.head_model(weights)

    def head_model(self, weights: Weights) -> torch.nn.Module:
        """The trainable MLP head of a head genome (the head part of bigger genomes too)."""
        model = MLPHead(self.sizes, weights.get("fair_weight"))
        model.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()})
        return model

    @property
    def group_values(self) -> list[str]:
        return sorted(set(self.splits["train"].g.tolist()))

    def train_batches(self, seed: int, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of (features, labels, group codes), shuffled by a generator seeded with `seed`."""
        data = self.splits["train"]
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        order = torch.randperm(len(data), generator=gen)
        y = torch.as_tensor(data.y)
        g = torch.as_tensor(np.searchsorted(np.asarray(self.group_values), data.g))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield data.X[idx], y[idx], g[idx]

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy; with `local_loss: ce+tpr_gap`, plus the individual's own weight times the
        differentiable TPR gap (the same surrogate as baseline (b))."""
        X, y, g = batch
        logits = model(X)
        ce = torch.nn.functional.cross_entropy(logits, y)
        w = getattr(model, "fair_weight", None)
        if w is None:
            return ce
        from evofair.problems.common.losses import soft_tpr_gap

        gap = soft_tpr_gap(torch.softmax(logits, -1)[None], y[None], g[None], len(self.group_values))[0]
        return ce + torch.relu(w[0]) * gap

    def groups(self) -> Mapping[str, Any]:
        data = self.splits["train"]
        return {"protected": data.g, "values": sorted(set(data.g.tolist()))}

    # -- per-example outputs: bootstrap intervals (evofair.core.problem.PerExampleOutputs) ---------
    def example_outputs(self, genomes: Sequence[Weights], split: str) -> dict[str, Any]:
        """Predicted labels of each genome on every example of `split`, with the labels and groups.
        A genome made of head tensors only is a baseline head (also in problems whose own genome is
        bigger, e.g. BiasBios `lora`) and is applied to the frozen features."""
        data = self.splits[split]
        P = np.zeros((len(genomes), len(data)), dtype=np.int64)
        heads = [k for k, g in enumerate(genomes) if all(n.startswith("layers.") or n == "fair_weight" for n in g)]
        own = [k for k in range(len(genomes)) if k not in set(heads)]
        if heads:
            P[heads] = self.head_predictions([genomes[k] for k in heads], split)
        if own:
            P[own] = self.predictions([genomes[k] for k in own], split)
        return {
            "y_true": data.y,
            "y_pred": P,
            "groups": data.g,
            "classes": np.arange(self.n_classes),
            "pos_label": self.pos_label,
        }

    def describe(self) -> dict[str, Any]:
        out = {"classes": list(self.class_names), "head": self.sizes}
        for split, data in self.splits.items():
            out[f"n_{split}"] = len(data)
        return out
