"""Train/val/test rows: from a column that names each row's split, or a seeded stratified random split.

The random split is sklearn's `train_test_split` twice (test first, then val from the rest),
stratified on target × sensitive group where every stratum allows it: strata too small to
reach every split are pooled per target value, and if sklearn still refuses, the split is
stratified on the target alone, then not at all. Which one was used is reported.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from evofair.errors import UserError

SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def split_from_column(column: pd.Series, name: str) -> dict[str, np.ndarray]:
    """Row indices per split from a column of train/val/validate/test values."""
    if column.isna().any():
        raise UserError(
            f"problem.args.split.column: column {name!r} has {int(column.isna().sum())} rows without a split name"
        )
    words = column.astype(str).str.strip().str.lower()
    unknown = sorted(set(words) - set(SPLIT_WORDS))
    if unknown:
        raise UserError(
            f"problem.args.split.column: column {name!r} has value {unknown[0]!r}; "
            "expected train, val (or validate) and test"
        )
    mapped = words.map(SPLIT_WORDS).to_numpy()
    out = {s: np.flatnonzero(mapped == s) for s in ("train", "val", "test")}
    for s, idx in out.items():
        if len(idx) == 0:
            raise UserError(f"problem.args.split.column: column {name!r} names no {s} rows")
    return out


def random_split(
    y: np.ndarray, g: np.ndarray, *, val: float, test: float, seed: int, stratify: list[str]
) -> tuple[dict[str, np.ndarray], str]:
    """({split: row indices, sorted}, the stratification actually used)."""
    n = len(y)
    smallest = min(val, test, 1.0 - val - test)
    need = max(2, math.ceil(1.0 / smallest))  # rows a stratum needs to expect one in every split
    candidates = []
    if "target" in stratify and "sensitive" in stratify:
        candidates.append(("target x sensitive", _pooled(y.astype(str) + "\x1f" + g.astype(str), y, need)))
    elif "sensitive" in stratify:
        candidates.append(("sensitive", _pooled(g.astype(str), np.zeros(n, dtype=int), need)))
    if "target" in stratify:
        candidates.append(("target", y.astype(str)))
    candidates.append(("none", None))
    idx = np.arange(n)
    for label, strata in candidates:
        try:
            rest, te = train_test_split(idx, test_size=test, random_state=seed, stratify=strata)
            tr, va = train_test_split(
                rest, test_size=val / (1.0 - test), random_state=seed, stratify=None if strata is None else strata[rest]
            )
        except ValueError:  # a stratum with one member or fewer rows than strata in a split
            continue
        return {"train": np.sort(tr), "val": np.sort(va), "test": np.sort(te)}, label
    raise UserError(f"problem.args.split: cannot split {n} rows into val {val} and test {test}")


def _pooled(strata: np.ndarray, y: np.ndarray, need: int) -> np.ndarray:
    """Strata with fewer than `need` rows pooled into one stratum per target value; if one of those
    pools is still too small, all of them into one stratum."""
    strata = np.asarray(strata).astype(str)
    values, counts = np.unique(strata, return_counts=True)
    small = values[counts < need]
    if not len(small):
        return strata
    is_small = np.isin(strata, small)
    strata = np.where(is_small, np.char.add("rare\x1f", y.astype(str)), strata).astype(str)
    _, pool_counts = np.unique(strata[is_small], return_counts=True)
    if pool_counts.min() < need:
        strata = np.where(is_small, "rare", strata).astype(str)
    return strata


def splits_about(info: dict) -> dict[str, object]:
    """What splits.json's row numbers refer to: the data as read (its path or in-memory fingerprint,
    sha256), how the split was made, and which columns `data.derive` added before it."""
    return {
        "rows": "0-based row positions in the data as read (header excluded), before data.derive and drop_missing",
        "data": info.get("data"),
        "split": info.get("split"),
        "derived": info.get("derived", []),
        "dropped_missing": info.get("dropped_missing", 0),
    }
