"""Front-selection rules: which candidates to keep, judged on a small selection split.

The merge pipeline's candidate pools are as good as the λ-sweep's (their best subsets score the
same on test); what it loses is choosing its front on a selection split of a few hundred examples
per group, where every extra candidate is one more chance to look fair by luck. Each rule here
maps a pool's predicted classes on the selection split to the indices it keeps, so the pipeline and
the sweep can be selected by the same rule:

- `plain`: the non-dominated candidates (the study's rule);
- `stability`: the non-dominated set (on the full split's metrics, or on their bootstrap means)
  among candidates that stay non-dominated in at least a fraction `threshold` of bootstrap
  resamples of the selection rows (stratified by group, so a tiny group is present in every
  resample); a candidate that is on the front by one lucky row rarely is after resampling;
- `shrunk`: objectives whose group rates are shrunk toward the model's pooled rate by `k`
  pseudo-counts (a Beta prior with mean the pooled rate), so a group with one positive cannot put
  a TPR of 0 or 1 into the fairness metric;
- `thin`: at most `K` members of the plain front, the `K` of largest validate HV (exact in two
  objectives). On test a subset never has more HV than the whole, so thinning cannot raise a
  side's HV: applied to both sides it moves the ratio only through what each side loses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evofair.analysis.metrics import GroupCounts

Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, "Scorer"], np.ndarray]


@dataclass(frozen=True)
class Scorer:
    """The objectives a pool is judged on (both minimised), with the labels they need."""

    objectives: tuple[str, str]
    classes: np.ndarray
    pos_label: object
    ref: tuple[float, float]

    def counts(self, P: np.ndarray, y: np.ndarray, g: np.ndarray) -> GroupCounts:
        """evofair's count tensor by one bincount (its einsum builds a (models × rows × classes)
        one-hot, slow for the hundreds of candidates × tens of thousands of rows resampled here)."""
        P, y, g = np.atleast_2d(P), np.asarray(y), np.asarray(g)
        groups = np.unique(g)
        C, G, m = len(self.classes), len(groups), len(P)
        cell = np.searchsorted(groups, g) * C + np.searchsorted(self.classes, y)
        flat = (np.arange(m)[:, None] * (G * C) + cell[None, :]) * C + np.searchsorted(self.classes, P)
        counts = np.bincount(flat.ravel(), minlength=m * G * C * C).reshape(m, G, C, C)
        return GroupCounts(counts.astype(np.float64), self.classes, groups)

    def pos(self):
        return self.classes[-1] if self.pos_label is None else self.pos_label

    def __call__(self, P: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        """(n_models, 2) objectives, as `fairness_metrics` computes them."""
        gc = self.counts(P, y, g)
        named = {"error": gc.error, "dtpr": gc.dtpr}
        if self.pos_label is not None or len(self.classes) <= 2:  # else eod is the worst class's
            named["eod"] = lambda: gc.eod(self.pos())
        cols = [named[n]() if n in named else gc.all(self.pos_label)[n] for n in self.objectives]
        return np.column_stack(cols)


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices of the rows no other row dominates (minimised)."""
    F = np.asarray(F, dtype=float)
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)  # le[j, i]: row j is no worse than row i
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    return np.flatnonzero(~np.any(le & lt, axis=0))


def plain(P, y, g, scorer: Scorer) -> np.ndarray:
    return nondominated(scorer(P, y, g))


