"""Candidate pools of the pipeline and the sweep, and their fronts under a selection rule.

A pool is every candidate one side could pick from, as predicted classes on the selection rows
(with their labels and groups) and on test. The pipeline's selection rows are the validate split,
or the pooled out-of-fold rows under cross-fitted selection (the scores its search saw); the
sweep's are the validate split. Keeping the pools lets several rules be judged on one training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from selection import Rule, Scorer


@dataclass
class Pool:
    sel: np.ndarray  # (n_candidates, n_selection_rows) predicted classes
    y: np.ndarray
    g: np.ndarray
    test: np.ndarray  # (n_candidates, n_test) predicted classes
    population: np.ndarray  # bool: the candidate is in the final population (the pipeline) / all True

    def subset(self, rows: np.ndarray) -> Pool:
        return Pool(self.sel[rows], self.y, self.g, self.test[rows], self.population[rows])

    def front(self, rule: Rule, scorer: Scorer) -> np.ndarray:
        """Test predictions of the candidates `rule` keeps."""
        return self.test[rule(self.sel, self.y, self.g, scorer)]


def _small(P: np.ndarray) -> np.ndarray:
    return np.asarray(P).astype(np.int16)


def _labels(g) -> np.ndarray:
    """Group labels as a plain array (strings rather than objects: savez stores them without pickle)."""
    g = np.asarray(g)
    return g.astype(str) if g.dtype == object else g


def pipeline_pool(result) -> Pool:
    """Every distinct recipe the run evaluated, flagged when it is in the final population."""
    problem = result.problem
    with result.store() as store:
        inds = store.individuals()
        last = set(store.last_generation()["population"])
    seen: dict[tuple, bool] = {}
    for ind in inds:
        key = tuple(ind.x)
        seen[key] = seen.get(key, False) or ind.id in last
    X = [np.asarray(x, dtype=float) for x in seen]
    if problem.cross_fit is not None:
        cf = problem.cross_fit
        sel = np.concatenate([problem.predictions(a, X, f"cv_out{k}") for k, a in enumerate(cf.fold_anchors)], axis=1)
        y, g = cf.y, cf.g
    else:
        sel = problem.predictions(problem.anchors, X, "val")
        y, g = problem.inner.splits["val"].y, problem.inner.splits["val"].g
    test = problem.predictions(problem.anchors, X, "test")
    return Pool(_small(sel), np.asarray(y), _labels(g), _small(test), np.array(list(seen.values())))


def sweep_pool(inner, val: list[np.ndarray], test: list[np.ndarray], epochs: int) -> Pool:
    """The sweep's candidates of epochs 1..`epochs` (each list entry is one epoch's heads)."""
    data = inner.splits["val"]
    sel, te = np.concatenate(val[:epochs]), np.concatenate(test[:epochs])
    return Pool(_small(sel), np.asarray(data.y), _labels(data.g), _small(te), np.ones(len(sel), bool))


def save(path, pools: dict[str, Pool]) -> None:
    arrays = {f"{name}.{field}": getattr(p, field) for name, p in pools.items() for field in Pool.__dataclass_fields__}
    np.savez_compressed(path, **arrays)


def load(path) -> dict[str, Pool]:
    z = np.load(path, allow_pickle=False)
    names = {k.split(".")[0] for k in z.files}
    return {n: Pool(**{f: z[f"{n}.{f}"] for f in Pool.__dataclass_fields__}) for n in names}
