"""Cross-fitted scoring of merge recipes: choose on out-of-fold predictions, not on a small validate split.

With a validate split of a few hundred examples per group, every extra recipe scored on it is one
more chance to be lucky there (the front's models then lose fairness on test). Merge recipes are
cheap to score, so the budget a search saves can pay for a better estimate: the anchors are trained
k times on train ∪ validate minus one fold, a recipe is scored on the pooled out-of-fold
predictions of its k merges (every pooled example is judged by anchors that never saw it), and the
recipe the search keeps is applied to anchors trained on all of train ∪ validate.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch

from evofair.analysis.metrics import fairness_metrics
from evofair.core.individual import Weights


def _subset(data, idx: np.ndarray):
    return type(data)(X=data.X[torch.as_tensor(idx)], y=np.asarray(data.y)[idx], g=np.asarray(data.g)[idx])


def _pool(inner):
    """train ∪ validate as one split (features, labels, groups)."""
    tr, va = inner.splits["train"], inner.splits["val"]
    return type(tr)(X=torch.cat([tr.X, va.X]), y=np.concatenate([tr.y, va.y]), g=np.concatenate([tr.g, va.g]))


class CrossFittedAnchors:
    """Anchors per fold and on the whole pool; `oof_metrics` scores recipes out of fold."""

    def __init__(self, inner, train: Callable[[object], tuple[list[Weights], int]], folds: int, seed: int):
        """`train(view)` trains the anchors on `view.splits['train']` and returns (anchors, training examples)."""
        pool = _pool(inner)
        order = np.random.default_rng(seed).permutation(len(pool))
        self.inner, self.folds = inner, np.array_split(order, folds)
        self.fold_anchors: list[list[Weights]] = []
        self.examples = 0
        for k, out in enumerate(self.folds):
            inside = np.setdiff1d(order, out)
            inner.splits[f"cv_out{k}"] = _subset(pool, out)  # scored here, never trained on
            anchors, examples = train(self._training_view(_subset(pool, inside)))
            self.fold_anchors.append(anchors)
            self.examples += examples
        self.anchors, examples = train(self._training_view(pool))
        self.examples += examples
        self.y = np.concatenate([pool.y[out] for out in self.folds])
        self.g = np.concatenate([pool.g[out] for out in self.folds])

    def _training_view(self, split):
        """The inner problem seen with `split` as its training data (a shallow copy: nothing else changes)."""
        view = copy.copy(self.inner)
        view.splits = {**self.inner.splits, "train": split}
        return view

    def oof_metrics(
        self, predict: Callable[[list[Weights], Sequence[np.ndarray], str], np.ndarray], recipes: Sequence[np.ndarray]
    ):
        """Every metric of each recipe on the pooled out-of-fold predictions; `predict(anchors, recipes,
        split)` gives the recipes' predicted classes with those anchors on that split."""
        P = np.concatenate(
            [predict(anchors, recipes, f"cv_out{k}") for k, anchors in enumerate(self.fold_anchors)], axis=1
        )
        inner = self.inner
        return fairness_metrics(P, self.y, self.g, classes=np.arange(inner.n_classes), pos_label=inner.pos_label)
