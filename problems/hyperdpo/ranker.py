"""The rankers of HyperDPO's LTR experiment and the loop that trains them.

A ranker scores each document of a query list with a small MLP, optionally conditioned on a weight
vector w (concatenated to the features, or FiLM). `fit` trains the base ranker and the ICOS models
of the `letor` problem (ranking.py) and every method of the `hyperdpo_table` experiment
(table.py), so all of them train and keep their best epoch the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from evofair.core.individual import Weights
from evofair.core.seeding import torch_seeded
from evofair.core.torch_utils import torch_threads
from evofair.problems.hyperdpo.letor import Groups


class Ranker(torch.nn.Module):
    """Per-document MLP scorer g(x) or g([x; w]); `zero_last` makes it start as the zero function.

    `cond="film"` (with m_cond > 0): w does not join the input; instead a linear map of w_scale·w
    gives a per-unit scale γ and shift b for each hidden layer's pre-activation,
    `z ← z·(1 + γ(w)) + b(w)` (FiLM, Perez et al. 2018). The FiLM map starts at zero (the unconditioned
    network at init); `condition_weights` supports only the concatenated form.
    """

    def __init__(
        self,
        d: int,
        hidden: int,
        m_cond: int = 0,
        zero_last: bool = False,
        w_scale: float = 1.0,
        cond: Literal["concat", "film"] = "concat",
    ):
        super().__init__()
        self.m_cond, self.w_scale, self.cond = m_cond, w_scale, cond
        film = cond == "film" and m_cond > 0
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d + (0 if film else m_cond), hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 1),
        )
        if film:
            self.film = torch.nn.Linear(m_cond, 4 * hidden)
            torch.nn.init.zeros_(self.film.weight)
            torch.nn.init.zeros_(self.film.bias)
        if zero_last:
            torch.nn.init.zeros_(self.net[4].weight)
            torch.nn.init.zeros_(self.net[4].bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if self.m_cond:
            if w is None:
                raise ValueError("a conditioned ranker needs w")
            w = torch.as_tensor(w, dtype=x.dtype) * self.w_scale
            if self.cond == "film":
                g1, b1, g2, b2 = self.film(w).unsqueeze(-2).chunk(4, dim=-1)  # [..., 1, hidden] each
                h = torch.relu(self.net[0](x) * (1 + g1) + b1)
                h = torch.relu(self.net[2](h) * (1 + g2) + b2)
                return self.net[4](h).squeeze(-1)
            x = torch.cat([x, w.expand(*x.shape[:-1], self.m_cond)], dim=-1)
        return self.net(x).squeeze(-1)


def n_params(model_or_weights) -> int:
    items = (
        model_or_weights.parameters() if isinstance(model_or_weights, torch.nn.Module) else model_or_weights.values()
    )
    return int(sum(p.numel() for p in items))


def condition_weights(cond: Weights, w: Sequence[float], w_scale: float = 1.0) -> Weights:
    """Fold a fixed w into a conditioned ranker: W·[x; c·w] + b = W_x·x + (b + c·W_w·w), exactly."""
    W, b = cond["net.0.weight"], cond["net.0.bias"]
    m = len(w)
    w = np.asarray(w, dtype=float) * w_scale
    out = {k: v.clone() for k, v in cond.items()}
    out["net.0.weight"] = W[:, :-m].clone()
    out["net.0.bias"] = b + W[:, -m:] @ torch.as_tensor(np.asarray(w), dtype=W.dtype)
    return out


def temperature_scale(weights: Weights, c: float) -> Weights:
    """Post-training temperature control for an augmentation model: s_base + g/c equals
    (1 − 1/c)·s_base + (1/c)·(s_base + g), i.e. the model at temperature c·β; g's output layer /c."""
    out = {k: v.clone() for k, v in weights.items()}
    out["net.4.weight"] = out["net.4.weight"] / c
    out["net.4.bias"] = out["net.4.bias"] / c
    return out


def fit(
    model: torch.nn.Module,
    loss_fn: Callable,
    train: Groups,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    val_fn: Callable[[torch.nn.Module], float | np.ndarray] | None = None,
    patience: int | None = None,
    val_every: int = 1,
    select: Literal["shared", "per_w"] = "shared",
    stop: Literal["shared", "per_w"] = "shared",
):
    """Adam over shuffled query batches; with `val_fn`, keep the best epoch (early stopping).

    `val_every`: validate only every k-th epoch (patience still counts epochs); validation of a
    conditioned model over a whole weight grid can cost more than its training steps.

    `val_fn(model)` → a score to minimise, or a vector of them (one per front weight vector of a
    conditioned model), whose mean is the shared criterion. `select="per_w"` (vector scores) also
    keeps, for each entry i, a snapshot of the model's state at the validation epoch where entry i
    was lowest (first such epoch on ties), so each front point can use its own epoch as a per-w model
    (DPO-LS) does; snapshots no entry points at any more are dropped. `stop`: early stopping when
    the shared criterion has not improved for `patience` epochs ("shared"), or when no entry has
    ("per_w": every entry's patience ran out; also with select="shared"). The returned model holds
    the shared criterion's best state in every case.

    `loss_fn(model, batch, rng)` → scalar; rng is a seeded numpy Generator (ICOS draws w from it).
    Returns (model with the kept state, {"epochs", "best_epoch", "seconds"} + with select="per_w"
    {"best_epochs": per-entry epochs, "best_scores": their scores, "snapshots": {epoch: state}}).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, best_epoch, epoch = float("inf"), None, 0, 0
    per_best = per_epoch = None
    snapshots: dict[int, dict] = {}
    with torch_seeded(seed & 0xFFFFFFFFFFFF), torch_threads(1):
        for epoch in range(1, epochs + 1):
            model.train()
            order = rng.permutation(len(train))
            for i in range(0, len(order), batch_size):
                loss = loss_fn(model, train.take(order[i : i + batch_size]), rng)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if val_fn is not None and epoch % val_every == 0:
                model.eval()
                with torch.no_grad():
                    vec = np.asarray(val_fn(model), dtype=float)
                v = float(vec.mean()) if vec.ndim else float(vec)
                if v < best - 1e-7:
                    best, best_epoch = v, epoch
                    best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                if "per_w" in (select, stop) and vec.ndim:
                    if per_best is None:
                        per_best, per_epoch = np.full(vec.shape, np.inf), np.zeros(vec.shape, dtype=int)
                    better = vec < per_best - 1e-7
                    if better.any():
                        per_best[better], per_epoch[better] = vec[better], epoch
                        if select == "per_w":
                            snapshots[epoch] = {k: t.detach().clone() for k, t in model.state_dict().items()}
                            snapshots = {e: s for e, s in snapshots.items() if e in set(per_epoch.tolist())}
                last = best_epoch if stop == "shared" or per_epoch is None else int(per_epoch.max())
                if patience is not None and epoch - last >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    log = {"epochs": epoch, "best_epoch": best_epoch if val_fn else epoch}
    if select == "per_w" and per_epoch is not None:
        log.update(best_epochs=per_epoch.tolist(), best_scores=per_best.tolist(), snapshots=snapshots)
    log["seconds"] = time.perf_counter() - t0
    return model, log
