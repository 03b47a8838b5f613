"""The `hyperdpo_table` experiment: HyperDPO against its baselines on LETOR (the paper's Table 1).

Every method produces the same number of front points (weight vectors from `weight_grid`) from the
same base ranker, architecture (g of width `hidden`), optimiser and model-selection rule (each model
keeps the epoch with the best validation w·NDCG_aux for its own w — HyperDPO: the mean of that over
the front's weight vectors — and stops after `patience` epochs without improvement; the validation
*losses* bottom out within ~10 epochs on 20 validation queries while the fronts still improve, so
they are a poor stopping signal here); only how the front is obtained differs:
- HyperDPO: one w-conditioned model trained with ICOS (w ~ Dir(α) per batch, λ·cos penalty);
- DPO-LS: one model per w on wᵀL;
- DPO Soup: one model per objective, front points by weight interpolation Σ w_j θ_j;
- MO-DPO: one model per w on MODPO's loss for objective 1, margins from reward models = the
  single-objective DPO models of the other objectives (their training time is charged to MO-DPO).
Training time excludes the shared base ranker; parameter counts are the fine-tuned parameters
(the base is frozen and shared by all).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from evofair.core.indicators import hypervolume
from evofair.core.registry import Args
from evofair.core.torch_utils import torch_threads
from evofair.problems.hyperdpo.icos_training import aux_loss, train_icos
from evofair.problems.hyperdpo.losses import icos_objective, modpo_listwise_loss, weight_grid
from evofair.problems.hyperdpo.ranker import fit, n_params
from evofair.problems.hyperdpo.ranking import RankingProblem

METHODS = ("hyperdpo", "dpo_ls", "dpo_soup", "mo_dpo")
LABELS = {"hyperdpo": "HyperDPO", "dpo_ls": "DPO-LS", "dpo_soup": "DPO Soup", "mo_dpo": "MO-DPO"}


class TableArgs(Args):
    methods: list[Literal["hyperdpo", "dpo_ls", "dpo_soup", "mo_dpo"]] = Field(list(METHODS), min_length=1)
    n_points: int = Field(11, ge=2, description="front points (weight vectors) per method")
    epochs: int = Field(300, ge=1, description="max epochs of each baseline model")
    hyper_epochs: int = Field(600, ge=1, description="max epochs of the HyperDPO model")
    patience: int = Field(20, ge=1, description="early stopping on the model's validation w·NDCG_aux")
    batch_size: int = Field(8, ge=1, description="queries per step")
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration (COSMOS default 1)")
    lam: float = Field(1.0, ge=0, description="ICOS cosine penalty (COSMOS default 1)")
    w0_min: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="MO-DPO divides by w_0: front points with w_0 below this use w_0 = w0_min (renormalised)",
    )
    hyper_hidden: int | None = Field(
        None,
        ge=1,
        description="width of HyperDPO's conditioned g (None: the problem's hidden, as every baseline model)",
    )
    hyper_w_scale: float | None = Field(
        None, gt=0, description="HyperDPO's w input scale (None: the problem's w_scale)"
    )
    hyper_lr: float | None = Field(None, gt=0, description="HyperDPO's learning rate (None: the problem's lr)")
    hyper_patience: int | None = Field(None, ge=1, description="HyperDPO's early-stopping patience (None: patience)")
    hyper_w_per: Literal["batch", "query"] = Field(
        "batch", description="HyperDPO draws one w ~ Dir(α) per batch (paper) or one per query of the batch"
    )
    hyper_select_c: list[float] = Field(
        [],
        description="post-training temperature control as per-w model "
        "selection: for each front w keep the c of this list (and 1) with the "
        "best validation w·NDCG_aux, scores s_base + g/c (no retraining; [] = off). "
        "The same scaling would apply to any augmentation model; the baselines do "
        "not get it unless select_c_dpo_ls (docs/hyperdpo.md)",
    )
    hyper_val_every: int = Field(
        1, ge=1, description="HyperDPO validates (all n_points w) every k-th epoch; patience still counts epochs"
    )
    hyper_select: Literal["shared", "per_w"] = Field(
        "shared",
        description="HyperDPO's model selection: one "
        "epoch for the whole front (best mean over the front's w) or, "
        "per front w, a snapshot of the conditioned model at that w's "
        "best validation epoch (as each DPO-LS model has its own epoch; "
        "the stored front then needs one copy per distinct epoch)",
    )
    hyper_stop: Literal["shared", "per_w"] = Field(
        "shared",
        description="HyperDPO stops when the mean over the "
        "front's w has not improved for its patience, or (per_w) when "
        "no front w's validation score has",
    )
    hyper_k_w: int = Field(1, ge=1, description="HyperDPO: w draws per batch, their ICOS losses averaged")
    hyper_grid_mix: float = Field(
        0.0,
        ge=0,
        le=1,
        description="HyperDPO: probability that a w draw is one of the front's weight vectors instead of Dirichlet(α)",
    )
    hyper_cond: Literal["concat", "film"] = Field(
        "concat", description="HyperDPO's conditioning: [x; w_scale·w] input, or FiLM scale/shift of both hidden layers"
    )
    hyper_restarts: int = Field(
        1,
        ge=1,
        description="HyperDPO: train this many conditioned models (seeds "
        "seed + 7919·r) and give each front w the one with the best validation w·NDCG_aux "
        "(all their training time is charged)",
    )
    select_c_dpo_ls: bool = Field(
        False,
        description="give DPO-LS the same per-w temperature selection "
        "(hyper_select_c's list and 1, each model's c chosen on validation "
        "w·NDCG_aux, timed with its training): the fair comparison for hyper_select_c",
    )
    temperatures: list[float] = Field([0.5, 2.0], description="post-training temperature scales c shown for HyperDPO")


@dataclass
class MethodResult:
    name: str
    points: dict[str, np.ndarray] = field(default_factory=dict)  # split → [n_points, m] aux NDCG
    main: dict[str, np.ndarray] = field(default_factory=dict)  # split → [n_points] main NDCG
    seconds: float = 0.0
    n_params: int = 0
    epochs: list[int] = field(default_factory=list)
    grid: np.ndarray | None = None
    model: torch.nn.Module | None = None  # HyperDPO's conditioned model (temperature demonstration)
    c: list[float] | None = None  # temperature scale per front point (hyper_select_c / select_c_dpo_ls)
    n_snapshots: int = 1  # HyperDPO: distinct stored models the front needs (hyper_select per_w)

    def hv(self, split: str = "test") -> float:
        """HV of the aux NDCG@k points, maximised, reference point (0, …, 0)."""
        return hypervolume(-self.points[split], np.zeros(self.points[split].shape[1]))


def measure_front(problem: RankingProblem, res: MethodResult, score_fn) -> None:
    """Fill res.points/main from score_fn(split) → list of [Q, n] score arrays, one per front point."""
    names = problem.objective_names
    for split in ("val", "test"):
        rows = [problem.metrics_of_scores(s, split) for s in score_fn(split)]
        res.points[split] = np.array([[r[n] for n in names] for r in rows])
        res.main[split] = np.array([r[problem.main_metric] for r in rows])


def model_scores(problem, model, split, w=None):
    """Scores s_base + g(x[, w]) of every document of `split`, [Q, n] (a conditioned model gets w)."""
    g = problem.data[split]
    with torch.no_grad(), torch_threads(1):
        return (g.base + (model(g.X) if w is None else model(g.X, torch.as_tensor(w, dtype=torch.float32)))).numpy()


def _train_scalarised(problem: RankingProblem, w, a: TableArgs, seed: int):
    """One plain g on wᵀL (DPO-LS; a unit w gives single-objective DPO)."""
    w_t = torch.as_tensor(np.asarray(w), dtype=torch.float32)
    val = problem.data["val"]
    loss_fn = lambda mdl, b, rng: icos_objective(aux_loss(problem, b.base + mdl(b.X), b), w_t, 0.0)
    val_fn = lambda mdl: -float(np.dot(w, problem.aux_ndcg((val.base + mdl(val.X)).numpy(), "val")))
    return fit(
        problem.g_model(seed=seed),
        loss_fn,
        problem.data["train"],
        epochs=a.epochs,
        lr=problem.params.lr,
        batch_size=a.batch_size,
        seed=seed,
        val_fn=val_fn,
        patience=a.patience,
    )


def _select_c(problem, g_val: torch.Tensor, w, options: list[float]) -> float:
    """Of `options`, the temperature scale c whose scores s_base + g/c have the best validation
    w·NDCG_aux (first of the sorted options on ties); `g_val` = the model's g on the validation queries."""
    base = problem.data["val"].base
    score = [float(np.dot(w, problem.aux_ndcg((base + g_val / c).numpy(), "val"))) for c in options]
    return options[int(np.argmax(score))]


