"""Multi-label classification with a privileged label group (FairPO's setting), as an evofair problem.

Model, as in the FairPO code: fixed input features (for MULAN data the dataset's features stand in
for a frozen backbone's embedding, standardised on the training rows) → a trainable MLP head with a
sigmoid per label. A genome is the head's weights. Objectives on validation, both minimised:
(1 − mAP_P, 1 − mAP_N). The reference head (for FairPO's DPO term and hinge) is BCE-SFT, trained
once per process, deterministically, and selected on validation privileged mAP like every model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from evofair.core.indicators import just_past
from evofair.core.individual import Weights
from evofair.core.problem import Objective, WeightsProblem
from evofair.core.registry import Args, component
from evofair.errors import UserError
from evofair.problems.fairpo.metrics import population_metrics
from evofair.problems.fairpo.mulan import carve_validation, load_mulan, privileged_labels


class MultiLabelParams(Args):
    data: str = Field("mulan_yeast", description="MULAN folder (NAME.xml, NAME-train.arff, NAME-test.arff)")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="validation rows carved from the training file")
    split_seed: int = Field(0, ge=0)
    privileged_fraction: float = Field(0.25, gt=0, lt=1, description="P = the rarest ⌈q·C⌉ labels on train")
    privileged: list[str | int] | None = Field(None, description="explicit P (label names or indices)")
    min_positives: int = Field(0, ge=0, description="drop labels with fewer positives in the training file")
    hidden: int = Field(256, ge=0, description="hidden units of the MLP head (0: a linear head)")
    init: Literal["random", "sft"] = Field("random", description="initial genomes: fresh heads, or SFT + noise")
    init_sigma: float = Field(0.01, ge=0, description="noise on the SFT head for init=sft")
    sft_epochs: int = Field(40, ge=1, description="epochs of BCE-SFT for the reference head")
    sft_lr: float = Field(1e-3, gt=0)
    sft_seed: int = Field(0, ge=0)


class MLPHead(torch.nn.Module):
    def __init__(self, d: int, hidden: int, C: int):
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.fc1 = torch.nn.Linear(d, hidden)
            self.fc2 = torch.nn.Linear(hidden, C)
        else:
            self.fc2 = torch.nn.Linear(d, C)

    def forward(self, x):
        if self.hidden:
            x = torch.relu(self.fc1(x))
        return self.fc2(x)


@component("problem", "multilabel", MultiLabelParams)
class MultiLabelProblem(WeightsProblem):
    """MULAN multi-label data, MLP head over fixed features; objectives 1 − mAP on P and on N."""

    name = "multilabel"
    objectives = (Objective("err_map_P"), Objective("err_map_N"))
    default_hv_ref = (1.0, 1.0)

    def check_inputs(self) -> None:
        _ = self._data  # loading is the check: every failure is a UserError naming the file

    @cached_property
    def _data(self):
        return load_mulan(self.params.data, self.data_root)

    def setup(self) -> None:
        p, data = self.params, self._data
        keep = np.flatnonzero(data.y_train.sum(axis=0) >= p.min_positives)
        if len(keep) < 2:
            raise UserError(f"problem.args.min_positives: only {len(keep)} labels have {p.min_positives}+ positives")
        self.dropped_labels = [n for i, n in enumerate(data.label_names) if i not in set(keep)]
        data = replace(
            data,
            label_names=tuple(data.label_names[i] for i in keep),
            y_train=data.y_train[:, keep],
            y_test=data.y_test[:, keep],
        )
        tr, va = carve_validation(len(data.x_train), p.val_fraction, p.split_seed)
        mean = data.x_train[tr].mean(axis=0)
        std = data.x_train[tr].std(axis=0)
        std[std < 1e-12] = 1.0

        def feats(x):
            return torch.tensor((x - mean) / std, dtype=torch.float32)

        self.x = {"train": feats(data.x_train[tr]), "val": feats(data.x_train[va]), "test": feats(data.x_test)}
        self.y = {"train": data.y_train[tr], "val": data.y_train[va], "test": data.y_test}
        self.y_t = torch.tensor(self.y["train"], dtype=torch.float32)
        self.label_names = list(data.label_names)
        self.C, self.d = len(self.label_names), self.x["train"].shape[1]
        self.priv = privileged_labels(
            self.y["train"], self.label_names, fraction=p.privileged_fraction, explicit=p.privileged
        )
        self.nonpriv = np.setdiff1d(np.arange(self.C), self.priv)
        self.default_hv_ref = self._constant_reference()
        self._reference: Weights | None = None

    def _constant_reference(self) -> tuple[float, float]:
        """Just past a constant score's (1 − mAP_P, 1 − mAP_N), the worse of validate and test (a
        constant score's AP is each label's prevalence): trivial models earn no hypervolume on
        whatever labels the data has. A recipe's own `hv_ref` wins."""
        worst = np.zeros(2)
        for split, y in (("val", self.y["val"]), ("test", self.y["test"])):
            m = self.metrics(np.full((1, *y.shape), 0.5), split)
            worst = np.maximum(worst, [1 - m["map_P"][0], 1 - m["map_N"][0]])
        return just_past(float(worst[0])), just_past(float(worst[1]))

    # -- genomes ---------------------------------------------------------------------------
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        h, d, C = self.params.hidden, self.d, self.C
        if h:
            return {"fc1.weight": (h, d), "fc1.bias": (h,), "fc2.weight": (C, h), "fc2.bias": (C,)}
        return {"fc2.weight": (C, d), "fc2.bias": (C,)}

    def random_head(self, seed: int) -> Weights:
        """PyTorch's default Linear init (U(±1/√fan_in)), drawn from a generator seeded by `seed`."""
        self.ensure_setup()
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        out = {}
        for name, shape in self._shapes().items():
            fan_in = self._shapes()[name.replace("bias", "weight")][1]
            bound = 1 / math.sqrt(fan_in)
            out[name] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        return out

    def init_weights(self, seed: int) -> Weights:
        if self.params.init == "random":
            return self.random_head(seed)
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        return {
            k: v + torch.randn(v.shape, generator=gen) * self.params.init_sigma
            for k, v in self.reference_weights().items()
        }

    def build_model(self, weights: Weights) -> torch.nn.Module:
        self.ensure_setup()
        model = MLPHead(self.d, self.params.hidden, self.C)
        model.load_state_dict({k: v.detach().clone().float() for k, v in weights.items()})
        return model

    def groups(self):
        self.ensure_setup()
        return {
            "kind": "labels",
            "privileged": [int(i) for i in self.priv],
            "privileged_names": [self.label_names[i] for i in self.priv],
        }

    def train_batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.ensure_setup()
        n = len(self.y_t)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF))
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            yield self.x["train"][idx], self.y_t[idx]

    def loss(self, model, batch) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(model(batch[0]), batch[1])

    # -- evaluation ------------------------------------------------------------------------
    def probabilities(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        """σ(head(x)) for every genome at once: (G, n, C), one batched matmul per layer."""
        self.ensure_setup()
        x = self.x[split]
        with torch.no_grad():
            h = x[None].expand(len(genomes), *x.shape)
            if self.params.hidden:
                w1 = torch.stack([g["fc1.weight"].float() for g in genomes])
                b1 = torch.stack([g["fc1.bias"].float() for g in genomes])
                h = torch.relu(torch.bmm(h, w1.transpose(1, 2)) + b1[:, None])
            w2 = torch.stack([g["fc2.weight"].float() for g in genomes])
            b2 = torch.stack([g["fc2.bias"].float() for g in genomes])
            return torch.sigmoid(torch.bmm(h, w2.transpose(1, 2)) + b2[:, None]).double().numpy()

    def metrics(self, probs: np.ndarray, split: str, priv: np.ndarray | None = None) -> dict[str, np.ndarray]:
        priv = self.priv if priv is None else priv
        groups = {"_P": priv, "_N": np.setdiff1d(np.arange(self.C), priv)}
        return population_metrics(probs, self.y[split], groups)

    def evaluate(self, genomes: Sequence[Weights], split) -> dict[str, np.ndarray]:
        if not genomes:
            return {o.name: np.zeros(0) for o in self.objectives}
        out = self.metrics(self.probabilities(genomes, split), split)
        out["err_map_P"] = 1 - out["map_P"]
        out["err_map_N"] = 1 - out["map_N"]
        return out

    # -- the BCE-SFT reference -------------------------------------------------------------
    def reference_weights(self) -> Weights:
        """The run's BCE-SFT head (trained on first use; deterministic, so every worker agrees)."""
        self.ensure_setup()
        if self._reference is None:
            from evofair.core.torch_utils import torch_threads
            from evofair.problems.fairpo.train import METHODS, train_selected

            p = self.params
            cfg = METHODS["sft"].config.model_copy(update={"lr": p.sft_lr})
            with torch_threads(1):
                self._reference = train_selected(self, cfg, seed=p.sft_seed, epochs=p.sft_epochs).weights
        return self._reference

    def describe(self) -> dict[str, Any]:
        self.ensure_setup()
        return {
            "dataset": self._data.name,
            "labels": self.C,
            "features": self.d,
            "rows": {k: len(v) for k, v in self.y.items()},
            "privileged": [self.label_names[i] for i in self.priv],
            "dropped_labels": self.dropped_labels,
            "hv_ref unless the recipe pins one": f"{self.default_hv_ref} (just past a constant score's)",
        }

    def report_sections(self, store, out, recipe):
        from evofair.problems.fairpo.memetic_report import memetic_sections

        return memetic_sections(self, store, out, recipe)
