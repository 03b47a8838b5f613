"""Like-for-like baselines for the LoRA genome: LoRA fine-tunes, not heads on frozen features.

When the genome is `lora` (biasbios `genome: lora`, fair_classification `model.kind: lora`), the
evolution fine-tunes the encoder, so comparing it only with heads trained on the frozen encoder's
features (baselines.py) mixes two model classes. These baselines are LoRA fine-tunes made with the
problem's own training contract — `init_weights` (zero deltas + a head drawn as the evolution's
initial population is), `build_model` (a fresh peft adapter of the recipe's rank on the same
target modules), `train_batches`, `loss`, `extract_weights` — and the evolution's optimiser, lr,
weight decay and batch size (the recipe's `sft` refine arguments):

- `lora_vanilla` ("LoRA CE"): N independently seeded fine-tunes on cross-entropy;
- `lora_scalarisation` ("LoRA CE+λ·gap"): one fine-tune per λ on CE + λ·(soft TPR gap). λ is set
  as the head's fairness weight, which the problem's loss multiplies the same surrogate by
  (`ce + relu(w)·soft_tpr_gap`, losses.py), so it is the head baselines' (b) loss; without the
  weight the loss is plain CE (`lora_vanilla`).

Budget and selection as for the head baselines: each method gets at least as many training
examples (fine-tunes × epochs × n_train) as all of the evolution's local learning used, read back
from the store, and every epoch of every fine-tune is a candidate; a method's points are its
candidates non-dominated on validate (`select_baselines`). Each fine-tune is ONE adapter trained
continuously (its optimiser state kept across epochs), as a user's LoRA fine-tune would be.

Memory: a dense LoRA genome of MiniLM's two top layers is ~1 MB; 16 fine-tunes × 20 epochs would
hold hundreds of MB, so only candidates still val-non-dominated within their method keep weights (a
dominated candidate can never be selected).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from pydantic import Field

from evofair.analysis.metrics import is_near_constant
from evofair.core.indicators import non_dominated
from evofair.core.individual import Weights
from evofair.core.problem import SPLITS
from evofair.core.registry import Args
from evofair.core.seeding import derive_seed, torch_seeded

LORA_METHODS = ("lora_vanilla", "lora_scalarisation")
LABELS = {"lora_vanilla": "LoRA CE", "lora_scalarisation": "LoRA CE+λ·gap"}
PHASE = "baselines: LoRA fine-tunes (CE, CE+λ·gap), evaluate every epoch"


class LoraBaselineArgs(Args):
    enabled: bool = Field(True, description="with the lora genome: LoRA fine-tunes as baselines too")
    vanilla: int = Field(3, ge=1, description="LoRA CE: number of independently seeded fine-tunes")
    lambdas: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 8.0],
        description="LoRA CE+λ·gap: one fine-tune per weight of the TPR-gap surrogate",
    )
    epochs: int | None = Field(None, ge=1, description="epochs per fine-tune (None: match the evolution's budget)")
    min_epochs: int = Field(1, ge=1)
    lr: float | None = Field(None, gt=0, description="None: the recipe's sft lr")
    batch_size: int | None = Field(None, ge=2, description="None: the recipe's sft batch_size")


def applies(problem, args: LoraBaselineArgs) -> bool:
    """Only a problem whose genome is LoRA adapters gets LoRA fine-tunes as baselines."""
    from evofair.problems.common.text_problem import TextClassificationProblem

    return args.enabled and isinstance(problem, TextClassificationProblem) and problem.lora_args is not None


def training_args(recipe, args: LoraBaselineArgs):
    """The evolution's local-learning settings (its `sft` refine), so baselines train alike."""
    from evofair.operators.refine import SFTArgs

    refine = recipe.operators.refine
    base = dict(refine.args) if refine is not None and refine.name == "sft" else {"optimizer": "adamw", "lr": 5e-4}
    base.pop("steps", None)
    base.pop("epochs", None)
    if args.lr is not None:
        base["lr"] = args.lr
    if args.batch_size is not None:
        base["batch_size"] = args.batch_size
    return SFTArgs(**base)


def start_weights(problem, seed: int, lam: float | None) -> Weights:
    """The evolution's initial-population draw; λ (or none: plain CE) as the head's fairness weight."""
    w = {k: v for k, v in problem.init_weights(seed).items() if k != "head.fair_weight"}
    if lam is not None:
        w["head.fair_weight"] = torch.tensor([float(lam)])
    return w


