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

Definitions (docs/method-definitions.md#objectives-error-and-tpr-gap; docs/metrics.md has the same list with each oracle). C is the set
of classes, "Δ over groups" is max − min over the groups present:
- `error` = 1 − accuracy;
- `balanced_error` = 1 − mean over the classes present in y_true of recall (sklearn's
  `balanced_accuracy_score`, which skips classes with no true sample);
- `worst_group_error` = max over groups of the group's error (MetricFrame(...).group_max());
- `dtpr`  = mean over classes c of ΔTPR_c, with ΔTPR_c = max_a TPR_c(a) − min_a TPR_c(a) and
  TPR_c(a) = P(ŷ=c | y=c, group=a) (with two groups, |TPR_c(F) − TPR_c(M)|);
- `dtpr_rms` = sqrt(mean_c ΔTPR_c²), De-Arteaga et al.'s GAP^TPR_RMS;
- `dfpr` = mean over classes c of ΔFPR_c, FPR_c(a) = P(ŷ=c | y≠c, group=a) (one-vs-rest);
- `eod` = fairlearn's equalized_odds_difference: max(ΔTPR_pos, ΔFPR_pos) for the positive class;
- `dpd` = fairlearn's demographic_parity_difference: Δ over groups of P(ŷ = pos | group).
`eod` and `dpd` need a positive class. With two classes (or one) it is `pos_label`, by default
the larger class (fairlearn's pos_label=1). With more than two classes and no `pos_label`, they are
one-vs-rest and take the worst class: max over c of the fairlearn value on the binarised problem
(y==c, ŷ==c). For two classes that worst class gives the same number as pos_label whenever every
group has both true classes (TPR_0 = 1 − FPR_1 and FPR_0 = 1 − TPR_1; selection rates of 0 and 1 sum
to one), so binary targets keep the pos_label code path and their values bit for bit.
Groups are whatever labels `groups` holds: pass an intersectional label (`intersectional_groups`,
e.g. "Female|Black") to get fairlearn's intersectional MetricFrame over several sensitive columns,
or call once per column for per-attribute metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evofair.errors import UserError

# Stable public names: recipes name objectives and constraints by them (append, never rename).
METRIC_NAMES = ("error", "dtpr", "dtpr_rms", "eod", "dpd", "balanced_error", "worst_group_error", "dfpr")


def _codes(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
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
    def of(cls, predictions, y_true, groups, classes=None) -> GroupCounts:
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

    # -- every class one-vs-rest (multi-class) ----------------------------------------------
    @staticmethod
    def _gap(rates: np.ndarray) -> np.ndarray:
        """Δ over groups (axis 1): fairlearn's difference(method="between_groups")."""
        return rates.max(axis=1) - rates.min(axis=1)

    def fpr_all(self) -> np.ndarray:
        """FPR[m, a, c] = P(ŷ=c | y≠c, group a), class c against the rest."""
        diag = np.einsum("macc->mac", self.counts)
        false_pos = self.counts.sum(axis=2) - diag  # predicted c, true class another
        negatives = self.counts.sum(axis=(2, 3))[:, :, None] - self.counts.sum(axis=3)
        return self._ratio(false_pos, negatives)

    def selection_rate_all(self) -> np.ndarray:
        """P(ŷ=c | group a), (m, a, c)."""
        return self._ratio(self.counts.sum(axis=2), self.counts.sum(axis=(2, 3))[:, :, None])

    def dfpr(self) -> np.ndarray:
        return self._gap(self.fpr_all()).mean(axis=1)

    def eod_worst_class(self) -> np.ndarray:
        """max over c of max(ΔTPR_c, ΔFPR_c): fairlearn's EOD of the worst one-vs-rest class."""
        return np.maximum(self.tpr_gaps(), self._gap(self.fpr_all())).max(axis=1)

    def dpd_worst_class(self) -> np.ndarray:
        return self._gap(self.selection_rate_all()).max(axis=1)

    # -- accuracy views -----------------------------------------------------------------------
    def group_error(self) -> np.ndarray:
        """Error of each model within each group, (m, a)."""
        correct = np.einsum("macc->ma", self.counts)
        return 1.0 - self._ratio(correct, self.counts.sum(axis=(2, 3)))

    def worst_group_error(self) -> np.ndarray:
        return self.group_error().max(axis=1)

    def balanced_error(self) -> np.ndarray:
        """1 − mean recall over the classes with a true sample (as sklearn, which drops the others)."""
        per_class = self.counts.sum(axis=(1, 3))  # (m, c) true samples of each class
        recall = self._ratio(np.einsum("macc->mc", self.counts), per_class)
        present = per_class[0] > 0  # the same for every model
        return 1.0 - recall[:, present].mean(axis=1)

    def all(self, pos_label=None) -> dict[str, np.ndarray]:
        """Every metric of METRIC_NAMES, one value per model. `pos_label` is the positive class of
        `eod` and `dpd`; None means the larger class with two classes (fairlearn's default) and the
        worst one-vs-rest class with more (module doc)."""
        if pos_label is None and len(self.classes) > 2:
            eod, dpd = self.eod_worst_class(), self.dpd_worst_class()
        else:
            pos = self.classes[-1] if pos_label is None else pos_label
            eod, dpd = self.eod(pos), self.dpd(pos)
        return {
            "error": self.error(),
            "dtpr": self.dtpr(),
            "dtpr_rms": self.dtpr_rms(),
            "eod": eod,
            "dpd": dpd,
            "balanced_error": self.balanced_error(),
            "worst_group_error": self.worst_group_error(),
            "dfpr": self.dfpr(),
        }


def fairness_metrics(predictions, y_true, groups, *, classes=None, pos_label=None) -> dict[str, np.ndarray]:
    """Every metric of METRIC_NAMES for each row of `predictions` (n_models, n_samples), from one
    count tensor (see module doc)."""
    return GroupCounts.of(predictions, y_true, groups, classes).all(pos_label)


def intersectional_groups(columns: Sequence[np.ndarray], sep: str = "|") -> np.ndarray:
    """One group label per sample joining the values of several sensitive columns, e.g.
    "Female|Black": the groups fairlearn's MetricFrame forms from a DataFrame of those columns
    (empty combinations simply do not occur). A value containing `sep` could make two different
    combinations one label, so it is refused."""
    cols = [np.asarray(c).astype(str) for c in columns]
    if not cols:
        raise UserError("sensitive: expected at least one column")
    if len({len(c) for c in cols}) > 1:
        raise UserError(f"sensitive: columns of different lengths {[len(c) for c in cols]}")
    for c in cols:
        clash = c[np.char.find(c, sep) >= 0]
        if len(clash):
            raise UserError(f"sensitive: value {clash[0]!r} contains the group separator {sep!r}; choose another sep")
    out = cols[0]
    for c in cols[1:]:
        out = np.char.add(np.char.add(out, sep), c)
    return out


def is_near_constant(predictions, threshold: float = 0.99) -> np.ndarray:
    """True for models that predict one class on at least `threshold` of the samples (reports
    flag them: a constant predictor has ΔTPR 0 and looks 'fair'; docs/method-definitions.md#reference-point-and-trivial-models)."""
    P = np.atleast_2d(np.asarray(predictions))
    share = np.array([np.unique(row, return_counts=True)[1].max() / len(row) for row in P])
    return share >= threshold


def confusion_rows(predictions, y_true, groups, class_names: Sequence[str] | None = None, classes=None) -> list[dict]:
    """Per-group confusion numbers of one model: for every group and true class, its size, the
    counts of each predicted class and the TPR — the table a report shows for a chosen model."""
    gc = GroupCounts.of(np.asarray(predictions)[None, :], y_true, groups, classes)
    names = list(class_names) if class_names is not None else [str(c) for c in gc.classes]
    tpr = gc.tpr()[0]
    rows = []
    for a, group in enumerate(gc.groups):
        for c, cname in enumerate(names):
            cells = gc.counts[0, a, c]
            rows.append(
                {
                    "group": str(group),
                    "true": cname,
                    "n": int(cells.sum()),
                    **{f"pred_{names[k]}": int(cells[k]) for k in range(len(names))},
                    "tpr": float(tpr[a, c]),
                }
            )
    return rows
