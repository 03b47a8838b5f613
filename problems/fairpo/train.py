"""The methods of the FairPO table and the train-then-select loop every one of them goes through.

Every method trains the same head architecture from the same seeded initialisation, sees the same
seeded batch order, and keeps the epoch with the best *validation privileged mAP* (the FairPO
selection rule, docs/method-definitions.md#group-weights-grpo) — so rows differ only in their loss and group weighting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evofair.core.individual import Weights
from evofair.core.seeding import derive_seed
from evofair.problems.fairpo.refiner import FairPOConfig, GroupTrainer


@dataclass(frozen=True)
class Method:
    label: str  # row name in the table
    config: FairPOConfig
    group: str  # "baseline" | "fairpo" | "ablation"
    alt_partition: bool = False


def _m(label, group, alt=False, **cfg) -> Method:
    return Method(label, FairPOConfig(**cfg), group, alt)


METHODS: dict[str, Method] = {
    "sft": _m("BCE-SFT", "baseline", priv_loss="bce", nonpriv_loss="bce", weighting="pooled"),
    "reweight": _m(
        "BCE + static re-weighting of P", "baseline", priv_loss="bce", nonpriv_loss="bce", weighting="static"
    ),
    "groupdro": _m("Group DRO (BCE per group)", "baseline", priv_loss="bce", nonpriv_loss="bce", weighting="grpo"),
    "dpo_grpo": _m("FairPO-DPO (GRPO)", "fairpo", priv_loss="dpo", weighting="grpo"),
    "dpo_stable": _m("FairPO-DPO (stabilised GRPO)", "fairpo", priv_loss="dpo", weighting="grpo_stable"),
    "simpo_grpo": _m("FairPO-SimPO (GRPO)", "fairpo", priv_loss="simpo", weighting="grpo"),
    "simpo_stable": _m("FairPO-SimPO (stabilised GRPO)", "fairpo", priv_loss="simpo", weighting="grpo_stable"),
    "cpo_grpo": _m("FairPO-CPO (GRPO)", "fairpo", priv_loss="cpo", weighting="grpo"),
    "cpo_stable": _m("FairPO-CPO (stabilised GRPO)", "fairpo", priv_loss="cpo", weighting="grpo_stable"),
    "abl_nopref": _m("Ablation: w/o preference loss (BCE on P)", "ablation", priv_loss="bce", weighting="grpo_stable"),
    "abl_nocons": _m(
        "Ablation: w/o constraint (BCE on N)", "ablation", priv_loss="dpo", nonpriv_loss="bce", weighting="grpo_stable"
    ),
    "abl_fixed": _m("Ablation: fixed weights 0.5/0.5", "ablation", priv_loss="dpo", weighting="fixed"),
    "abl_partition": _m("Ablation: another partition", "ablation", True, priv_loss="dpo", weighting="grpo_stable"),
}


@dataclass
class TrainResult:
    weights: Weights
    best_epoch: int
    best_val: float
    val_history: list[float] = field(default_factory=list)
    trace: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    skipped: int = 0  # steps whose loss was not finite (no optimiser step taken)


def train_selected(
    problem,
    cfg: FairPOConfig,
    *,
    seed: int,
    epochs: int,
    reference: Weights | None = None,
    privileged: Sequence[int] | None = None,
    init: Weights | None = None,
) -> TrainResult:
    """Train for `epochs` epochs, evaluating on validation after each; keep the best by mAP_P.

    `privileged` changes the *training* partition only (the "another partition" ablation); the
    selection rule always uses the problem's P, so every row is selected the same way.
    """
    problem.ensure_setup()
    model = problem.build_model(init if init is not None else problem.random_head(seed))
    ref_model = problem.build_model(reference) if reference is not None and cfg.needs_reference else None
    priv = problem.priv if privileged is None else np.asarray(privileged)
    groups = {"kind": "labels", "privileged": [int(i) for i in priv]}
    trainer = GroupTrainer(
        model, cfg, groups, seed=derive_seed(seed, "fairpo-pairs"), ref_model=ref_model, n_out=problem.C
    )
    best = TrainResult(problem.extract_weights(model), 0, -math.inf)
    steps = 0
    for epoch in range(epochs):
        steps += trainer.run(problem.train_batches(derive_seed(seed, epoch, "batch-order"), cfg.batch_size))
        weights = problem.extract_weights(model)
        val = float(problem.metrics(problem.probabilities([weights], "val"), "val")["map_P"][0])
        best.val_history.append(val)
        if val > best.best_val:  # ties keep the earlier epoch
            best.weights, best.best_epoch, best.best_val = weights, epoch + 1, val
    best.trace, best.steps, best.skipped = trainer.trace, steps, trainer.skipped
    return best
