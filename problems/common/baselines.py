"""Baselines that run in the same run as the evolution (the problem's `after_run` hook):

(a) `vanilla`: N independently seeded heads trained on cross-entropy;
(b) `scalarisation`: heads trained on cross-entropy + λ·(differentiable TPR gap) over a grid of λ;
(c) `threshold`: fairlearn's ThresholdOptimizer (equalized odds / TPR parity) on each vanilla head,
    fitted on the validate split (post-processing needs held-out scores);
(d) with the lora genome, `lora_vanilla` and `lora_scalarisation`: (a) and (b) as LoRA fine-tunes
    of the encoder (lora_baselines.py), so fine-tunes are compared with fine-tunes.

All heads of (a) and (b) start from the same distribution as the evolution's initial population
(`init_weights`) and are trained *together* as one batched population (stacked weights, `bmm`),
which is exactly K independent trainings: the loss is a sum of per-head losses and AdamW acts
element-wise, so no head sees another's gradient. Their budget is matched to the evolution's: each
method gets at least as many training examples (head × epochs × n_train) as all the evolution's
local learning used together, read back from the store. Models are "selected by the same rule"
as the evolved ones (docs/method-definitions.md#one-selection-rule-for-every-method: fairness moves a lot with which epoch is kept): every epoch of
every head is a candidate, as every evaluated individual is for the evolution, and each method's
points are its candidates that are non-dominated on the validate split.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin

from evofair.analysis.metrics import is_near_constant
from evofair.core.indicators import non_dominated
from evofair.core.individual import Weights
from evofair.core.problem import SPLITS
from evofair.core.registry import Args
from evofair.core.seeding import derive_seed
from evofair.problems.common import lora_baselines
from evofair.problems.common.classification import FeatureClassificationProblem, population_logits, stack_heads
from evofair.problems.common.losses import soft_tpr_gap
from evofair.store.safe_io import atomic_write_text

METHODS = ("vanilla", "scalarisation", "threshold")


class BaselineArgs(Args):
    enabled: bool = True
    vanilla: int = Field(8, ge=1, description="(a) number of independently seeded CE heads")
    lambdas: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
        description="(b) weights of the TPR-gap surrogate",
    )
    threshold: list[Literal["equalized_odds", "true_positive_rate_parity"]] = Field(
        default_factory=lambda: ["equalized_odds", "true_positive_rate_parity"], description="(c) constraints"
    )
    epochs: int | None = Field(None, ge=1, description="epochs per head (None: match the evolution's budget)")
    min_epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(128, ge=2)
    lora: lora_baselines.LoraBaselineArgs = Field(
        default_factory=lora_baselines.LoraBaselineArgs,
        description="with the lora genome: LoRA fine-tunes too (lora_baselines.py)",
    )


def train_heads(
    problem: FeatureClassificationProblem,
    inits: Sequence[Weights],
    lambdas: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    on_epoch: Callable[[int, list[Weights]], None] | None = None,
    scalarise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[Weights]:
    """Train K heads at once (see module doc); head k shuffles the data with its own seed.
    `on_epoch(epoch, heads)` sees every head after each epoch (checkpoint evaluation);
    `scalarise(ce, gap, lambdas)` replaces the linear CE + λ·gap with another scalarisation
    (per-head vectors in, per-head losses out)."""
    n_layers = len(problem.sizes) - 1
    params = [t.clone().requires_grad_(True) for pair in stack_heads(inits, n_layers, torch.float32) for t in pair]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    data = problem.splits["train"]
    X, y = data.X, torch.as_tensor(data.y)
    group_values = sorted(set(data.g.tolist()))
    g = torch.as_tensor(np.searchsorted(np.asarray(group_values), data.g))
    lam = torch.tensor(list(lambdas), dtype=torch.float32)
    gens = [torch.Generator().manual_seed(s & 0xFFFFFFFFFFFF) for s in seeds]
    K, N = len(inits), len(data)

    def unstack() -> list[Weights]:
        return [
            {
                name: params[2 * layer + j][k].detach().clone()
                for layer in range(n_layers)
                for j, name in enumerate((f"layers.{layer}.weight", f"layers.{layer}.bias"))
            }
            for k in range(K)
        ]

    for epoch in range(epochs):
        perm = torch.stack([torch.randperm(N, generator=gen) for gen in gens])  # (K, N)
        for i in range(0, N, batch_size):
            idx = perm[:, i : i + batch_size]
            h = X[idx]  # (K, B, d)
            for k in range(n_layers):
                W, b = params[2 * k], params[2 * k + 1]
                h = torch.baddbmm(b[:, None, :], h, W.transpose(1, 2))
                if k < n_layers - 1:
                    h = torch.relu(h)
            yb = y[idx]
            ce = (
                torch.nn.functional.cross_entropy(h.reshape(-1, h.shape[-1]), yb.reshape(-1), reduction="none")
                .view(K, -1)
                .mean(1)
            )
            loss = ce
            if scalarise is not None:
                loss = scalarise(ce, soft_tpr_gap(torch.softmax(h, -1), yb, g[idx], len(group_values)), lam)
            elif bool((lam != 0).any()):
                loss = ce + lam * soft_tpr_gap(torch.softmax(h, -1), yb, g[idx], len(group_values))
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, unstack())
    return unstack()


class _HeadScorer(ClassifierMixin, BaseEstimator):
    """The minimal scikit-learn classifier fairlearn's ThresholdOptimizer(prefit=True) needs:
    `predict_proba` of one head on float64 features (fairlearn 0.15 crashes on float32)."""

    def __init__(self, problem: FeatureClassificationProblem, weights: Weights):
        self.problem, self.weights = problem, weights
        self.classes_ = np.arange(problem.n_classes)

    def fit(self, X, y, **kwargs):
        return self

    def predict_proba(self, X):
        X = torch.as_tensor(np.asarray(X, dtype=np.float64))
        with torch.no_grad():
            logits = population_logits(stack_heads([self.weights], len(self.problem.sizes) - 1), X)[0]
        return torch.softmax(logits, -1).numpy()


def threshold_optimizer(problem, weights: Weights, constraints: str, seed: int) -> dict[str, np.ndarray]:
    """Fit fairlearn's ThresholdOptimizer on val; randomised predictions (seeded) on val and test."""
    from fairlearn.postprocessing import ThresholdOptimizer

    val = problem.splits["val"]
    opt = ThresholdOptimizer(
        estimator=_HeadScorer(problem, weights),
        constraints=constraints,
        objective="accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    )
    opt.fit(val.X.numpy().astype(np.float64), val.y, sensitive_features=val.g)
    return {
        split: np.asarray(
            opt.predict(
                problem.splits[split].X.numpy().astype(np.float64),
                sensitive_features=problem.splits[split].g,
                random_state=seed % (2**32),
            ),
            dtype=np.int64,
        )
        for split in SPLITS
    }


def evolution_budget(store) -> dict[str, float]:
    """Training examples the evolution's local learning consumed, from the stored refine logs."""
    examples, refined = 0, 0
    for ind in store.individuals():
        op = ind.operator
        steps = (op.get("log") or {}).get("refine", {}).get("steps")
        if op.get("refine") and steps:
            refined += 1
            bs = op["refine"].get("args", {}).get("batch_size", 32)
            examples += int(steps) * int(bs)
    return {"examples": float(examples), "refined_models": float(refined)}


def split_metrics(problem, P: dict[str, np.ndarray]) -> list[dict[str, dict[str, float]]]:
    """Per-model {split: {metric: value}} for prediction matrices P[split] (n_models, n_samples)."""
    per = {split: problem.metrics_of_predictions(P[split], split) for split in SPLITS}
    n = len(next(iter(P.values())))
    return [{split: {k: float(v[i]) for k, v in per[split].items()} for split in SPLITS} for i in range(n)]


def _val_selected(problem, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not models:
        return []
    F = problem.minimised({n: np.array([m["metrics"]["val"][n] for m in models]) for n in problem.objective_names})
    return [models[i] for i in non_dominated(F)]


def head_candidates(
    problem, store, recipe, args: BaselineArgs, *, threshold_errors: list[str] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Weights], dict[str, Any], dict[str, float]]:
    """(a), (b) and (c)'s candidates: every epoch of every head, then ThresholdOptimizer on each
    vanilla head's best-val-error checkpoint. Returns (candidates, their head weights by id, the
    budget record, phase timings); reused by problems with more baselines (fairclass). With
    `threshold_errors` (a list), a ThresholdOptimizer that fairlearn refuses (ValueError, e.g. a
    validation group with one label) is skipped and its message appended there; else it raises."""
    timings: dict[str, float] = {}
    n_train = len(problem.splits["train"])
    budget = evolution_budget(store)
    k_min = min(args.vanilla, len(args.lambdas)) if args.lambdas else args.vanilla
    epochs = args.epochs or max(args.min_epochs, math.ceil(budget["examples"] / (k_min * n_train)))
    specs = [("vanilla", f"vanilla-{i}", 0.0, derive_seed(recipe.seed, "vanilla", i)) for i in range(args.vanilla)]
    specs += [
        ("scalarisation", f"scalarisation-lambda{lam:g}", float(lam), derive_seed(recipe.seed, "scal", i))
        for i, lam in enumerate(args.lambdas)
    ]
    candidates: list[dict[str, Any]] = []
    weights: dict[str, Weights] = {}

    def on_epoch(epoch: int, heads: list[Weights]) -> None:
        P = {split: problem.head_predictions(heads, split) for split in SPLITS}
        for k, ((method, mid, lam, seed), metrics) in enumerate(zip(specs, split_metrics(problem, P))):
            cid = f"{mid}@{epoch}"
            weights[cid] = heads[k]
            candidates.append(
                {
                    "method": method,
                    "id": cid,
                    "head": mid,
                    "lambda": lam,
                    "seed": seed,
                    "epoch": epoch,
                    "metrics": metrics,
                    "near_constant_test": bool(is_near_constant(P["test"][k : k + 1])[0]),
                }
            )

    t = time.perf_counter()
    inits = [problem.head_init_weights(s) for *_, s in specs]
    train_heads(
        problem,
        inits,
        [s[2] for s in specs],
        [s[3] for s in specs],
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        on_epoch=on_epoch,
    )
    timings["baselines (a)+(b): train heads (batched), evaluate every epoch"] = time.perf_counter() - t
    t = time.perf_counter()
    candidates += threshold_candidates(problem, recipe, args, candidates, weights, threshold_errors)
    timings["baselines (c): ThresholdOptimizer"] = time.perf_counter() - t
    record = {
        **budget,
        "baseline_epochs_per_head": epochs,
        "baseline_examples_per_method": float(epochs * n_train * k_min),
        "n_train": n_train,
    }
    return candidates, weights, record, timings


def threshold_candidates(
    problem,
    recipe,
    args: BaselineArgs,
    epoch_candidates: list[dict[str, Any]],
    weights: dict[str, Weights],
    threshold_errors: list[str] | None,
) -> list[dict[str, Any]]:
    """(c)'s candidates: ThresholdOptimizer post-processing of each vanilla head's checkpoint with
    the lowest val error, one per constraint in `args.threshold` (post-processing needs a single
    trained model, and the best-val-error epoch is the one a practitioner would ship). A
    ValueError from fairlearn is recorded in `threshold_errors` when it is a list, else raised."""
    out: list[dict[str, Any]] = []
    for i in range(args.vanilla):
        mine = [c for c in epoch_candidates if c.get("head") == f"vanilla-{i}"]
        best = min(mine, key=lambda c: c["metrics"]["val"]["error"])
        for cons in args.threshold:
            seed = derive_seed(recipe.seed, "threshold", i, cons)
            try:
                P = threshold_optimizer(problem, weights[best["id"]], cons, seed)
            except ValueError as exc:
                if threshold_errors is None:
                    raise
                threshold_errors.append(f"ThresholdOptimizer({cons}) skipped, fairlearn refused: {exc}")
                continue
            out.append(
                {
                    "method": "threshold",
                    "id": f"threshold-{cons}-{best['id']}",
                    "constraints": cons,
                    "of": best["id"],
                    "seed": seed,
                    "metrics": split_metrics(problem, {s: P[s][None, :] for s in SPLITS})[0],
                    "near_constant_test": bool(is_near_constant(P["test"][None, :])[0]),
                }
            )
    return out


def select_baselines(
    problem, store, candidates: list[dict[str, Any]], weights: dict[str, Weights], methods: Sequence[str]
) -> list[dict[str, Any]]:
    """Each method's candidates that are non-dominated on validate, a repeated point listed once;
    head models get their weights stored (`weights_hash`)."""
    selected = []
    for method in methods:
        seen = set()
        for m in _val_selected(problem, [c for c in candidates if c["method"] == method]):
            point = tuple(m["metrics"][s][n] for s in SPLITS for n in problem.objective_names)
            if point in seen:  # e.g. the same constant predictor at many epochs: list it once
                continue
            seen.add(point)
            if m["id"] in weights:
                m = {**m, "weights_hash": store.put_weights(weights[m["id"]])}
            selected.append(m)
    return selected


def run_baselines(problem, store, out: Path, recipe, args: BaselineArgs) -> dict[str, float]:
    """Train, evaluate and record every baseline; returns phase timings for the report.

    Every epoch of every head is a candidate checkpoint (as every evaluated individual is for the
    evolution); each method's points are its candidates that are non-dominated on validate."""
    if not args.enabled:
        return {}
    candidates, weights, record, timings = head_candidates(problem, store, recipe, args)
    methods = METHODS + add_lora_candidates(problem, store, recipe, args, candidates, weights, record, timings)
    selected = select_baselines(problem, store, candidates, weights, methods)
    counts = {m: sum(c["method"] == m for c in candidates) for m in methods}
    write_baselines(problem, out, selected, candidates, {**record, "candidates": counts})
    return timings


def add_lora_candidates(
    problem, store, recipe, args: BaselineArgs, candidates: list, weights: dict, record: dict, timings: dict
) -> tuple[str, ...]:
    """With the lora genome, the LoRA fine-tune baselines (lora_baselines.py) join the head ones
    (in place); returns the methods they add."""
    if not lora_baselines.applies(problem, args.lora):
        return ()
    more, more_weights, record["lora"], more_timings = lora_baselines.lora_candidates(
        problem, evolution_budget(store), recipe, args.lora
    )
    candidates += more
    weights.update(more_weights)
    timings.update(more_timings)
    return lora_baselines.LORA_METHODS


def write_baselines(
    problem, out: Path, models: list[dict[str, Any]], candidates: list[dict[str, Any]], budget: dict[str, Any]
) -> None:
    """baselines.csv: the selected points (`method,id,` + front.csv's objective columns);
    baselines.json: the same with all metrics and weights hashes, plus every candidate's metrics."""
    cols = [(n, s) for n in problem.objective_names for s in SPLITS]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["method", "id"] + [f"{n}_{s}" for n, s in cols])
    for m in models:
        w.writerow([m["method"], m["id"]] + [repr(m["metrics"][s][n]) for n, s in cols])
    atomic_write_text(out / "baselines.csv", buf.getvalue(), within=out)  # a fresh temp file: no planted link
    atomic_write_text(
        out / "baselines.json", json.dumps({"budget": budget, "models": models, "candidates": candidates}), within=out
    )


def read_baselines(out: Path) -> dict[str, Any] | None:
    path = Path(out) / "baselines.json"
    return json.loads(path.read_text()) if path.exists() else None
