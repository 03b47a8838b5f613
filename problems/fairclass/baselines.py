"""Baselines of `fair_classification`, trained and scored in the same run as the evolution.

Methods (each a set of candidate models; its points = its candidates non-dominated on validate,
scored on test — the selection rule of FaPareto's report, docs/method-definitions.md#one-selection-rule-for-every-method):

- `vanilla`, `scalarisation`, `threshold`: FaPareto's (a), (b), (c) (problems/common/baselines.py),
  reused as they are: heads on CE and on CE + λ·soft TPR gap with the evolution's training budget
  (counted from the store), every epoch a candidate; ThresholdOptimizer on each vanilla head.
- `exponentiated_gradient`: fairlearn's ExponentiatedGradient, one candidate per (constraint, eps);
- `grid_search`: fairlearn's GridSearch, one candidate per point of its grid of Lagrange multipliers.

The reductions use a scikit-learn LogisticRegression (it takes `sample_weight`, which the reductions
need) on the problem's own features in float64 (fairlearn 0.15 fails on float32), with the
intersectional groups as the sensitive feature. Only ThresholdOptimizer reads the sensitive
attribute at prediction time (`uses_sensitive_at_prediction`), so it stays out of the "fair
comparison" unions of the report. fairlearn's reductions and post-processing are binary: for a
multi-class target they are skipped and the skip is recorded (run events, baselines.json `notes`).

`eps` is both the constraint's `difference_bound` (the allowed gap: in fairlearn ≥ 0.5 the moment
holds the bound) and ExponentiatedGradient's `eps` (the L1 bound B = 1/eps of the multipliers), as
one knob: fairlearn's own default pairs them (both 0.01).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from evofair.analysis.metrics import is_near_constant
from evofair.core.problem import SPLITS
from evofair.core.seeding import derive_seed
from evofair.problems.common.baselines import (
    BaselineArgs,
    add_lora_candidates,
    head_candidates,
    select_baselines,
    split_metrics,
    write_baselines,
)
from evofair.problems.common.lora_baselines import LORA_METHODS
from evofair.store.safe_io import atomic_write_bytes

HEAD_METHODS = ("vanilla", "scalarisation", "threshold")
REDUCTION_METHODS = ("exponentiated_gradient", "grid_search")
METHODS = HEAD_METHODS + REDUCTION_METHODS + LORA_METHODS  # LoRA fine-tunes: model.kind lora only
USES_SENSITIVE_AT_PREDICTION = {
    "vanilla": False,
    "scalarisation": False,
    "threshold": True,
    "exponentiated_gradient": False,
    "grid_search": False,
    "lora_vanilla": False,
    "lora_scalarisation": False,
}
PREDICTIONS_FILE = "baseline_predictions.safetensors"
LR_MAX_ITER = 1000  # the reference LogisticRegression of `reference_errors`
REDUCTIONS_PHASE = "baselines: fairlearn reductions (ExponentiatedGradient, GridSearch)"
Constraint = Literal["equalized_odds", "demographic_parity", "true_positive_rate_parity"]


class FairBaselineArgs(BaselineArgs):
    """FaPareto's (a)–(c) plus fairlearn's reductions over an eps grid."""

    threshold: list[Constraint] = Field(
        default_factory=lambda: ["equalized_odds", "demographic_parity", "true_positive_rate_parity"],
        description="(c) ThresholdOptimizer constraints (binary targets only)",
    )
    reductions: list[Constraint] = Field(
        default_factory=lambda: ["equalized_odds", "demographic_parity", "true_positive_rate_parity"],
        description="fairlearn reductions' constraints (binary targets only)",
    )
    eps: list[float] = Field(
        default_factory=lambda: [0.01, 0.05],
        min_length=1,
        description="ExponentiatedGradient: one model per eps (constraint bound and eps)",
    )
    expgrad: bool = Field(True, description="run ExponentiatedGradient")
    expgrad_max_iter: int = Field(
        10,
        ge=1,
        description="ExponentiatedGradient max_iter (fairlearn's default: 50; "
        "10 keeps Adult's run short, docs/fair-classification.md)",
    )
    grid_search: bool = Field(True, description="run GridSearch")
    grid_size: int = Field(10, ge=2, description="GridSearch grid_size (Lagrange multipliers; fairlearn's default)")
    grid_limit: float = Field(2.0, gt=0, description="GridSearch grid_limit (fairlearn's default)")
    lr_C: float = Field(1.0, gt=0, description="LogisticRegression C of the reductions' base estimator")
    lr_max_iter: int = Field(200, ge=10, description="LogisticRegression max_iter")
    lr_solver: Literal["newton-cholesky", "lbfgs", "liblinear"] = Field(
        "newton-cholesky",
        description="LogisticRegression solver (newton-cholesky: fastest when rows >> features, "
        "e.g. one-hot tables; lbfgs for very wide features)",
    )
    n_jobs: int = Field(
        2,
        ge=1,
        description="processes for the reductions' fits (each fit is seeded, so the result does not depend on it)",
    )


def _moment(name: str, bound: float | None = None):
    from fairlearn.reductions import DemographicParity, EqualizedOdds, TruePositiveRateParity

    cls = {
        "equalized_odds": EqualizedOdds,
        "demographic_parity": DemographicParity,
        "true_positive_rate_parity": TruePositiveRateParity,
    }[name]
    return cls() if bound is None else cls(difference_bound=bound)


def _base_estimator(args: FairBaselineArgs, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=args.lr_C, solver=args.lr_solver, max_iter=args.lr_max_iter, random_state=seed % (2**32)
    )


def positive_class(problem) -> int:
    """The class index fairlearn's binary 1 stands for (metrics' default: the largest class)."""
    return int(problem.n_classes - 1 if problem.pos_label is None else problem.pos_label)


def reduction_candidates(
    problem, recipe, args: FairBaselineArgs
) -> tuple[list[dict[str, Any]], dict[str, dict[str, np.ndarray]], dict[str, float], dict[str, float]]:
    """ExponentiatedGradient per (constraint, eps) and every GridSearch predictor per constraint:
    (candidates, their predictions {id: {split: classes}}, phase timings, CPU seconds per method).
    Binary targets only."""
    pos = positive_class(problem)
    neg = 1 - pos
    X = {s: problem.splits[s].X.numpy().astype(np.float64) for s in ("train", *SPLITS)}
    train = problem.splits["train"]
    y01 = (np.asarray(train.y) == pos).astype(np.int64)
    candidates: list[dict[str, Any]] = []
    preds: dict[str, dict[str, np.ndarray]] = {}

    def add(method: str, cid: str, P: dict[str, np.ndarray], **info) -> None:
        P = {s: np.where(P[s] == 1, pos, neg).astype(np.int64) for s in SPLITS}  # back to class indices
        preds[cid] = P
        candidates.append(
            {
                "method": method,
                "id": cid,
                **info,
                "uses_sensitive_at_prediction": False,
                "metrics": split_metrics(problem, {s: P[s][None, :] for s in SPLITS})[0],
                "near_constant_test": bool(is_near_constant(P["test"][None, :])[0]),
            }
        )

    tasks = [
        ("exponentiated_gradient", cons, i, eps)
        for cons in (args.reductions if args.expgrad else [])
        for i, eps in enumerate(args.eps)
    ]
    tasks += [("grid_search", cons, 0, None) for cons in (args.reductions if args.grid_search else [])]
    t = time.perf_counter()
    if args.n_jobs > 1 and len(tasks) > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=min(args.n_jobs, len(tasks)))(
            delayed(_fit_reduction)(task, recipe.seed, args, X, y01, train.g) for task in tasks
        )
    else:
        results = [_fit_reduction(task, recipe.seed, args, X, y01, train.g) for task in tasks]
    timings = {REDUCTIONS_PHASE: time.perf_counter() - t}
    cpu: dict[str, float] = {}
    for (method, *_), models in zip(tasks, results):
        for cid, P, info in models:
            cpu[method] = cpu.get(method, 0.0) + info.pop("cpu_seconds", 0.0)
            add(method, cid, P, **info)
    return candidates, preds, timings, cpu


def _fit_reduction(task, run_seed: int, args: FairBaselineArgs, X, y01, groups) -> list[tuple[str, dict, dict]]:
    """One ExponentiatedGradient (constraint, eps) or one GridSearch (constraint): [(id, {split:
    0/1 predictions}, info)]. A pure function of its inputs (seeded), so it may run in any process."""
    from fairlearn.reductions import ExponentiatedGradient, GridSearch
    from threadpoolctl import threadpool_limits

    method, cons, i, eps = task
    t = time.process_time()
    with warnings.catch_warnings(), threadpool_limits(1):  # 1 BLAS thread: fits run side by side
        warnings.filterwarnings("ignore", module="fairlearn")  # fairlearn 0.15 + pandas 3: deprecation noise
        if method == "exponentiated_gradient":
            seed = derive_seed(run_seed, "expgrad", cons, i)
            eg = ExponentiatedGradient(
                _base_estimator(args, seed), constraints=_moment(cons, eps), eps=eps, max_iter=args.expgrad_max_iter
            )
            eg.fit(X["train"], y01, sensitive_features=groups)
            P = {
                s: np.asarray(eg.predict(X[s], random_state=derive_seed(seed, "predict", s) % (2**32))) for s in SPLITS
            }
            return [
                (
                    f"expgrad-{cons}-eps{eps:g}",
                    P,
                    {
                        "constraints": cons,
                        "eps": float(eps),
                        "seed": seed,
                        "oracle_calls": int(eg.n_oracle_calls_),
                        "cpu_seconds": time.process_time() - t,
                    },
                )
            ]
        seed = derive_seed(run_seed, "gridsearch", cons)
        gs = GridSearch(
            _base_estimator(args, seed), constraints=_moment(cons), grid_size=args.grid_size, grid_limit=args.grid_limit
        )
        gs.fit(X["train"], y01, sensitive_features=groups)
        out = [
            (
                f"gridsearch-{cons}-{j}",
                {s: np.asarray(pr.predict(X[s])) for s in SPLITS},
                {"constraints": cons, "grid_index": j, "seed": seed},
            )
            for j, pr in enumerate(gs.predictors_)
        ]
        out[0][2]["cpu_seconds"] = time.process_time() - t
        return out


def _head_predictions(problem, store, model: dict[str, Any]) -> dict[str, np.ndarray] | None:
    if "weights_hash" not in model:
        return None
    w = store.get_weights(model["weights_hash"])
    if model["method"] in LORA_METHODS:  # a LoRA genome (adapters + head), not a head on frozen features
        return {s: problem.predictions([w], s)[0] for s in SPLITS}
    return {s: problem.predictions_of_head(w, s) for s in SPLITS}


def write_predictions(out: Path, preds: dict[str, dict[str, np.ndarray]]) -> None:
    """The selected models' predicted classes per split (`<id>/<split>`), so their metrics can be
    recomputed and their per-group numbers shown without re-fitting anything."""
    tensors = {
        f"{cid}/{s}": torch.from_numpy(np.ascontiguousarray(P[s], dtype=np.int32))
        for cid, P in preds.items()
        for s in SPLITS
    }
    atomic_write_bytes(out / PREDICTIONS_FILE, st_save(tensors), within=out)  # a fresh temp file: no planted link


def read_predictions(out: Path) -> dict[str, dict[str, np.ndarray]]:
    path = Path(out) / PREDICTIONS_FILE
    if not path.exists():
        return {}
    out_: dict[str, dict[str, np.ndarray]] = {}
    for key, t in load_file(str(path)).items():
        cid, split = key.rsplit("/", 1)
        out_.setdefault(cid, {})[split] = t.numpy().astype(np.int64)
    return out_


def _warm_start_examples(problem) -> int:
    """The examples the warm start of θ₀ took, for a problem that has one (FairClassification)."""
    count = getattr(problem, "warm_start_examples", None)
    return int(count()) if callable(count) else 0


def run_fair_baselines(problem, store, out: Path, recipe, args: FairBaselineArgs) -> dict[str, float]:
    """Every baseline of the module doc, recorded in baselines.csv/json (FaPareto's format, plus each
    model's `uses_sensitive_at_prediction`) and their predictions; returns phase timings."""
    if not args.enabled:
        return {}
    out = Path(out)
    notes: list[str] = []
    binary = problem.n_classes == 2
    head_args = args if binary else args.model_copy(update={"threshold": []})
    if not binary and (args.threshold or args.reductions):
        notes.append(
            f"{problem.n_classes}-class target: fairlearn's ThresholdOptimizer, ExponentiatedGradient and "
            "GridSearch are binary-only, so they were skipped; the baselines are (a) and (b)."
        )
    refused: list[str] = []
    candidates, weights, record, timings = head_candidates(problem, store, recipe, head_args, threshold_errors=refused)
    notes += sorted(set(refused))
    add_lora_candidates(problem, store, recipe, args, candidates, weights, record, timings)
    for c in candidates:
        c["uses_sensitive_at_prediction"] = USES_SENSITIVE_AT_PREDICTION[c["method"]]
    preds: dict[str, dict[str, np.ndarray]] = {}
    cpu: dict[str, float] = {}
    if binary and args.reductions and (args.expgrad or args.grid_search):
        more, preds, t_more, cpu = reduction_candidates(problem, recipe, args)
        candidates += more
        timings.update(t_more)
    for note in notes:
        store.log_event("note", note)
    selected = select_baselines(problem, store, candidates, weights, METHODS)
    sel_preds = {}
    for m in selected:
        sel_preds[m["id"]] = preds.get(m["id"]) or _head_predictions(problem, store, m) or {}
    threshold_ids = [m["id"] for m in selected if m["method"] == "threshold"]
    if threshold_ids:  # ThresholdOptimizer's randomised predictions: re-made with the same seeds
        from evofair.problems.common.baselines import threshold_optimizer

        for m in selected:
            if m["method"] == "threshold":
                sel_preds[m["id"]] = threshold_optimizer(problem, weights[m["of"]], m["constraints"], m["seed"])
    write_predictions(out, {k: v for k, v in sel_preds.items() if v})
    counts = {m: sum(c["method"] == m for c in candidates) for m in METHODS}
    settings = {
        "eps": list(args.eps),
        "reductions": list(args.reductions) if binary else [],
        "expgrad": args.expgrad and binary,
        "expgrad_max_iter": args.expgrad_max_iter,
        "grid_search": args.grid_search and binary,
        "grid_size": args.grid_size,
        "grid_limit": args.grid_limit,
        "base_estimator": (
            f"LogisticRegression(C={args.lr_C:g}, solver={args.lr_solver}, max_iter={args.lr_max_iter})"
        ),
        "n_jobs": args.n_jobs,
        "cpu_seconds": cpu,
        "threshold": list(head_args.threshold),
    }
    write_baselines(
        problem,
        out,
        selected,
        candidates,
        {
            **record,
            "warm_start_examples": _warm_start_examples(problem),
            "candidates": counts,
            "fairlearn": settings,
            "seconds": dict(timings),
            "notes": notes,
        },
    )
    return timings


def reference_errors(problem) -> dict[str, dict[str, float]]:
    """{reference: {split: error}} on val and test for two references every front should reach at
    its accurate end, on the run's own split and features: the constant predictor (the training
    split's majority class) and a plain scikit-learn LogisticRegression (its defaults, `max_iter`
    raised so it converges)."""
    from sklearn.linear_model import LogisticRegression

    train = problem.splits["train"]
    y_train = np.asarray(train.y)
    majority = int(np.bincount(y_train).argmax())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on badly scaled user tables
        lr = LogisticRegression(max_iter=LR_MAX_ITER).fit(train.X.numpy().astype(np.float64), y_train)
    out: dict[str, dict[str, float]] = {"constant": {}, "logistic_regression": {}}
    for split in SPLITS:
        data = problem.splits[split]
        y = np.asarray(data.y)
        out["constant"][split] = float(np.mean(y != majority))
        out["logistic_regression"][split] = float(np.mean(lr.predict(data.X.numpy().astype(np.float64)) != y))
    return out
