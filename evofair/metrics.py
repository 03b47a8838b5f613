"""Accuracy and group-fairness metrics of a whole *population* of classifiers at once.

Why our own code rather than fairlearn's `MetricFrame` in the loop: MetricFrame builds pandas
objects per model and per metric (milliseconds each), and a run evaluates thousands of models on
two splits. Everything here is derived from one count tensor, computed for every model in a single
matrix product:

    counts[m, a, c, k] = #{ i : group_i = a, y_i = c, prediction of model m on i = k }

Every rate is then an exact ratio of integer counts, which is why the tests can hold these
numbers to fairlearn's to 1e-12. Conventions follow fairlearn where a rate is undefined: a rate
with an empty denominator (e.g. a group with no positives) is 0, as `true_positive_rate` returns
through sklearn's normalised confusion matrix; groups are the values present in the data, and a
difference between groups is max − min over them (fairlearn's `between_groups`).

Definitions (METHODS.md §1):
- `error` = 1 − accuracy;
- `dtpr`  = mean over classes c of ΔTPR_c, with ΔTPR_c = max_a TPR_c(a) − min_a TPR_c(a) and
  TPR_c(a) = P(ŷ=c | y=c, group=a) (with two groups, |TPR_c(F) − TPR_c(M)|);
- `dtpr_rms` = sqrt(mean_c ΔTPR_c²), De-Arteaga et al.'s GAP^TPR_RMS;
- `eod` = fairlearn's equalized_odds_difference (worst case of the TPR and FPR differences of the
  positive class);
- `dpd` = fairlearn's demographic_parity_difference (difference of P(ŷ = positive | group)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

METRIC_NAMES = ("error", "dtpr", "dtpr_rms", "eod", "dpd")


def _codes(values: Sequence, categories: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(categories, values)
    pos = np.clip(pos, 0, len(categories) - 1)
    if not np.all(categories[pos] == values):
        raise ValueError("values outside the declared categories")
    return pos


@dataclass(frozen=True)
class GroupCounts:
    """The count tensor of a population, with the class and group values it is indexed by."""

    counts: np.ndarray  # (n_models, n_groups, n_classes_true, n_classes_pred), float64 exact ints
    classes: np.ndarray
    groups: np.ndarray

    @classmethod
    def of(cls, predictions, y_true, groups, classes=None) -> "GroupCounts":
        """Count (group, true class, predicted class) cells for each row of `predictions`.

        `predictions` is (n_models, n_samples) or (n_samples,) of class labels; `classes` defaults
        to the sorted labels present in y_true and the predictions.
        """
        P = np.atleast_2d(np.asarray(predictions))
        y = np.asarray(y_true)
        g = np.asarray(groups)
        if P.shape[1] != len(y) or len(g) != len(y):
            raise ValueError(f"predictions {P.shape}, y_true {y.shape} and groups {g.shape} disagree")
        classes = np.unique(np.concatenate([y, P.ravel()]) if classes is None else np.asarray(classes))
        group_values = np.unique(g)
        yc, gc, pc = _codes(y, classes), _codes(g, group_values), _codes(P, classes)
        C, G = len(classes), len(group_values)
        cell = np.zeros((len(y), G * C))
        cell[np.arange(len(y)), gc * C + yc] = 1.0  # which (group, true class) cell each sample is in
        onehot = (pc[:, :, None] == np.arange(C)).astype(np.float64)  # (m, n, k)
        counts = np.einsum("nj,mnk->mjk", cell, onehot, optimize=True).reshape(len(P), G, C, C)
        return cls(np.rint(counts), classes, group_values)

    # -- rates -------------------------------------------------------------------------------
    @staticmethod
    def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    def class_index(self, label) -> int:
        hits = np.flatnonzero(self.classes == label)
        if len(hits) == 0:
            raise ValueError(f"label {label!r} is not one of the classes {self.classes.tolist()}")
        return int(hits[0])

    def error(self) -> np.ndarray:
        total = self.counts.sum(axis=(1, 2, 3))
        correct = np.einsum("magg->m", self.counts)
        return 1.0 - correct / total

    def tpr(self) -> np.ndarray:
        """TPR[m, a, c] = P(ŷ=c | y=c, group a)."""
        diag = np.einsum("macc->mac", self.counts)
        return self._ratio(diag, self.counts.sum(axis=3))

    def tpr_gaps(self) -> np.ndarray:
        """ΔTPR[m, c] = max_a TPR − min_a TPR."""
        t = self.tpr()
        return t.max(axis=1) - t.min(axis=1)

    def dtpr(self) -> np.ndarray:
        return self.tpr_gaps().mean(axis=1)

    def dtpr_rms(self) -> np.ndarray:
        return np.sqrt((self.tpr_gaps() ** 2).mean(axis=1))

    def fpr(self, pos_label) -> np.ndarray:
        """FPR[m, a] = P(ŷ=pos | y≠pos, group a)."""
        p = self.class_index(pos_label)
        neg = np.ones(len(self.classes), bool)
        neg[p] = False
        num = self.counts[:, :, neg, p].sum(axis=2)
        den = self.counts[:, :, neg, :].sum(axis=(2, 3))
        return self._ratio(num, den)

    def eod(self, pos_label) -> np.ndarray:
        p = self.class_index(pos_label)
        t = self.tpr()[:, :, p]
        f = self.fpr(pos_label)
        return np.maximum(t.max(axis=1) - t.min(axis=1), f.max(axis=1) - f.min(axis=1))

    def selection_rate(self, pos_label) -> np.ndarray:
        """P(ŷ = pos | group a), (m, a)."""
        p = self.class_index(pos_label)
        return self._ratio(self.counts[:, :, :, p].sum(axis=2), self.counts.sum(axis=(2, 3)))

    def dpd(self, pos_label) -> np.ndarray:
        s = self.selection_rate(pos_label)
        return s.max(axis=1) - s.min(axis=1)

    def all(self, pos_label=None) -> dict[str, np.ndarray]:
        """Every metric of METRIC_NAMES, one value per model. `pos_label` defaults to the largest
        class (fairlearn's default for binary labels)."""
        pos = self.classes[-1] if pos_label is None else pos_label
        return {"error": self.error(), "dtpr": self.dtpr(), "dtpr_rms": self.dtpr_rms(),
                "eod": self.eod(pos), "dpd": self.dpd(pos)}


def fairness_metrics(predictions, y_true, groups, *, classes=None, pos_label=None) -> dict[str, np.ndarray]:
    """`error`, `dtpr`, `dtpr_rms`, `eod`, `dpd` of each row of `predictions` (see module doc)."""
    return GroupCounts.of(predictions, y_true, groups, classes).all(pos_label)


def is_near_constant(predictions, threshold: float = 0.99) -> np.ndarray:
    """True for models that predict one class on at least `threshold` of the samples (METHODS.md
    asks reports to flag them: a constant predictor has ΔTPR 0 and looks 'fair')."""
    P = np.atleast_2d(np.asarray(predictions))
    share = np.array([np.unique(row, return_counts=True)[1].max() / len(row) for row in P])
    return share >= threshold


def confusion_rows(predictions, y_true, groups, class_names: Sequence[str] | None = None,
                   classes=None) -> list[dict]:
    """Per-group confusion numbers of one model: for every group and true class, its size, the
    counts of each predicted class and the TPR — the table a report shows for a chosen model."""
    gc = GroupCounts.of(np.asarray(predictions)[None, :], y_true, groups, classes)
    names = list(class_names) if class_names is not None else [str(c) for c in gc.classes]
    tpr = gc.tpr()[0]
    rows = []
    for a, group in enumerate(gc.groups):
        for c, cname in enumerate(names):
            cells = gc.counts[0, a, c]
            rows.append({"group": str(group), "true": cname, "n": int(cells.sum()),
                         **{f"pred_{names[k]}": int(cells[k]) for k in range(len(names))},
                         "tpr": float(tpr[a, c])})
    return rows