def _c_scaled(problem, split, s, c):
    """s_base + g/c from scores s = s_base + g; c = 1 returns s unchanged (no float round trip)."""
    return s if c == 1.0 else problem.data[split].base.numpy() + (s - problem.data[split].base.numpy()) / c


def _train_hyperdpo(problem, grid, a: TableArgs, seed: int):
    """One conditioned model → (model, log, per-w models, per-w epochs, per-w validation −w·NDCG_aux);
    with hyper_select per_w each front w gets the model at its own best validation epoch."""
    model, log = train_icos(
        problem,
        seed=seed,
        epochs=a.hyper_epochs,
        alpha=a.alpha,
        lam=a.lam,
        batch_size=a.batch_size,
        val_grid=grid,
        patience=a.hyper_patience or a.patience,
        hidden=a.hyper_hidden,
        w_scale=a.hyper_w_scale,
        lr=a.hyper_lr,
        val_every=a.hyper_val_every,
        w_per=a.hyper_w_per,
        select=a.hyper_select,
        stop=a.hyper_stop,
        k_w=a.hyper_k_w,
        grid_mix=a.hyper_grid_mix,
        cond=a.hyper_cond,
    )
    t = time.perf_counter()  # building the per-w models is part of producing the front: timed
    if a.hyper_select == "per_w" and "snapshots" in log:
        by_epoch = {}
        for e, state in log["snapshots"].items():
            by_epoch[e] = copy.deepcopy(model)
            by_epoch[e].load_state_dict(state)
        models, epochs, scores = [by_epoch[e] for e in log["best_epochs"]], log["best_epochs"], log["best_scores"]
    else:
        models, epochs = [model] * len(grid), [log["best_epoch"]] * len(grid)
        scores = None
        if a.hyper_restarts > 1:  # the restarts are compared per w on validation: score the kept model
            with torch.no_grad(), torch_threads(1):
                scores = [
                    -float(np.dot(w, problem.aux_ndcg(model_scores(problem, model, "val", w), "val"))) for w in grid
                ]
    log["seconds"] += time.perf_counter() - t
    return model, log, models, list(epochs), scores


