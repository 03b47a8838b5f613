"""LETOR text-format data (MQ2007/MQ2008, MSLR-WEB10K/30K): loading, padded query groups, NDCG@k.

Lines read ``<rel> qid:<id> <i>:<v> ... #<comment>``; parsing is sklearn's `load_svmlight_file`
(compiled, handles the trailing comments and 1-based feature ids) so a full MSLR fold loads in
seconds. A query becomes one padded group: features [Q, n_max, d] plus a mask of real documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from evofair.errors import UserError


@dataclass(frozen=True)
class LetorRows:
    """One LETOR file: dense features (column j−1 holds feature j), relevance and qid per row."""

    X: np.ndarray
    rel: np.ndarray
    qid: np.ndarray


def load_letor(path: str | Path, n_features: int | None = None, drop_qids: Iterable[int] = ()) -> LetorRows:
    """Read a LETOR file; rows of `drop_qids` (e.g. a truncated query) are removed."""
    from sklearn.datasets import load_svmlight_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: LETOR file not found")
    try:
        X, y, qid = load_svmlight_file(
            str(path), n_features=n_features, query_id=True, zero_based=False, dtype=np.float64
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not in LETOR format 'rel qid:N i:v ... #comment' ({exc})") from None
    if len(y) == 0:
        raise UserError(f"{path}: no rows")
    keep = ~np.isin(qid, np.asarray(list(drop_qids), dtype=qid.dtype))
    return LetorRows(np.asarray(X[keep].todense(), dtype=np.float32), y[keep].astype(np.float32), qid[keep])


def parse_feature_ids(spec: str | Sequence[int]) -> list[int]:
    """'1-40,45' or [1, 2, 3] → sorted 1-based feature ids."""
    if not isinstance(spec, str):
        return sorted({int(i) for i in spec})
    ids: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                ids.update(range(a, b + 1))
            else:
                ids.add(int(part))
        except ValueError:
            raise UserError(f"input_features: expected ranges like '1-40,45', got {spec!r}") from None
    return sorted(ids)


@dataclass
class Groups:
    """Queries as padded groups. `labels[..., 0]` is relevance, `labels[..., 1:]` the auxiliary labels."""

    X: torch.Tensor  # [Q, n, d] float32
    labels: torch.Tensor  # [Q, n, 1 + m] float32
    mask: torch.Tensor  # [Q, n] bool
    qids: np.ndarray  # [Q]
    base: torch.Tensor | None = None  # [Q, n] cached base-model scores

    def __len__(self) -> int:
        return len(self.qids)

    def take(self, idx) -> Groups:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Groups(
            self.X[idx],
            self.labels[idx],
            self.mask[idx],
            self.qids[idx.numpy()],
            None if self.base is None else self.base[idx],
        )


def to_groups(
    rows: LetorRows, input_ids: Sequence[int], aux_ids: Sequence[int], invert_ids: Sequence[int] = ()
) -> Groups:
    """Group rows by qid (first-appearance order); aux features become labels and leave the input.

    An inverted auxiliary label is 1 − v (LETOR 4.0 features are min–max normalised per query, so
    that reads "prefer the smallest", e.g. the shallowest URL).
    """
    d_all = rows.X.shape[1]
    for f in list(input_ids) + list(aux_ids):
        if not 1 <= f <= d_all:
            raise UserError(f"features: id {f} outside 1..{d_all}")
    overlap = set(input_ids) & set(aux_ids)
    if overlap:
        raise UserError(f"input_features: auxiliary features {sorted(overlap)} must be removed from the input")
    uniq, first = np.unique(rows.qid, return_index=True)
    order = uniq[np.argsort(first)]
    members = [np.flatnonzero(rows.qid == q) for q in order]
    n_max = max(len(ix) for ix in members)
    Q, d, m = len(order), len(input_ids), len(aux_ids)
    X = np.zeros((Q, n_max, d), np.float32)
    L = np.zeros((Q, n_max, 1 + m), np.float32)
    M = np.zeros((Q, n_max), bool)
    cols_in = np.asarray(input_ids) - 1
    aux = rows.X[:, np.asarray(aux_ids, dtype=int) - 1] if m else np.zeros((len(rows.rel), 0), np.float32)
    for k, f in enumerate(aux_ids):
        if f in set(invert_ids):
            aux[:, k] = 1.0 - aux[:, k]
    for g, ix in enumerate(members):
        n = len(ix)
        X[g, :n] = rows.X[ix][:, cols_in]
        L[g, :n, 0] = rows.rel[ix]
        L[g, :n, 1:] = aux[ix]
        M[g, :n] = True
    return Groups(torch.from_numpy(X), torch.from_numpy(L), torch.from_numpy(M), order)


# -- NDCG -------------------------------------------------------------------------------------
NoRelevant = Literal["zero", "skip"]


def _dcg_tie_averaged(scores: np.ndarray, gains: np.ndarray, discount: np.ndarray) -> float:
    """DCG where tied scores share the mean gain of their tie group (as sklearn's ndcg_score does)."""
    _, inv, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    mean_gain = np.bincount(inv, weights=gains, minlength=len(counts)) / counts
    ends = np.cumsum(counts)
    cum = np.concatenate([[0.0], np.cumsum(discount)])
    return float(np.sum(mean_gain * (cum[ends] - cum[ends - counts])))


def ndcg_per_query(scores: np.ndarray, gains: np.ndarray, mask: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of each query (linear gains, 1/log2(rank+1) discounts, ties averaged).

    Queries whose documents all have gain 0 get NaN here (no ideal ranking to normalise by);
    `mean_ndcg` decides how they count.
    """
    out = np.full(len(scores), np.nan)
    for q in range(len(scores)):
        real = mask[q]
        s, g = scores[q][real].astype(np.float64), gains[q][real].astype(np.float64)
        n = len(g)
        discount = 1.0 / np.log2(np.arange(n) + 2.0)
        discount[k:] = 0.0
        ideal = float(np.sum(np.sort(g)[::-1] * discount))
        if ideal > 0:
            out[q] = _dcg_tie_averaged(s, g, discount) / ideal
    return out


def mean_ndcg(per_query: np.ndarray, no_relevant: NoRelevant = "zero") -> float:
    """Mean over queries. 'zero' (default) scores a query with no relevant document 0, exactly as
    sklearn.metrics.ndcg_score does; 'skip' leaves such queries out of the mean."""
    if no_relevant == "zero":
        return float(np.mean(np.nan_to_num(per_query, nan=0.0)))
    real = per_query[~np.isnan(per_query)]
    return float(real.mean()) if len(real) else float("nan")
