"""Selection that does not overfit a small validate split: recipe options of the
`biasbios` problem, under `problem.args.selection`.

Why: ΔTPR on BiasBios' validate split rests on ~50 male nurses and ~95 female surgeons; the
evolution evaluates hundreds of related candidates on it and keeps the ones whose *noise* looks
fair, which the test split then does not confirm. Three ways to make the validate-side numbers
(the evolution's fitness AND the baselines' selection, which both read `metrics_of_predictions`
on "val", so every method keeps the same rule) less noisy or less exploitable:

- `val_fraction`: re-draw train/validate from train ∪ validate, stratified by (group, class),
  so the fitness rests on more examples (test untouched; the baselines train on the same train);
- `dtpr: shrunk`: group TPRs shrunk towards the model's pooled TPR with `shrink_strength`
  pseudo-observations (a beta prior centred on the pooled rate), so small cells count less;
- `dtpr: upper`: the `upper_level` quantile of ΔTPR over a paired, seeded bootstrap stratified
  by (group, class) — a model is only as fair as its plausible worst case.

Our own code rather than a library's: the estimates must be vectorised over a whole population
(hundreds of models per second from one count tensor, as `evofair.analysis.metrics`), which fairlearn's
MetricFrame/bootstrap are not; the tests hold them to fairlearn on resampled indices.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from evofair.analysis.metrics import GroupCounts
from evofair.core.registry import Args


class SelectionArgs(Args):
    val_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="re-draw train/validate from train ∪ validate with this share in "
        "validate, stratified by (group, class); None: the shipped split",
    )
    split_seed: int = Field(0, ge=0, description="seed of the re-drawn split (val_fraction)")
    dtpr: Literal["plain", "shrunk", "upper"] = Field(
        "plain",
        description="ΔTPR on validate (fitness and the baselines' selection): plain counts, group "
        "TPRs shrunk to the pooled TPR, or a stratified bootstrap upper quantile",
    )
    shrink_strength: float = Field(20.0, gt=0, description="dtpr shrunk: pseudo-observations of the pooled TPR")
    upper_level: float = Field(0.9, gt=0.5, lt=1, description="dtpr upper: bootstrap quantile")
    n_boot: int = Field(200, ge=10, description="dtpr upper: bootstrap replicates")
    boot_seed: int = Field(0, ge=0, description="dtpr upper: seed of the (paired) bootstrap draws")


def stratified_resplit(y_train, g_train, y_val, g_val, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices) into the concatenation train ++ val: within each (group, class)
    cell, a seeded permutation sends round(val_fraction · n_cell) examples to validate. Sorted, so
    the order of examples inside each split follows the file."""
    y = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    g = np.concatenate([np.asarray(g_train), np.asarray(g_val)])
    rng = np.random.default_rng(seed)
    val = []
    for cell in sorted(set(zip(g.tolist(), y.tolist()))):
        idx = np.flatnonzero((g == cell[0]) & (y == cell[1]))
        val.append(rng.permutation(idx)[: int(round(val_fraction * len(idx)))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


def shrunk_dtpr(counts: GroupCounts, strength: float) -> np.ndarray:
    """Mean over classes of Δ over groups of (TP + k·p) / (n + k), p = the model's pooled TPR of
    the class (all groups), k = `strength`: the posterior mean under a Beta(k·p, k·(1−p)) prior."""
    c = counts.counts
    tp = np.einsum("macc->mac", c)
    n = c.sum(axis=3)
    pooled = counts._ratio(tp.sum(axis=1), n.sum(axis=1))  # (m, c)
    rate = (tp + strength * pooled[:, None, :]) / (n + strength)
    return (rate.max(axis=1) - rate.min(axis=1)).mean(axis=1)


def bootstrap_indices(y, g, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampled indices: each (group, class) cell resampled with replacement within
    itself, so every replicate has the original cell sizes (the stratified bootstrap)."""
    y, g = np.asarray(y), np.asarray(g)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(y)), dtype=np.int64)
    for cell in sorted(set(zip(g.tolist(), y.tolist()))):
        idx = np.flatnonzero((g == cell[0]) & (y == cell[1]))
        out[:, idx] = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
    return out


def multiplicities(boot_idx: np.ndarray) -> np.ndarray:
    """(n_boot, n): how often each example is drawn in each replicate."""
    n_boot, n = boot_idx.shape
    mult = np.zeros((n_boot, n))
    np.add.at(mult, (np.repeat(np.arange(n_boot), n), boot_idx.ravel()), 1.0)
    return mult


def bootstrap_dtpr(predictions, y, g, mult: np.ndarray, classes) -> np.ndarray:
    """ΔTPR (mean over classes of max − min over groups) of each model on each replicate given by
    `multiplicities`: (n_models, n_boot). Replicates share their draws across models (paired)."""
    P = np.atleast_2d(np.asarray(predictions))
    y, g = np.asarray(y), np.asarray(g)
    n_boot = mult.shape[0]
    correct = (P == y[None, :]).astype(np.float64)  # (m, n)
    groups = np.unique(g)
    gaps = np.zeros((len(P), n_boot))
    for c in classes:
        rates = []
        for a in groups:
            cell = (g == a) & (y == c)
            size = cell.sum()
            rates.append(correct[:, cell] @ mult[:, cell].T / size if size else np.zeros((len(P), n_boot)))
        rates = np.stack(rates)  # (groups, m, n_boot)
        gaps += rates.max(axis=0) - rates.min(axis=0)
    return gaps / len(classes)


class RobustValidation:
    """Replaces `dtpr` on the validate split by the chosen robust estimate; holds the bootstrap
    draws of one split (drawn once: the same replicates for every model and generation)."""

    def __init__(self, args: SelectionArgs):
        self.args = args
        self._mult: np.ndarray | None = None

    def apply(self, metrics: dict[str, np.ndarray], predictions, y, g, classes) -> dict[str, np.ndarray]:
        a = self.args
        if a.dtpr == "plain":
            return metrics
        if a.dtpr == "shrunk":
            value = shrunk_dtpr(GroupCounts.of(predictions, y, g, classes), a.shrink_strength)
        else:
            if self._mult is None:
                self._mult = multiplicities(bootstrap_indices(y, g, a.n_boot, a.boot_seed))
            value = np.quantile(bootstrap_dtpr(predictions, y, g, self._mult, classes), a.upper_level, axis=1)
        return {**metrics, "dtpr": value}
