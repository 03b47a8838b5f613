"""Local search by gradient fine-tuning (the memetic step, docs/method-definitions.md#memetic-use-how-the-methods-meet-in-evofair)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.operator import Refined, training_batches
from evofair.core.problem import Trainable
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded


class SFTArgs(Args):
    epochs: int = Field(1, ge=0, description="passes over the training split")
    steps: int | None = Field(None, ge=1, description="stop after this many steps (overrides epochs)")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(1e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(32, ge=1)
    grad_clip: float | None = Field(None, gt=0)


def make_optimizer(params, args: SFTArgs) -> torch.optim.Optimizer:
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


def train_step(problem, model: torch.nn.Module, opt, batch, grad_clip: float | None) -> torch.Tensor:
    """One optimiser step on the problem's own loss; the loss comes back detached and on its
    device (no host sync per step: a GPU keeps running ahead). Shared by `sft` and the LoRA
    baselines' fine-tunes, so both train exactly alike."""
    opt.zero_grad(set_to_none=True)
    loss = problem.loss(model, batch)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


@component("refine", "sft", SFTArgs, requires=(Trainable,))
def sft(weights: Weights, args: SFTArgs, *, seed: int, problem, reference: Weights | None = None) -> Refined:
    """k epochs (or steps) of the problem's own training loss; FaMOEL's defaults (SGD 1e-4, m 0.9)."""
    model = problem.build_model(weights)
    model.train()
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], args)
    losses = []
    with torch_seeded(seed):  # dropout etc. inside the model
        for batch in training_batches(
            problem, seed=seed, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size
        ):
            losses.append(train_step(problem, model, opt, batch, args.grad_clip))
    model.eval()
    losses = [float(x) for x in torch.stack(losses).cpu().tolist()] if losses else []
    return Refined(problem.extract_weights(model), {"loss": losses, "steps": len(losses)})
