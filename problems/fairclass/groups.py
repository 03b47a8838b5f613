"""Protected groups: intersections of the sensitive columns, small ones merged into "other".

Why merge: a fairness gap over a group of five people is noise, and a group absent from the
validation or test split makes every gap undefined there. Group sizes are counted on the
training split only (the split the models learn from), and the same merge applies to val/test.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evofair.analysis.metrics import intersectional_groups
from evofair.errors import UserError

OTHER = "other"
SEPARATOR = "|"


def intersect(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """One label per row: the sensitive values joined in the order given ("Female|Black"), as
    evofair.analysis.metrics forms fairlearn's intersectional groups."""
    try:
        return intersectional_groups(list(columns.values()), sep=SEPARATOR)
    except UserError as exc:
        raise UserError(f"problem.args.{exc}") from None


def merge_small(labels: Mapping[str, np.ndarray], min_size: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """({split: labels with every group under `min_size` training rows renamed OTHER},
    {merged group: its training count}). Groups seen only outside train count 0."""
    if min_size <= 0:
        return {s: np.asarray(v).astype(str) for s, v in labels.items()}, {}
    values, counts = np.unique(np.asarray(labels["train"]).astype(str), return_counts=True)
    train_count = dict(zip(values.tolist(), counts.tolist()))
    seen = sorted(set().union(*(set(np.asarray(v).astype(str).tolist()) for v in labels.values())))
    small = {g: int(train_count.get(g, 0)) for g in seen if train_count.get(g, 0) < min_size}
    if not small:
        return {s: np.asarray(v).astype(str) for s, v in labels.items()}, {}
    out = {}
    for split, v in labels.items():
        v = np.asarray(v).astype(object)
        out[split] = np.where(np.isin(v, list(small)), OTHER, v).astype(str)
    return out, small


def check_groups_in_every_split(labels: Mapping[str, np.ndarray], field: str, merged: bool) -> None:
    """Every group has rows in train, val and test: a gap over an absent group is undefined."""
    groups = sorted(set().union(*(set(v.tolist()) for v in labels.values())))
    for split, v in labels.items():
        present = set(v.tolist())
        for g in groups:
            if g not in present:
                counts = ", ".join(f"{s} {int(np.sum(x == g))}" for s, x in labels.items())
                hint = "" if merged else "; set min_group_size to merge small groups into 'other'"
                raise UserError(f"problem.args.{field}: group {g!r} has no rows in the {split} split ({counts}){hint}")


def group_counts(labels: Mapping[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """{group: {split: rows}} for describe() and the report."""
    groups = sorted(set().union(*(set(v.tolist()) for v in labels.values())))
    return {g: {s: int(np.sum(v == g)) for s, v in labels.items()} for g in groups}
