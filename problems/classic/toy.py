"""A small synthetic neural problem for engine tests and overhead benchmarks.

Two Gaussian classes whose separating direction differs between two groups, so accuracy and
group fairness pull apart. Real studies use evofair.problems.fapareto.biasbios / tabular / multilabel / ranking;
this one exists because engine tests need a weights problem that builds in milliseconds.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from pydantic import Field

from evofair.core.problem import Objective, WeightsProblem
from evofair.core.registry import Args, component


class ToyParams(Args):
    # upper bounds are sanity limits for a toy, checked with the recipe before the run folder exists
    n_train: int = Field(512, ge=8, le=10_000_000)
    n_eval: int = Field(256, ge=8, le=10_000_000)
    n_features: int = Field(8, ge=2, le=100_000)
    hidden: int = Field(16, ge=1, le=100_000)
    data_seed: int = 0
    crash_once_marker: str | None = Field(
        None, description="test hook: the first process to train creates this file and dies (SIGKILL)"
    )


def _mlp(d: int, h: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))


@component("problem", "toy_mlp", ToyParams)
class ToyMLP(WeightsProblem):
    """Synthetic 2-group classification with an MLP head (error vs TPR gap); for engine tests."""

    name = "toy_mlp"
    objectives = (Objective("error"), Objective("gap"))
    default_hv_ref = (0.6, 0.6)

    def setup(self) -> None:
        p = self.params
        rng = np.random.default_rng(p.data_seed)
        direction = rng.normal(size=(2, p.n_features))

        def split(n):
            g = rng.integers(0, 2, n)
            x = rng.normal(size=(n, p.n_features))
            y = ((x * direction[g]).sum(1) + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
            return torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(g)

        self.data = {"train": split(p.n_train), "val": split(p.n_eval), "test": split(p.n_eval)}

    def init_weights(self, seed: int):
        torch_gen = torch.Generator().manual_seed(seed & 0xFFFFFFFF)
        model = _mlp(self.params.n_features, self.params.hidden)
        with torch.no_grad():
            for t in model.parameters():
                t.copy_(torch.randn(t.shape, generator=torch_gen) * (1.0 / np.sqrt(t.shape[-1])))
        return self.extract_weights(model)

    def base_weights(self):
        if not hasattr(self, "_base"):
            self._base = self.init_weights(0)
        return self._base

    def build_model(self, weights):
        model = _mlp(self.params.n_features, self.params.hidden)
        model.load_state_dict(weights)
        return model

    def train_batches(self, seed: int, batch_size: int) -> Iterable:
        marker = self.params.crash_once_marker
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dying mid-task, as an OOM kill would
        x, y, _ = self.data["train"]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed & 0xFFFFFFFF))
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]

    def loss(self, model, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, genomes: Sequence, split):
        x, y, g = self.data[split]
        W1 = torch.stack([w["0.weight"] for w in genomes])
        b1 = torch.stack([w["0.bias"] for w in genomes])
        W2 = torch.stack([w["2.weight"] for w in genomes])
        b2 = torch.stack([w["2.bias"] for w in genomes])
        h = torch.relu(torch.einsum("nd,phd->pnh", x, W1) + b1[:, None])
        pred = (torch.einsum("pnh,pch->pnc", h, W2) + b2[:, None]).argmax(-1)  # (P, n)
        correct = (pred == y).double()
        gaps = []
        for c in (0, 1):
            tpr = [(pred[:, (y == c) & (g == k)] == c).double().mean(1) for k in (0, 1)]
            gaps.append((tpr[0] - tpr[1]).abs())
        return {"error": (1 - correct.mean(1)).numpy(), "gap": torch.stack(gaps).mean(0).numpy()}
