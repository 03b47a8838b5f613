"""Bootstrap confidence intervals of every reported metric, on the test split.

A user who picks a model from a front needs to know which differences are noise: ΔTPR on a few
hundred test bios moves by several points between resamples. Problems that give per-example
outputs (`evofair.core.problem.PerExampleOutputs`) get, for each model, percentile intervals of
every metric they report, and the FaPareto report a paired interval of the hypervolume
difference (front vs baselines) and of the front's error–ΔTPR correlation.

How (docs/metrics.md "Uncertainty"):
- *stratified* resampling: each (group × true class) cell is resampled with replacement to its
  own size, so every resample has the same group and class counts as the test split (a group
  can never vanish, rates keep their denominators' sizes);
- one index matrix (n_boot, n) is drawn once from a seed and reused for every model and every
  set, so intervals are *paired*: a difference between two models is measured on the same
  resamples;
- vectorised: a resample is a vector of example multiplicities w (n,), and the count tensor of
  `evofair.analysis.metrics.GroupCounts` on a resample is w @ one-hot(group, class, prediction), so all
  resamples of all models are one matrix product and every metric comes from the same
  `GroupCounts` code the run itself used (no second implementation to disagree with);
- percentile intervals (numpy's default linear quantile), level 0.9 by default.

Our own code rather than scipy.stats.bootstrap: scipy resamples one statistic at a time, without
strata and without sharing resamples across models, which are the three things needed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.metrics import METRIC_NAMES, GroupCounts
from evofair.core.indicators import hypervolume, non_dominated

DEFAULT_LEVEL = 0.9
DEFAULT_N_BOOT = 1000
INTERVALS_FILE = "intervals.json"
#: metrics that do not depend on the groups (not repeated per sensitive attribute)
GROUP_FREE = ("error", "balanced_error")
#: what `hv_difference_interval` compares the front with (studies/fapareto_vs_baselines/fapareto_vs_baselines.py)
UNION_METHODS = ("vanilla", "scalarisation")


# -- resampling ------------------------------------------------------------------------------
def stratified_indices(y_true, groups, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) example indices: row b resamples each (group, class) cell with replacement to
    its own size, in one draw per cell from `np.random.default_rng(seed)`."""
    y, g = np.asarray(y_true), np.asarray(groups)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(y)), dtype=np.int64)
    y_code = np.unique(y, return_inverse=True)[1].ravel()
    cell = np.unique(g, return_inverse=True)[1].ravel() * (y_code.max(initial=0) + 1) + y_code
    for c in np.unique(cell):
        members = np.flatnonzero(cell == c)
        out[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    return out


def multiplicities(indices: np.ndarray, n: int) -> np.ndarray:
    """(n_boot, n) how often each example occurs in each resample."""
    B = len(indices)
    flat = (indices + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n)


def _counts(w: np.ndarray, P: np.ndarray, y, g, classes: np.ndarray) -> GroupCounts:
    """GroupCounts of every (resample, model): counts[b*m] = w[b] @ one-hot(cell of (g, y, ŷ_m))."""
    group_values = np.unique(g)
    C, G = len(classes), len(group_values)
    yc, gc = np.searchsorted(classes, y), np.searchsorted(group_values, g)
    pc = np.searchsorted(classes, P)
    if not (np.all(classes[np.clip(pc, 0, C - 1)] == P) and np.all(classes[np.clip(yc, 0, C - 1)] == y)):
        raise ValueError("labels outside the declared classes")
    m, n, K = P.shape[0], P.shape[1], G * C * C
    code = (gc * C + yc)[None, :] * C + pc  # (m, n) in [0, K)
    onehot = np.zeros((n, m * K), dtype=np.float32)
    onehot[np.arange(n)[None, :], code + K * np.arange(m)[:, None]] = 1.0
    # float32 is exact here: every partial sum is an integer below n < 2**24
    counts = (w.astype(np.float32) @ onehot).astype(np.float64)
    return GroupCounts(np.rint(counts).reshape(len(w) * m, G, C, C), classes, group_values)


def bootstrap_metrics(
    outputs: Mapping[str, Any], indices: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """{metric: (n_boot, n_models)} on each resample (rows of `indices`) of the examples.

    `outputs` is what `PerExampleOutputs.example_outputs` returns. `names` keeps only those metrics
    (None: every one computed)."""
    y = np.asarray(outputs["y_true"])
    P = np.atleast_2d(np.asarray(outputs["y_pred"]))
    classes = (
        np.asarray(outputs["classes"])
        if outputs.get("classes") is not None
        else np.unique(np.concatenate([y, P.ravel()]))
    )
    pos = outputs.get("pos_label")
    w = multiplicities(np.asarray(indices), len(y))
    B, m = len(w), len(P)
    out: dict[str, np.ndarray] = {}
    groupings = [("", np.asarray(outputs["groups"]))] + [
        (f"_{attr}", np.asarray(labels)) for attr, labels in (outputs.get("groups_by") or {}).items()
    ]
    for suffix, g in groupings:
        values = _counts(w, P, y, g, classes).all(pos)
        for k, v in values.items():
            if suffix and k in GROUP_FREE:
                continue
            if names is None or k + suffix in names:
                out[k + suffix] = v.reshape(B, m)
    return out


def point_metrics(outputs: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The same metrics on the examples as they are (the identity resample): {metric: (n_models,)}."""
    n = len(np.asarray(outputs["y_true"]))
    return {k: v[0] for k, v in bootstrap_metrics(outputs, np.arange(n)[None, :], names).items()}


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the (1 ± level)/2 quantiles over the resamples (axis 0), ignoring NaN resamples."""
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(np.asarray(samples, dtype=float), [a, 1.0 - a], axis=0)
    return lo, hi


def metric_intervals(
    outputs: Mapping[str, Any], indices: np.ndarray, level: float = DEFAULT_LEVEL, names: Sequence[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{metric: (lo (n_models,), hi (n_models,))}, percentile intervals over the resamples."""
    return {k: percentile_interval(v, level) for k, v in bootstrap_metrics(outputs, indices, names).items()}


# -- a run: front and baselines --------------------------------------------------------------
def bootstrap_seed(recipe_seed: int) -> int:
    from evofair.core.seeding import derive_seed

    return derive_seed(recipe_seed, "bootstrap")


def supports_intervals(problem) -> bool:
    from evofair.core.problem import PerExampleOutputs

    return isinstance(problem, PerExampleOutputs)


def split_indices(problem, n_boot: int, seed: int, split: str = "test") -> np.ndarray:
    """The one index matrix of a run: stratified on the test split's groups × classes."""
    ref = problem.example_outputs([], split)
    return stratified_indices(ref["y_true"], ref["groups"], n_boot, seed)


def weights_intervals(
    problem, weights: Sequence[Any], indices: np.ndarray, level: float, names: Sequence[str] | None = None
) -> list[dict[str, list[float]]]:
    """Per model: {metric: [lo, hi]} on test."""
    if not weights:
        return []
    ivs = metric_intervals(problem.example_outputs(list(weights), "test"), indices, level, names)
    return [{k: [float(lo[j]), float(hi[j])] for k, (lo, hi) in ivs.items()} for j in range(len(weights))]


def run_intervals(
    problem, store, front, out: Path, *, level: float, n_boot: int, seed: int, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Intervals of every front model and every stored baseline head (baselines.json's models with
    weights); written to `intervals.json` by the report. Baselines without weights (fairlearn's
    ThresholdOptimizer, randomised) get none."""
    from evofair.analysis.run_reader import genomes

    idx = split_indices(problem, n_boot, seed)
    front_w = genomes(store, front) or []  # weights, or a vector genome's x
    doc: dict[str, Any] = {
        "split": "test",
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "method": "percentile bootstrap, stratified by group x class, paired across models",
        "models": dict(zip([i.id for i in front], weights_intervals(problem, front_w, idx, level, names))),
        "baselines": {},
    }
    base = _read_baselines(out)
    if base is not None:
        heads = [m for m in base.get("models", []) if m.get("weights_hash")]
        ws = [store.get_weights(m["weights_hash"]) for m in heads]
        doc["baselines"] = dict(zip([m["id"] for m in heads], weights_intervals(problem, ws, idx, level, names)))
    return doc


def read_intervals(run_dir: str | Path) -> dict[str, Any] | None:
    """intervals.json of a run, or None (problem without per-example outputs, or an older run)."""
    path = Path(run_dir) / INTERVALS_FILE
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("models"), dict) else None


def _read_baselines(out: Path) -> dict[str, Any] | None:
    path = Path(out) / "baselines.json"
    return json.loads(path.read_text()) if path.exists() else None


# -- front vs baselines: paired HV difference and the error–ΔTPR correlation -------------------
def _minimised_samples(problem, samples: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n_boot, n_models, n_obj) minimised objectives on each resample."""
    return np.stack([samples[o.name] * o.sign for o in problem.objectives], axis=-1)


def _val_non_dominated(problem, rows: Sequence[Mapping[str, Mapping[str, float]]]) -> list[int]:
    if not rows:
        return []
    F = problem.minimised({n: np.array([r["val"][n] for r in rows]) for n in problem.objective_names})
    return non_dominated(F).tolist()


def hv_samples(problem, samples: Mapping[str, np.ndarray], ref) -> np.ndarray:
    """Test HV of a set of models on each resample (pymoo's indicator, as evofair.core.indicators), from
    its bootstrap metrics {objective: (n_boot, n_models)}."""
    F = _minimised_samples(problem, samples)
    if F.shape[1] == 0:
        return np.zeros(len(F))
    return np.array([hypervolume(F[b], ref) for b in range(len(F))])


def set_samples(problem, weights: Sequence[Any], indices: np.ndarray) -> dict[str, np.ndarray]:
    """The objectives of a set of models on each resample: {objective: (n_boot, n_models)} (one
    `example_outputs` call per set: a LoRA genome costs an encoder pass)."""
    names = problem.objective_names
    if not weights:
        return {n: np.zeros((len(indices), 0)) for n in names}
    return bootstrap_metrics(problem.example_outputs(list(weights), "test"), indices, names)


def pearson_samples(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r across models (axis 1) on each resample; NaN where either is constant."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def front_vs_union(
    problem,
    front_weights: Sequence[Any],
    front_rows,
    union_weights: Sequence[Any],
    union_rows,
    ref,
    indices: np.ndarray,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Paired bootstrap of HV(front) − HV(union) on test, and of the front's Pearson correlation of
    its first two objectives. Each set is first reduced to its val-non-dominated members (stored
    `rows[k]["val"]` metrics); HV points are the stored test metrics, intervals the resamples'."""
    fk, uk = _val_non_dominated(problem, front_rows), _val_non_dominated(problem, union_rows)
    fw, uw = [front_weights[k] for k in fk], [union_weights[k] for k in uk]
    names = problem.objective_names

    def point(rows, keep):
        if not keep:
            return 0.0
        return hypervolume(problem.minimised({n: np.array([rows[k]["test"][n] for k in keep]) for n in names}), ref)

    hv_f, hv_u = point(front_rows, fk), point(union_rows, uk)
    S = set_samples(problem, fw, indices)
    d = hv_samples(problem, S, ref) - hv_samples(problem, set_samples(problem, uw, indices), ref)
    lo, hi = percentile_interval(d, level)
    out = {"hv_front": hv_f, "hv_union": hv_u, "diff": hv_f - hv_u, "lo": float(lo), "hi": float(hi)}
    if len(fw) >= 3 and len(names) >= 2:
        r = pearson_samples(S[names[0]], S[names[1]])
        clo, chi = percentile_interval(r, level) if np.isfinite(r).any() else (np.nan, np.nan)
        out.update(corr_lo=float(clo), corr_hi=float(chi), corr_undefined=int((~np.isfinite(r)).sum()))
    return out


def _rebuild_problem(root: Path, trust_code: bool = False):
    """The run's problem from its config.yaml (as evofair.api.build_problem does; not imported from
    there, since the report, which api imports, imports this module). A `module:Class` problem is
    imported only with `trust_code`: the folder may come from anyone."""
    from evofair.core.plugins import code_trust, registry
    from evofair.errors import UserError
    from evofair.lifecycle.rebuild import with_base_dir
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    if not (root / "config.yaml").exists():
        raise UserError(f"{root}: not a finished run directory (no config.yaml)")
    recipe = Recipe.model_validate(read_recipe_file(root / "config.yaml"))
    with code_trust(trust_code, root / "config.yaml"):
        spec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
    problem = spec.fn(spec.parse_args(recipe.problem.args, "problem.args"), data_root=recipe.data_root)
    return with_base_dir(problem, recipe.base_dir), recipe


def _front_ids(root: Path) -> list[str]:
    """The final front's ids as the report wrote them (front.csv)."""
    import csv

    from evofair.errors import UserError

    try:
        with open(root / "front.csv", newline="") as fh:
            return [row["id"] for row in csv.DictReader(fh)]
    except (FileNotFoundError, KeyError):
        raise UserError(f"{root}/front.csv: missing or without an id column (is the run finished?)") from None


def hv_difference_interval(
    run_dir,
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    methods: Sequence[str] = UNION_METHODS,
    trust_code: bool = False,
) -> dict:
    """Paired-bootstrap interval of test HV(front) − HV(union of the baselines) of a finished
    FaPareto run (`biasbios`): the final front vs every epoch of every (a) vanilla and (b)
    scalarisation head, each set reduced to its val-non-dominated members, reference point the
    run's (0.25, 0.25 by default) — the sets of studies/fapareto_vs_baselines/fapareto_vs_baselines.py. `methods`
    names other baselines to unite instead (e.g. the LoRA fine-tunes, `lora_baselines.LORA_METHODS`).
    Returns {hv_front, hv_union, diff, lo, hi}; `seed` seeds the resamples; `trust_code` as in
    `evofair.load`."""
    from evofair.errors import UserError
    from evofair.store.run_store import RunStore

    root = Path(run_dir)
    problem, recipe = _rebuild_problem(root, trust_code)
    if not supports_intervals(problem):
        raise UserError(f"{root}: problem {problem.name!r} gives no per-example outputs (no intervals)")
    base = _read_baselines(root)
    if base is None:
        raise UserError(f"{root}: no baselines.json (a run with problem.args.baselines.enabled)")
    front_ids = _front_ids(root)
    problem.ensure_setup()
    ref = tuple(recipe.hv_ref or problem.default_hv_ref)
    store = RunStore(root, readonly=True)
    try:
        front = store.individuals(front_ids)
        union = [m for m in base["models"] if m["method"] in methods and m.get("weights_hash")]
        if not union:
            raise UserError(f"{root}: baselines.json has no stored model of {', '.join(methods)}")
        no_weights = [i.id for i in front if i.weights_hash is None]
        if no_weights:
            raise UserError(f"{root}: front model(s) {', '.join(no_weights)} have no stored weights")
        fw = [store.get_weights(i.weights_hash) for i in front if i.weights_hash is not None]
        uw = [store.get_weights(m["weights_hash"]) for m in union]
    finally:
        store.close()
    res = front_vs_union(
        problem,
        fw,
        [i.metrics for i in front],
        uw,
        [m["metrics"] for m in union],
        ref,
        split_indices(problem, n_boot, seed),
        level,
    )
    return {k: float(res[k]) for k in ("hv_front", "hv_union", "diff", "lo", "hi")}


__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_N_BOOT",
    "METRIC_NAMES",
    "stratified_indices",
    "multiplicities",
    "bootstrap_metrics",
    "point_metrics",
    "percentile_interval",
    "metric_intervals",
    "run_intervals",
    "read_intervals",
    "front_vs_union",
    "hv_difference_interval",
    "pearson_samples",
]
