"""One seed of the study under a front-selection rule (`--front-rule`, selection.py).

The pipeline and the sweep are trained as in `one_seed`; their candidate pools are kept
(pools.py) and each side's front is chosen by the rule, the sweep's also by the study's plain rule,
so a row says both: the pipeline against the sweep selected the same way, and against the sweep
as the study selects it. Pools can be saved, so further rules cost no training (screen_selection.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import search_vs_sweep as svs
from pools import Pool, load, pipeline_pool, save, sweep_pool
from selection import Scorer, parse_rule, plain
from tasks import Task

from evofair.core.indicators import hypervolume


def seed_pools(task: Task, seed: int, args) -> tuple[dict[str, Pool], dict]:
    """Train the pipeline and the sweep of one seed; their pools and what a row reports of them."""
    got: dict[str, Pool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rounds = svs.pipeline(task, seed, args, Path(tmp), on_result=lambda r: got.update(pipeline=pipeline_pool(r)))
    problem, budget, evaluations, front = rounds[-1]
    inner = problem.inner
    per_epoch = len(svs.SWEEP_LAMBDAS) * len(inner.splits["train"])
    equal_epochs = max(1, round(budget / per_epoch))
    keep: dict = {}
    svs.sweep(inner, task, seed, 2 * equal_epochs, keep)
    pools = {
        **got,
        "sweep_equal": sweep_pool(inner, keep["val"], keep["test"], equal_epochs),
        "sweep_double": sweep_pool(inner, keep["val"], keep["test"], 2 * equal_epochs),
    }
    test = inner.splits["test"]
    meta = {
        "task": task.name,
        "seed": seed,
        "budget_pipeline": budget,
        "budget_sweep_equal": equal_epochs * per_epoch,
        "evaluations_pipeline": evaluations,
        "n_classes": int(inner.n_classes),
        "pos_label": None if inner.pos_label is None else int(inner.pos_label),
        "test_y": np.asarray(test.y).tolist(),
        "test_g": np.asarray(test.g).astype(str).tolist(),
        "hv_pipeline_study": hypervolume(svs.objectives(inner, task, front, "test"), task.ref),
    }
    return pools, meta


def cached_pools(task: Task, seed: int, args, cache: Path | None) -> tuple[dict[str, Pool], dict]:
    """`seed_pools`, read from (or written to) `cache`/<task>_seed<seed>.npz when a cache is given."""
    if cache is None:
        return seed_pools(task, seed, args)
    path = cache / f"{task.name}_seed{seed}.npz"
    if path.is_file():
        return load(path), json.loads(path.with_suffix(".json").read_text())
    pools, meta = seed_pools(task, seed, args)
    cache.mkdir(parents=True, exist_ok=True)
    save(path, pools)
    path.with_suffix(".json").write_text(json.dumps(meta))
    return pools, meta


def paired_interval(scorer: Scorer, y, g, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, ref):
    """search_vs_sweep.paired_interval (the same resamples, so the same numbers) on the faster counts."""
    rng = np.random.default_rng(seed)
    n, diffs = a.shape[1], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        diffs.append(
            hypervolume(scorer(a[:, idx], y[idx], g[idx]), ref) - hypervolume(scorer(b[:, idx], y[idx], g[idx]), ref)
        )
    return float(np.percentile(diffs, 5)), float(np.percentile(diffs, 95))


def rule_row(task: Task, pools: dict[str, Pool], meta: dict, spec: str, n_boot: int) -> dict:
    """The benchmark's row for rule `spec` (`rule[@all]`: @all picks from every evaluated recipe,
    else from the final population, the set the study's front comes from)."""
    name, _, where = spec.partition("@")
    rule = parse_rule(name)
    scorer = Scorer(task.objectives, np.arange(meta["n_classes"]), meta["pos_label"], task.ref)
    pipe = pools["pipeline"]
    pipe = pipe if where == "all" else pipe.subset(np.flatnonzero(pipe.population))
    fronts = {
        "pipeline": pipe.front(rule, scorer),
        "pipeline_plain": pipe.subset(np.flatnonzero(pipe.population)).front(plain, scorer),
        "equal": pools["sweep_equal"].front(rule, scorer),
        "double": pools["sweep_double"].front(rule, scorer),
        "equal_plain": pools["sweep_equal"].front(plain, scorer),
        "double_plain": pools["sweep_double"].front(plain, scorer),
    }
    y, g = np.asarray(meta["test_y"]), np.asarray(meta["test_g"])
    hv = {k: hypervolume(scorer(P, y, g), task.ref) for k, P in fronts.items()}
    seed = meta["seed"]
    lo, hi = paired_interval(scorer, y, g, fronts["pipeline"], fronts["equal"], n_boot, seed, task.ref)
    lo_p, hi_p = paired_interval(scorer, y, g, fronts["pipeline"], fronts["equal_plain"], n_boot, seed, task.ref)

    def ratio(a, b):
        return hv[a] / hv[b] if hv[b] else None

    keys = ("task", "seed", "budget_pipeline", "budget_sweep_equal", "evaluations_pipeline", "hv_pipeline_study")
    return {
        "rule": spec,
        **{k: meta[k] for k in keys},
        "hv_pipeline": hv["pipeline"],
        "hv_sweep_equal": hv["equal"],
        "hv_sweep_double": hv["double"],
        "ratio_equal": ratio("pipeline", "equal"),
        "ratio_double": ratio("pipeline", "double"),
        "diff_lo": lo,
        "diff_hi": hi,
        "hv_pipeline_plain": hv["pipeline_plain"],
        "hv_sweep_equal_plain": hv["equal_plain"],
        "hv_sweep_double_plain": hv["double_plain"],
        "ratio_equal_vs_plain_sweep": ratio("pipeline", "equal_plain"),
        "ratio_double_vs_plain_sweep": ratio("pipeline", "double_plain"),
        "diff_lo_vs_plain_sweep": lo_p,
        "diff_hi_vs_plain_sweep": hi_p,
        "ratio_equal_plain_both": ratio("pipeline_plain", "equal_plain"),
        "gain_vs_plain": ratio("pipeline", "pipeline_plain"),
        "n_front": len(fronts["pipeline"]),
        "n_front_sweep_equal": len(fronts["equal"]),
        "n_candidates_pipeline": len(pipe.sel),
        "n_candidates_sweep_equal": len(pools["sweep_equal"].sel),
    }


def ceilings(task: Task, pools: dict[str, Pool], meta: dict) -> dict:
    """Test HV of every candidate of a pool at once (an oracle choosing on test: what no selection
    rule can beat), and each pool's best test error."""
    scorer = Scorer(task.objectives, np.arange(meta["n_classes"]), meta["pos_label"], task.ref)
    y, g = np.asarray(meta["test_y"]), np.asarray(meta["test_g"])
    pipe = pools["pipeline"]
    sides = {"population": pipe.test[pipe.population], "all": pipe.test, "sweep_equal": pools["sweep_equal"].test}
    F = {k: scorer(P, y, g) for k, P in sides.items()}
    return {
        **{f"hv_{k}": hypervolume(f, task.ref) for k, f in F.items()},
        **{f"min_error_{k}": float(f[:, 0].min()) for k, f in F.items()},
    }
