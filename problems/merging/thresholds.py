"""Decision thresholds as genes: what gradient training cannot reach.

A λ-sweep optimises a differentiable surrogate; the objectives are thresholded rates (error,
ΔTPR). A shift of the decision boundary — one for everybody, or one per protected group — moves
those rates directly, so it is evolved with the merge recipe and judged on the thresholded
metrics. A per-group threshold reads the sensitive attribute at prediction time, as fairlearn's
ThresholdOptimizer does: the report, the model card and export say so, and it is off unless the
recipe asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from evofair.errors import UserError

ThresholdMode = Literal["off", "global", "per_group"]
PER_GROUP_NOTE = "per-group decision thresholds: the model reads the sensitive attribute at prediction time"


class ThresholdGenes:
    """How many threshold genes a recipe carries, and predictions with the boundary shifted by them."""

    def __init__(self, mode: ThresholdMode, inner):
        if not (callable(getattr(inner, "population_logits", None)) and getattr(inner, "n_classes", 0) == 2):
            raise UserError(
                "problem.args.threshold: thresholds need a binary classifier whose logits the inner problem "
                "gives (biasbios, fair_classification)"
            )
        self.mode, self.inner = mode, inner
        self.groups = sorted(set(np.asarray(inner.splits["train"].g).tolist())) if mode == "per_group" else []
        self.n_genes = len(self.groups) if mode == "per_group" else 1

    def predictions(self, heads: Sequence, genes: np.ndarray, split: str) -> np.ndarray:
        """Class 1 where logit₁ − logit₀ + shift > 0 (shift 0 is the plain argmax); (n_models, n)."""
        with torch.no_grad():
            logits = self.inner.population_logits(list(heads), split).double().numpy()
        margin = logits[..., 1] - logits[..., 0]
        genes = np.asarray(genes, dtype=float).reshape(len(heads), self.n_genes)
        if self.mode == "global":
            shift = genes[:, :1]
        else:  # a group unseen in training keeps the plain boundary (an appended column of 0s)
            shift = np.concatenate([genes, np.zeros((len(heads), 1))], axis=1)[:, self._group_index(split)]
        return (margin + shift > 0).astype(np.int64)

    def _group_index(self, split: str) -> np.ndarray:
        position = {g: k for k, g in enumerate(self.groups)}
        g = np.asarray(self.inner.splits[split].g).tolist()
        return np.array([position.get(v, len(self.groups)) for v in g])

    def card_rows(self, genes: Sequence[float]) -> list[dict]:
        names = ["everybody"] if self.mode == "global" else self.groups
        return [{"group": str(n), "logit shift": round(float(t), 6)} for n, t in zip(names, genes)]
