"""The `hyperdpo` refiner: w-weighted listwise DPO (− λ·cos) local search against the parent."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.operator import Refined, training_batches
from evofair.core.problem import Trainable
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.errors import UserError
from evofair.problems.hyperdpo.losses import Phi, icos_objective, listwise_dpo_loss, reference_directions


@runtime_checkable
class Listwise(Protocol):
    """What the hyperdpo refiner needs beyond `Trainable`: scores and labels of whole lists, plus the
    attributes `n_aux` (number of objectives) and `phi` (one label transform per objective)."""

    def listwise_scores(self, model, batch) -> torch.Tensor: ...

    def listwise_labels(self, batch) -> tuple[torch.Tensor, torch.Tensor]: ...


class HyperDPOArgs(Args):
    w: list[float] | None = Field(
        None,
        description="the weight vector to refine toward; None: picked per "
        "individual from the Das-Dennis directions by the refine seed",
    )
    n_partitions: int = Field(10, ge=1, description="Das-Dennis partitions the w is picked from (w=None)")
    beta: float = Field(1.0, gt=0, description="DPO temperature")
    lam: float = Field(0.0, ge=0, description="cosine penalty λ (0: w-weighted listwise DPO)")
    phi: Phi | None = Field(None, description="label transform for every objective (None: the problem's)")
    epochs: int = Field(1, ge=0)
    steps: int | None = Field(None, ge=1, description="stop after this many steps (overrides epochs)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1, description="groups (queries / prompts) per step")


def refine_weight(args: HyperDPOArgs, m: int, seed: int) -> np.ndarray:
    """The w an individual is refined toward: `args.w`, or a reference direction chosen by `seed`.

    The engine passes the same refiner arguments to every offspring but a distinct seed, so with
    w=None each offspring draws its own NSGA-III direction; the choice is logged with the result.
    """
    if args.w is not None:
        w = np.asarray(args.w, dtype=float)
        if len(w) != m or np.any(w < 0) or w.sum() <= 0:
            raise UserError(f"operators.refine.args.w: expected {m} non-negative weights, got {args.w}")
        return w / w.sum()
    dirs = reference_directions(m, args.n_partitions)
    return dirs[int(np.random.default_rng(seed).integers(len(dirs)))]


@component("refine", "hyperdpo", HyperDPOArgs, requires=(Trainable, Listwise))
def hyperdpo(weights: Weights, args: HyperDPOArgs, *, seed: int, problem, reference: Weights | None = None) -> Refined:
    """Refine toward w with the w-weighted listwise DPO loss (− λ·cos) against the parent as reference."""
    missing = [n for n in ("n_aux", "phi") if not hasattr(problem, n)]
    if missing:
        raise UserError(
            f"operators.refine: problem {problem.name} does not support hyperdpo (missing {', '.join(missing)})"
        )
    m = int(problem.n_aux)
    w = refine_weight(args, m, seed)
    phi = args.phi or tuple(problem.phi)
    ref_model = problem.build_model(reference if reference is not None else weights)
    ref_model.eval()
    model = problem.build_model(weights)
    model.train()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay
    )
    w_t = torch.as_tensor(w, dtype=torch.float32)
    losses: list[float] = []
    with torch_seeded(seed):
        for batch in training_batches(
            problem, seed=seed, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size
        ):
            labels, mask = problem.listwise_labels(batch)
            with torch.no_grad():
                s_ref = problem.listwise_scores(ref_model, batch)
            s = problem.listwise_scores(model, batch)
            loss = icos_objective(listwise_dpo_loss(s, s_ref, labels, mask, args.beta, phi), w_t, args.lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    return Refined(problem.extract_weights(model), {"w": [float(x) for x in w], "loss": losses, "steps": len(losses)})
