"""FairPO / GRPO training: one trainer for the standalone experiment and the `fairpo` refiner.

Per mini-batch (docs/method-definitions.md#group-weights-grpo): compute L_P (privileged: DPO / SimPO / CPO form, or BCE) and L_N
(non-privileged: hinge against the reference with slack ε, or BCE), update the group weights α
from the *detached* losses, then take one optimiser step on α_P·L_P + α_N·L_N. The same trainer
also runs the baselines, so every row of the FairPO table shares one loop:

- BCE-SFT: ``weighting="pooled"`` (BCE averaged over all entries);
- BCE with static re-weighting of P: ``weighting="static"``, P entries weighted ``reweight``;
- Group DRO over the two groups' BCE: ``priv_loss="bce", nonpriv_loss="bce", weighting="grpo"``.

Groups come from ``problem.groups()``: ``{"kind": "labels", "privileged": [label indices]}`` with
batches ``(x, Y)`` (multi-label), or ``{"kind": "examples", "privileged": [group ids]}`` with
batches ``(x, y, g)`` (classification with protected groups; the pair is true class ≻ confusing
class, and P/N are the protected groups).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from evofair.core.individual import Weights
from evofair.core.operator import Refined
from evofair.core.problem import Grouped, Trainable
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.core.torch_utils import torch_threads
from evofair.errors import UserError
from evofair.problems.fairpo.losses import (
    GroupWeights,
    NonPrivLoss,
    PrivLoss,
    Weighting,
    classification_view,
    multilabel_view,
    nonprivileged_loss,
    privileged_loss,
)


class FairPOConfig(Args):
    """One training method: the two group losses, how they are weighted, and the optimiser."""

    priv_loss: PrivLoss = "dpo"
    nonpriv_loss: NonPrivLoss = "hinge"
    weighting: Weighting = Field("grpo_stable", description="grpo | grpo_stable | fixed | static | pooled")
    beta: float = Field(0.5, gt=0)
    epsilon: float = Field(0.05, ge=0)
    eta: float = Field(0.05, ge=0, description="GRPO step size for α")
    gamma: float = Field(0.0, description="SimPO target margin")
    lam: float = Field(0.5, ge=0, description="CPO weight of the BCE term")
    alpha_p: float = Field(0.5, gt=0, lt=1, description="α_P for weighting=fixed (and GRPO's start)")
    reweight: float | None = Field(None, gt=0, description="weight of P entries for weighting=static (None: |N|/|P|)")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _check(self):
        if self.weighting in ("pooled", "static") and (self.priv_loss, self.nonpriv_loss) != ("bce", "bce"):
            raise ValueError(f"weighting={self.weighting} is a BCE baseline: set priv_loss=bce and nonpriv_loss=bce")
        return self

    @property
    def needs_reference(self) -> bool:
        return self.priv_loss == "dpo" or self.nonpriv_loss == "hinge"


def _group_masks(groups: Mapping[str, Any], n_out: int):
    kind = groups.get("kind")
    if kind not in ("labels", "examples"):
        raise UserError(f"problem.groups(): expected kind 'labels' or 'examples', got {kind!r}")
    priv = [int(v) for v in groups.get("privileged", [])]
    if not priv:
        raise UserError("problem.groups(): FairPO needs a non-empty 'privileged' group")
    if kind == "labels":
        mask = torch.zeros(n_out, dtype=torch.bool)
        mask[priv] = True
        if bool(mask.all()):
            raise UserError("problem.groups(): every label is privileged; N is empty")
        return kind, mask
    return kind, torch.tensor(sorted(set(priv)))


class GroupTrainer:
    """Trains `model` in place, one mini-batch per `step`, recording α and both group losses."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: FairPOConfig,
        groups: Mapping[str, Any],
        *,
        seed: int,
        ref_model: torch.nn.Module | None = None,
        n_out: int | None = None,
    ):
        if cfg.needs_reference and ref_model is None:
            raise ValueError(f"{cfg.priv_loss}/{cfg.nonpriv_loss} needs a reference model")
        self.model, self.ref_model, self.cfg = model, ref_model, cfg
        if ref_model is not None:
            ref_model.eval()
            for p in ref_model.parameters():
                p.requires_grad_(False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        mode = cfg.weighting if cfg.weighting in ("grpo", "grpo_stable") else "fixed"
        self.alpha = GroupWeights(mode, cfg.eta, (cfg.alpha_p, 1 - cfg.alpha_p))
        self.generator = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        self.groups = groups
        self.kind, self.mask = (None, None) if n_out is None else _group_masks(groups, n_out)
        self.trace: dict[str, list[float]] = {"alpha_p": [], "loss_p": [], "loss_n": [], "loss": []}
        self.skipped = 0

    def _view(self, batch, logits, ref_logits):
        if self.kind is None:
            self.kind, self.mask = _group_masks(self.groups, logits.shape[1])
        if self.kind == "labels":
            y = batch[1]
            return multilabel_view(logits, y, self.mask, ref_logits)
        y, g = batch[1], batch[2]
        return classification_view(logits, y, torch.isin(g, self.mask), ref_logits)

    def step(self, batch) -> float:
        cfg = self.cfg
        self.model.train()
        logits = self.model(batch[0])
        ref_logits = None
        if self.ref_model is not None and cfg.needs_reference:
            with torch.no_grad():
                ref_logits = self.ref_model(batch[0])
        view = self._view(batch, logits, ref_logits)
        loss_p = privileged_loss(view, cfg.priv_loss, self.generator, beta=cfg.beta, gamma=cfg.gamma, lam=cfg.lam)
        loss_n = nonprivileged_loss(view, cfg.nonpriv_loss, epsilon=cfg.epsilon)
        if cfg.weighting == "pooled":
            entries = view.anchors | view.entries_n
            loss = (view.base * entries).sum() / entries.sum()
            alpha_p = float("nan")
        elif cfg.weighting == "static":
            n_p, n_n = int(view.anchors.sum()), int(view.entries_n.sum())
            w = cfg.reweight if cfg.reweight is not None else (self._ratio())
            loss = (w * (view.base * view.anchors).sum() + (view.base * view.entries_n).sum()) / max(n_p + n_n, 1)
            alpha_p = float("nan")
        else:
            a_p, a_n = self.alpha.update([float(loss_p.detach()), float(loss_n.detach())])
            loss = a_p * loss_p + a_n * loss_n
            alpha_p = a_p
        self.opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
        else:  # never step on a non-finite loss; counted so a report can say so
            self.skipped += 1
        for key, v in (
            ("alpha_p", alpha_p),
            ("loss_p", float(loss_p.detach())),
            ("loss_n", float(loss_n.detach())),
            ("loss", value),
        ):
            self.trace[key].append(v)
        return value

    def _ratio(self) -> float:
        """|N|/|P| labels (multi-label) — both groups then carry the same total weight."""
        if self.kind == "labels":
            n_p = int(self.mask.sum())
            return (len(self.mask) - n_p) / n_p
        return 1.0

    def run(self, batches: Iterable[Any], max_steps: int | None = None) -> int:
        done = 0
        for batch in batches:
            if max_steps is not None and done >= max_steps:
                break
            self.step(batch)
            done += 1
        return done


class FairPOArgs(FairPOConfig):
    """The `fairpo` refiner: k steps (or epochs) of FairPO on an offspring."""

    steps: int | None = Field(50, ge=1, description="optimiser steps per refinement (None: use epochs)")
    epochs: int = Field(1, ge=1, description="passes over the training split when steps is None")
    reference: Literal["parent", "sft"] = Field(
        "parent", description="reference head: the offspring's first parent, or the problem's SFT reference"
    )
    lr: float = Field(1e-3, gt=0)
    threads: int | None = Field(1, ge=1, description="torch threads while refining (None: leave as is)")
    privileged_groups: list[str] | None = Field(
        None, description="for problems declaring protected groups as {'values': [...]}: the values forming P"
    )


def _reference_weights(args: FairPOArgs, problem, weights: Weights, reference: Weights | None):
    if args.reference == "parent" and reference is not None:
        return reference, "parent"
    sft = getattr(problem, "reference_weights", None)
    if sft is not None:
        return sft(), "sft"
    return weights, "self"  # an initial individual on a problem without an SFT reference


def resolve_groups(groups: Mapping[str, Any], privileged_groups: list[str] | None) -> Mapping[str, Any]:
    """The refiner's group contract from what a problem declares.

    FairPO's own form is {"kind": "labels"|"examples", "privileged": [...]}. A classification problem
    that declares protected groups as {"values": [sorted group values], ...} and yields batches
    (x, y, group code = index into values) is read as kind "examples", with P named by
    `privileged_groups`.
    """
    if "kind" in groups:
        return groups
    values = groups.get("values")
    if values is None:
        raise UserError("operators.refine: the problem declares no groups FairPO can use")
    values = [str(v) for v in values]
    if not privileged_groups:
        raise UserError(f"operators.refine.args.privileged_groups: name the privileged group(s) among {values}")
    unknown = [v for v in privileged_groups if v not in values]
    if unknown:
        raise UserError(f"operators.refine.args.privileged_groups: unknown {unknown} (expected some of {values})")
    return {"kind": "examples", "privileged": [values.index(v) for v in privileged_groups]}


@component("refine", "fairpo", FairPOArgs, requires=(Trainable, Grouped))
def fairpo(weights: Weights, args: FairPOArgs, *, seed: int, problem, reference: Weights | None = None) -> Refined:
    """FairPO/GRPO local search against the parent (or the SFT reference) over the problem's groups."""
    model = problem.build_model(weights)
    ref_model, used = None, "none"
    if args.needs_reference:
        ref_w, used = _reference_weights(args, problem, weights, reference)
        ref_model = problem.build_model(ref_w)
    groups = resolve_groups(problem.groups(), args.privileged_groups)
    trainer = GroupTrainer(model, args, groups, seed=seed, ref_model=ref_model)
    budget = args.steps if args.steps is not None else None
    epochs = args.epochs if budget is None else 10**9
    steps = 0
    with torch_seeded(seed), torch_threads(args.threads):  # dropout etc. inside the model, if any
        for epoch in range(epochs):
            left = None if budget is None else budget - steps
            done = trainer.run(problem.train_batches(seed + epoch, args.batch_size), left)
            steps += done
            if done == 0 or (budget is not None and steps >= budget):
                break
    model.eval()
    tr = trainer.trace
    return Refined(
        problem.extract_weights(model),
        {
            "steps": steps,
            "skipped_steps": trainer.skipped,
            "reference": used,
            "alpha_p": tr["alpha_p"],
            "loss_p": tr["loss_p"],
            "loss_n": tr["loss_n"],
        },
    )