# -- stability selection ------------------------------------------------------------------------
def stratified_resample(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices drawn with replacement within each group (every group keeps its size)."""
    parts = []
    for a in np.unique(g):
        rows = np.flatnonzero(g == a)
        parts.append(rows[rng.integers(0, len(rows), len(rows))])
    return np.concatenate(parts)


def bootstrap(P, y, g, scorer: Scorer, B: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Over `B` group-stratified resamples of the selection rows: the fraction in which each
    candidate is non-dominated (its stability), and its mean objectives."""
    rng = np.random.default_rng(seed)
    y, g = np.asarray(y), np.asarray(g)
    hits, total = np.zeros(len(P)), np.zeros((len(P), len(scorer.objectives)))
    for _ in range(B):
        idx = stratified_resample(g, rng)
        F = scorer(P[:, idx], y[idx], g[idx])
        hits[nondominated(F)] += 1
        total += F
    return hits / B, total / B


def stability(P, y, g, scorer: Scorer, B: int = 50, seed: int = 0) -> np.ndarray:
    return bootstrap(P, y, g, scorer, B, seed)[0]


def stable(threshold: float = 0.5, on: str = "full", B: int = 50, seed: int = 0) -> Rule:
    """The rule: among candidates at least `threshold` stable, the non-dominated set on the full
    split's metrics (`on="full"`) or on their bootstrap means (`on="mean"`)."""

    def rule(P, y, g, scorer: Scorer) -> np.ndarray:
        share, mean = bootstrap(P, y, g, scorer, B, seed)
        keep = np.flatnonzero(share >= threshold)
        if len(keep) == 0:  # nothing is stable: fall back to the plain front rather than nothing
            return plain(P, y, g, scorer)
        F = scorer(P[keep], y, g) if on == "full" else mean[keep]
        return keep[nondominated(F)]

    return rule


# -- shrunk group rates -------------------------------------------------------------------------
def shrunk_rate(num: np.ndarray, den: np.ndarray, k: float) -> np.ndarray:
    """(num + k·p) / (den + k) per group (axis 1), p = the pooled rate Σnum / Σden over groups:
    the posterior mean under a Beta prior of mean p and strength k."""
    pooled = GroupCounts._ratio(num.sum(axis=1, keepdims=True), den.sum(axis=1, keepdims=True))
    return (num + k * pooled) / (den + k)


def shrunk_metrics(P, y, g, scorer: Scorer, k: float) -> np.ndarray:
    """The scorer's objectives with `dtpr`/`eod` computed from shrunk group rates (error as is)."""
    gc = scorer.counts(P, y, g)
    c = gc.counts  # (m, groups, true, pred)
    cols = []
    for name in scorer.objectives:
        if name == "dtpr":
            t = shrunk_rate(np.einsum("macc->mac", c), c.sum(axis=3), k)
            cols.append((t.max(axis=1) - t.min(axis=1)).mean(axis=1))
        elif name == "eod" and (scorer.pos_label is not None or len(scorer.classes) <= 2):
            p = gc.class_index(scorer.pos())
            neg = np.arange(len(scorer.classes)) != p
            t = shrunk_rate(c[:, :, p, p], c[:, :, p, :].sum(axis=2), k)
            f = shrunk_rate(c[:, :, neg, p].sum(axis=2), c[:, :, neg, :].sum(axis=(2, 3)), k)
            cols.append(np.maximum(t.max(axis=1) - t.min(axis=1), f.max(axis=1) - f.min(axis=1)))
        else:
            cols.append(scorer(P, y, g)[:, scorer.objectives.index(name)])
    return np.column_stack(cols)


def shrunk(k: float = 10.0) -> Rule:
    def rule(P, y, g, scorer: Scorer) -> np.ndarray:
        return nondominated(shrunk_metrics(P, y, g, scorer, k))

    return rule


# -- front thinning -----------------------------------------------------------------------------
def best_hv_subset(F: np.ndarray, ref, K: int) -> np.ndarray:
    """The at most `K` rows of the 2-objective non-dominated set `F` of largest HV, exactly: sorted by
    the first objective, a subset's HV is a sum of rectangles between consecutive members, so a
    dynamic programme over (last member, size) finds it in O(K·n²)."""
    F = np.asarray(F, dtype=float)
    inside = np.flatnonzero(np.all(F < np.asarray(ref, dtype=float), axis=1))
    if len(inside) <= K:
        return inside
    order = inside[np.argsort(F[inside, 0], kind="stable")]
    f1, f2 = F[order, 0], F[order, 1]
    n = len(order)
    width = ref[0] - f1  # (n,)
    best = np.full((K + 1, n), -np.inf)
    back = np.full((K + 1, n), -1)
    best[1] = width * (ref[1] - f2)
    for c in range(2, K + 1):
        for j in range(1, n):
            gain = best[c - 1, :j] + width[j] * (f2[:j] - f2[j])
            p = int(np.argmax(gain))
            best[c, j], back[c, j] = gain[p], p
    c, j = np.unravel_index(int(np.argmax(best)), best.shape)
    chosen = []
    while j >= 0 and c >= 1:
        chosen.append(order[j])
        c, j = c - 1, back[c, j]
    return np.asarray(sorted(chosen), dtype=int)


def thin(K: int = 8) -> Rule:
    def rule(P, y, g, scorer: Scorer) -> np.ndarray:
        F = scorer(P, y, g)
        front = nondominated(F)
        return front[best_hv_subset(F[front], scorer.ref, K)]

    return rule


def parse_rule(spec: str) -> Rule:
    """`plain`, `stability[:threshold[:full|mean]]`, `shrunk[:k]`, `thin[:K]`."""
    expected = f"--front-rule: expected plain, stability[:t[:full|mean]], shrunk[:k] or thin[:K], got {spec!r}"
    name, _, arg = spec.partition(":")
    try:
        if name == "plain" and not arg:
            return plain
        if name == "stability":
            threshold, _, on = arg.partition(":")
            if on in ("", "full", "mean"):
                return stable(float(threshold or 0.5), on or "full")
        if name == "shrunk":
            return shrunk(float(arg or 10))
        if name == "thin":
            return thin(int(arg or 8))
    except ValueError:
        pass
    raise ValueError(expected)