def run_hyperdpo(problem, grid, a: TableArgs, seed: int) -> MethodResult:
    res = MethodResult("hyperdpo")
    model, log, models, epochs, scores = _train_hyperdpo(problem, grid, a, seed)
    res.seconds, res.epochs = log["seconds"], [log["best_epoch"]]
    if a.hyper_select == "per_w":
        res.epochs = epochs
    res.n_snapshots = len(set(epochs))
    if a.hyper_restarts > 1:  # more conditioned models; per w the one with the best validation score
        keys = [(0, e) for e in epochs]
        for r in range(1, a.hyper_restarts):
            _, log_r, models_r, epochs_r, scores_r = _train_hyperdpo(problem, grid, a, seed + 7919 * r)
            res.seconds += log_r["seconds"]
            for i in range(len(grid)):
                if scores_r[i] < scores[i] - 1e-7:
                    models[i], scores[i], keys[i] = models_r[i], scores_r[i], (r, epochs_r[i])
        res.epochs = [f"{r}:{e}" for r, e in keys]
        res.n_snapshots = len(set(keys))
    res.n_params = n_params(model) * res.n_snapshots
    cs = [1.0] * len(grid)
    if a.hyper_select_c:  # timed with training: it is part of producing the front
        t = time.perf_counter()
        val, options = problem.data["val"], sorted({1.0, *a.hyper_select_c})
        with torch.no_grad(), torch_threads(1):
            for i, w in enumerate(grid):
                cs[i] = _select_c(problem, models[i](val.X, torch.as_tensor(w, dtype=torch.float32)), w, options)
        res.seconds += time.perf_counter() - t
    res.c = cs
    measure_front(
        problem,
        res,
        lambda split: [
            _c_scaled(problem, split, model_scores(problem, mdl, split, w), c) for mdl, w, c in zip(models, grid, cs)
        ],
    )
    res.model = model
    return res


