"""Anchors of `fair_classification`'s first population: heads drawn around a trained base head.

The initial population is drawn around the shared base head θ₀ (problems/common/classification.py).
A random θ₀ is fine on the tables a recipe was tuned on, but on an unseen table with a skewed
target a random head (plus a short local search) predicts one class almost everywhere: such a
model has error = the minority share and every fairness gap 0, so it dominates every real model
that is not more accurate than the majority class and the whole front can collapse to
near-constant models. So a share of the initial heads (`warm_start.share`) are *anchors*: drawn
with small noise around θ₀ trained on plain cross-entropy, they put the accurate end at a plain
classifier's error from generation 0. The other heads are drawn around the random θ₀ as before:
they keep the spread towards the fair end (the fair weights of `local_loss: ce+tpr_gap` pull them
there). Merges keep the random θ₀ as their base. Training is seeded and single-process, and
whether a head is an anchor depends only on its seed, so every worker draws the same population.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.registry import Args
from evofair.core.seeding import derive_seed
from evofair.problems.common.classification import MLPHead

#: default steps per model kind: lbfgs iterations of a linear head's LogisticRegression (converged
#: well before 500 on the shipped tables), Adam steps of an MLP. Counted in steps, not epochs, so a
#: small table gets as much training as a large one (5 epochs of a 700-row table are 15 steps: still
#: a near-constant head); 500 bring an MLP to about LogisticRegression's error (Adult;
#: studies/fair_tabular/README.md). A `head` or `lora` MLP on text embeddings keeps a random θ₀: the
#: dedicated `biasbios` problem's numbers are reproduced with it. A `head` with no hidden layer is
#: a linear head like `logistic` and gets its anchors (`LINEAR_HEAD`): on BiasBios they lift the
#: front's test HV and its accurate end over an MLP head's (studies/fair_tabular/README.md).
DEFAULT_STEPS = {"logistic": 500, "mlp": 500, "head": 0, "lora": 0}
LINEAR_HEAD = "logistic"


class WarmStartArgs(Args):
    steps: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="plain cross-entropy training of θ₀ before the initial population is drawn around it: "
        "Adam steps of an MLP, lbfgs iterations of a linear head (θ₀ = scikit-learn's LogisticRegression) "
        "(None: 500 for model.kind logistic/mlp and for a head without hidden layers, 0 for a head MLP and "
        "lora; 0: θ₀ stays random)",
    )
    share: float = Field(
        0.5, ge=0, le=1, description="share of the initial heads drawn around the trained θ₀ (the anchors)"
    )
    noise: float = Field(0.3, ge=0, description="the anchors' noise: θ + noise·std(tensor)·N(0,1)")
    lr: float = Field(0.01, gt=0, description="Adam learning rate of the warm start")
    batch_size: int = Field(256, ge=1, description="rows per step of the warm start")
    seed: int = Field(0, ge=0, description="seed of the warm start's shuffling")

    def resolved_steps(self, model_kind: str, linear: bool = False) -> int:
        """The recipe's steps, else the default of the model kind (`linear`: no hidden layer)."""
        if self.steps is not None:
            return self.steps
        return DEFAULT_STEPS[LINEAR_HEAD if model_kind == "head" and linear else model_kind]


def anchor_or_none(anchor: Weights, args: WarmStartArgs, seed: int) -> Weights | None:
    """The initial head of `seed` when it is an anchor (a seeded draw below `share`): the trained
    θ₀ plus `noise` relative to each tensor's std; None when it is drawn around the random θ₀."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "warm_start") & 0xFFFFFFFFFFFF)
    if float(torch.rand((), generator=gen, dtype=torch.float64)) >= args.share:
        return None
    out = {}
    for name in sorted(k for k in anchor if k.startswith("layers.")):
        ref = anchor[name.replace(".bias", ".weight")]
        out[name] = anchor[name] + args.noise * float(ref.std()) * torch.randn(anchor[name].shape, generator=gen)
    return out


def train_base(problem, base: Weights, args: WarmStartArgs, steps: int) -> tuple[Weights, int]:
    """θ₀'s layers trained on plain cross-entropy over the training split, and the training
    examples that took (the run's budget counts them): a linear head is scikit-learn's
    LogisticRegression fitted with at most `steps` lbfgs iterations (the report's reference itself,
    so the accurate end starts exactly there; an iteration reads every training row), an MLP gets
    `steps` Adam steps. The fairness weight, if any, is kept as it was: the warm start is the
    accurate end's anchor."""
    if len(problem.sizes) == 2:
        layers, iterations = _logistic_regression(problem, steps)
        return {**base, **layers}, iterations * len(problem.splits["train"])
    layers = {k: v for k, v in base.items() if k.startswith("layers.")}
    model = MLPHead(problem.sizes)
    model.load_state_dict({k: v.to(torch.float32) for k, v in layers.items()})
    data = problem.splits["train"]
    X, y = data.X.to(torch.float32), torch.as_tensor(np.asarray(data.y), dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    done = examples = 0
    while done < steps:
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), args.batch_size):
            if done == steps:
                break
            idx = order[i : i + args.batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
            done += 1
            examples += len(idx)
    return {**base, **{k: v.detach().clone() for k, v in model.state_dict().items()}}, examples


def _logistic_regression(problem, max_iter: int) -> tuple[Weights, int]:
    """A linear head equal to scikit-learn's LogisticRegression: a binary model's one logit
    difference w·x + b split as ±(w·x + b)/2 over the two classes (same argmax, same softmax);
    and the lbfgs iterations it ran."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    data = problem.splits["train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an early stop at max_iter is still a trained head
        lr = LogisticRegression(max_iter=max_iter).fit(data.X.numpy().astype(np.float64), np.asarray(data.y))
    W, b = lr.coef_, lr.intercept_
    if W.shape[0] == 1:
        W, b = np.concatenate([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
    layers = {
        "layers.0.weight": torch.tensor(W, dtype=torch.float32),
        "layers.0.bias": torch.tensor(b, dtype=torch.float32),
    }
    return layers, int(np.max(lr.n_iter_))
