"""Multi-label metrics for a whole population at once: mAP, sample F1, accuracy, exact match.

Definitions (docs/method-definitions.md#metrics), each overall and restricted to a label group, in the FairPO authors'
conventions (github.com/soumenkm/FairPO, ``src/metrics.py``), so tables compare with the paper:
- mAP: mean over labels of average precision (sklearn's definition: Σ (R_k − R_{k−1}) P_k over
  distinct score thresholds), skipping labels without a positive; a group none of whose labels has
  a positive scores 0.0 (the authors' ``_compute_map``: "if not ap_scores: return 0.0");
- sample F1 at 0.5: per example 2|T∩Ŷ|/(|T|+|Ŷ|), averaged over examples; an example with no
  true and no predicted label in the group scores ``zero_division`` — 0 by default, the authors'
  ``f1_score(average='samples', zero_division=0)``. (1.0 is the other reading: "predicting nothing
  is right there"; it moves F1 on a rare group by up to its share of empty examples, so a table
  that shows it must label it.)
- accuracy: element-wise agreement; exact match: all of the group's labels right.
A prediction is positive when the score is ≥ 0.5 (the authors' ``>= threshold``):
a logit of exactly 0 is a positive.

Why not call sklearn here: evaluating a population means G heads × C labels AP computations per
split; sklearn's `average_precision_score` is one Python call per label. This computes all columns
with one sort; tests check every value against sklearn.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

THRESHOLD = 0.5  # a label is predicted when its score is >= THRESHOLD


def average_precision_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AP of every column of `scores` (n, K) against 0/1 `y` (n, K); NaN where a column has no positive."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    t = np.take_along_axis(y, order, axis=0)
    tp = np.cumsum(t, axis=0)
    precision = tp / np.arange(1, n + 1)[:, None]
    # each example counts at the *end* of its tie group (sklearn uses distinct thresholds only)
    last = np.ones_like(s, dtype=bool)
    last[:-1] = s[:-1] != s[1:]
    idx = np.where(last, np.arange(n)[:, None], n)
    end = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    p_end = np.take_along_axis(precision, end, axis=0)
    n_pos = t.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (t * p_end).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def population_metrics(
    probs: np.ndarray, y: np.ndarray, groups: Mapping[str, np.ndarray], zero_division: float = 0.0
) -> dict[str, np.ndarray]:
    """Metrics of G models: `probs` (G, n, C), `y` (n, C), `groups` suffix → label indices.

    Returns {"map"+suffix, "f1"+suffix, "acc"+suffix, "em"+suffix: (G,) arrays} per group
    (suffix "" for all labels, e.g. "_P", "_N").
    """
    probs = np.asarray(probs, dtype=np.float64)
    G, n, C = probs.shape
    y = np.asarray(y, dtype=np.uint8)
    ap = average_precision_columns(probs.transpose(1, 0, 2).reshape(n, G * C), np.tile(y, (1, G))).reshape(G, C)
    pred = probs >= THRESHOLD
    truth = y.astype(bool)[None]
    out: dict[str, np.ndarray] = {}
    for suffix, idx in {"": np.arange(C), **groups}.items():
        idx = np.asarray(idx, dtype=int)
        with np.errstate(invalid="ignore"), _quiet():
            # a group without any positive scores 0.0, as the authors' code does (not NaN)
            out["map" + suffix] = np.nanmean(ap[:, idx], axis=1) if np.any(y[:, idx].sum(0) > 0) else np.zeros(G)
        p, t = pred[:, :, idx], truth[:, :, idx]
        inter = (p & t).sum(axis=2)
        denom = p.sum(axis=2) + t.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(denom > 0, 2 * inter / np.maximum(denom, 1), zero_division)
        out["f1" + suffix] = f1.mean(axis=1)
        eq = p == t
        out["acc" + suffix] = eq.mean(axis=(1, 2))
        out["em" + suffix] = eq.all(axis=2).mean(axis=1)
    return out


class _quiet:
    """Silence numpy's 'mean of empty slice' warning for groups whose labels lack positives."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