def run_dpo_ls(problem, grid, a: TableArgs, seed: int) -> MethodResult:
    res = MethodResult("dpo_ls")
    models = []
    cs = [1.0] * len(grid)
    for i, w in enumerate(grid):
        model, log = _train_scalarised(problem, w, a, seed)
        models.append(model)
        res.seconds += log["seconds"]
        res.epochs.append(log["best_epoch"])
        if a.select_c_dpo_ls and a.hyper_select_c:  # the same selection HyperDPO gets, timed the same way
            t = time.perf_counter()
            with torch.no_grad(), torch_threads(1):
                cs[i] = _select_c(problem, model(problem.data["val"].X), w, sorted({1.0, *a.hyper_select_c}))
            res.seconds += time.perf_counter() - t
    res.n_params = sum(n_params(m) for m in models)
    if a.select_c_dpo_ls and a.hyper_select_c:
        res.c = cs
    measure_front(
        problem,
        res,
        lambda split: [_c_scaled(problem, split, model_scores(problem, m, split), c) for m, c in zip(models, cs)],
    )
    return res


def single_objective_models(problem, a: TableArgs, seed: int, cache: dict):
    """The m single-objective DPO models (shared by DPO Soup and, as reward models, by MO-DPO)."""
    if "single" not in cache:
        out = []
        for j in range(problem.n_aux):
            model, log = _train_scalarised(problem, np.eye(problem.n_aux)[j], a, seed)
            out.append((model, log))
        cache["single"] = out
    return cache["single"]


def run_dpo_soup(problem, grid, a: TableArgs, seed: int, cache: dict) -> MethodResult:
    res = MethodResult("dpo_soup")
    singles = single_objective_models(problem, a, seed, cache)
    res.seconds = sum(log["seconds"] for _, log in singles)
    res.epochs = [log["best_epoch"] for _, log in singles]
    res.n_params = sum(n_params(m) for m, _ in singles)
    states = [m.state_dict() for m, _ in singles]

    def soup(w):
        model = problem.g_model()
        model.load_state_dict({k: sum(float(wj) * s[k] for wj, s in zip(w, states)) for k in states[0]})
        return model

    measure_front(problem, res, lambda split: [model_scores(problem, soup(w), split) for w in grid])
    return res


def run_mo_dpo(problem, grid, a: TableArgs, seed: int, cache: dict) -> MethodResult:
    res = MethodResult("mo_dpo")
    singles = single_objective_models(problem, a, seed, cache)
    rewards = [m for m, _ in singles[1:]]  # reward models of objectives 2..m
    res.seconds = sum(log["seconds"] for _, log in singles[1:])
    beta, phi0 = problem.params.beta, problem.phi[0]

    def margins(b):
        with torch.no_grad():  # r_j = β·(s_j − s_base) = β·g_j(x), the reward model's implicit reward
            return torch.stack([beta * r(b.X) for r in rewards], dim=-1)

    val = problem.data["val"]
    models = []
    for w_orig in grid:
        w = np.asarray(w_orig, dtype=float).copy()
        if w[0] < a.w0_min:
            w[0] = a.w0_min
            w = w / w.sum()
        loss_fn = lambda mdl, b, rng, w=w: modpo_listwise_loss(
            b.base + mdl(b.X), b.base, b.labels[..., 1], b.mask, margins(b), w, beta, phi0
        )

        def val_fn(mdl, w=w_orig):
            return -float(np.dot(w, problem.aux_ndcg((val.base + mdl(val.X)).numpy(), "val")))

        model, log = fit(
            problem.g_model(seed=seed),
            loss_fn,
            problem.data["train"],
            epochs=a.epochs,
            lr=problem.params.lr,
            batch_size=a.batch_size,
            seed=seed,
            val_fn=val_fn,
            patience=a.patience,
        )
        models.append(model)
        res.seconds += log["seconds"]
        res.epochs.append(log["best_epoch"])
    res.n_params = sum(n_params(m) for m in models) + sum(n_params(r) for r in rewards)
    measure_front(problem, res, lambda split: [model_scores(problem, m, split) for m in models])
    return res


def run_methods(problem: RankingProblem, a: TableArgs, seed: int) -> dict[str, MethodResult]:
    """Train every requested method on `problem` (set up) with `seed`; methods in `a.methods` order."""
    grid = weight_grid(problem.n_aux, a.n_points, seed)
    cache: dict = {}
    out = {}
    for name in a.methods:
        if name == "hyperdpo":
            out[name] = run_hyperdpo(problem, grid, a, seed)
        elif name == "dpo_ls":
            out[name] = run_dpo_ls(problem, grid, a, seed)
        elif name == "dpo_soup":
            out[name] = run_dpo_soup(problem, grid, a, seed, cache)
        else:
            out[name] = run_mo_dpo(problem, grid, a, seed, cache)
        out[name].grid = grid
    return out