def finetune(problem, init: Weights, seed: int, sft, epochs: int, on_epoch) -> None:
    """One LoRA fine-tune: one fresh adapter trained for `epochs` passes with the problem's loss;
    `on_epoch(epoch, weights)` gets the folded genome after every epoch."""
    from evofair.operators.refine import make_optimizer, train_step

    model = problem.build_model(init)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], sft)
    with torch_seeded(seed):  # dropout inside the encoder, as the sft refiner seeds it
        for epoch in range(epochs):
            model.train()
            for batch in problem.train_batches(seed + epoch, sft.batch_size):
                train_step(problem, model, opt, batch, sft.grad_clip)
            model.eval()
            on_epoch(epoch + 1, problem.extract_weights(model))


def split_metrics(problem, P: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{split: {metric: value}} of one model from its predictions P[split] (1, n)."""
    return {s: {k: float(v[0]) for k, v in problem.metrics_of_predictions(P[s], s).items()} for s in SPLITS}


def lora_candidates(
    problem, budget: dict[str, float], recipe, args: LoraBaselineArgs
) -> tuple[list[dict[str, Any]], dict[str, Weights], dict[str, Any], dict[str, float]]:
    """(candidates, weights of those still val-non-dominated in their method, budget record,
    timings) — the shape `baselines.head_candidates` returns. `budget["examples"]`: the training
    examples the evolution's local learning used (`baselines.evolution_budget`)."""
    n_train = len(problem.splits["train"])
    k_min = min(args.vanilla, len(args.lambdas)) if args.lambdas else args.vanilla
    epochs = args.epochs or max(args.min_epochs, math.ceil(budget["examples"] / (k_min * n_train)))
    sft = training_args(recipe, args)
    specs = [
        ("lora_vanilla", f"lora-vanilla-{i}", None, derive_seed(recipe.seed, "lora_vanilla", i))
        for i in range(args.vanilla)
    ]
    specs += [
        (
            "lora_scalarisation",
            f"lora-scalarisation-lambda{lam:g}",
            float(lam),
            derive_seed(recipe.seed, "lora_scal", i),
        )
        for i, lam in enumerate(args.lambdas)
    ]
    candidates: list[dict[str, Any]] = []
    weights: dict[str, Weights] = {}
    t = time.perf_counter()
    for method, mid, lam, seed in specs:

        def on_epoch(epoch: int, w: Weights, method=method, mid=mid, lam=lam, seed=seed) -> None:
            P = {s: problem.predictions([w], s) for s in SPLITS}
            cid = f"{mid}@{epoch}"
            candidates.append(
                {
                    "method": method,
                    "id": cid,
                    "model": mid,
                    "lambda": lam or 0.0,
                    "seed": seed,
                    "epoch": epoch,
                    "metrics": split_metrics(problem, P),
                    "near_constant_test": bool(is_near_constant(P["test"])[0]),
                }
            )
            weights[cid] = w
            _keep_non_dominated(problem, [c for c in candidates if c["method"] == method], weights)

        finetune(problem, start_weights(problem, seed, lam), seed, sft, epochs, on_epoch)
    timings = {PHASE: time.perf_counter() - t}
    record = {
        "epochs_per_model": epochs,
        "models": {m: sum(s[0] == m for s in specs) for m in LORA_METHODS},
        "examples_per_method": float(epochs * n_train * k_min),
        "n_train": n_train,
        "optimizer": sft.optimizer,
        "lr": sft.lr,
        "weight_decay": sft.weight_decay,
        "batch_size": sft.batch_size,
        "rank": problem.params.lora.r,
        "alpha": problem.params.lora.alpha,
        "targets": list(problem.lora.targets),
        "seconds": timings[PHASE],
    }
    return candidates, weights, record, timings


def _keep_non_dominated(problem, mine: list[dict[str, Any]], weights: dict[str, Weights]) -> None:
    F = problem.minimised({n: np.array([c["metrics"]["val"][n] for c in mine]) for n in problem.objective_names})
    keep = {mine[i]["id"] for i in non_dominated(F)}
    for c in mine:
        if c["id"] not in keep:
            weights.pop(c["id"], None)


def budget_sentence(rec: dict[str, Any]) -> str:
    """How the LoRA baselines were trained, from baselines.json's `budget.lora`."""
    return (
        f"LoRA baselines: {rec['models']['lora_vanilla']} CE and {rec['models']['lora_scalarisation']} CE+λ·gap "
        f"fine-tunes (rank {rec['rank']}, alpha {rec['alpha']:g}, {len(rec['targets'])} target modules, "
        f"{rec['optimizer']} lr {rec['lr']:g}, batch {rec['batch_size']}), {rec['epochs_per_model']} epochs each "
        f"(every epoch a candidate): {int(rec['examples_per_method'])} or more training examples per method."
    )
