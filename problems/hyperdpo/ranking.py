"""Learning to rank with auxiliary objectives (HyperDPO's LTR experiment, docs/method-definitions.md#hyperdpo) on LETOR data.

Main label = relevance; the auxiliary objectives are document features *removed from the input*
and used as graded labels, as the paper does with MSLR features 132–136 (quality scores, clicks,
dwell time: query-independent signals of a document's popularity/quality). MQ2008 (LETOR 4.0,
46 features) has no click features; its query-independent link/URL features play that role:
41 PageRank, 42 in-link count, 43 out-link count, 44 number of slashes in the URL, 45 URL length,
46 number of child pages (LETOR 4.0 feature list). All of 41–46 leave the input (features 1–40,
the text-match features, remain). Default auxiliary objectives: 41 PageRank and 46 child pages —
within-query Spearman correlation −0.09 on the shipped subset, a genuine trade-off, whereas
PageRank and in-links (42) correlate +0.58 and barely conflict; for 3–5 objectives add 44, 42, 45
(`[41, 46, 44]`, `[41, 46, 44, 42, 45]`). 44/45 are inverted by default (1 − v: prefer shallow,
short URLs, a classic quality prior). Feature 43 is constant 0 in the shipped subset — unusable.

Models: a base ranker s_base (MLP) is trained on relevance with ListNet once per process; its
scores are cached. Every fine-tuned model is an *augmentation* s_θ = s_base + g_θ(x[, w]) with g's
last layer starting at zero (so fine-tuning starts at the base; the paper's "augmentation network",
Appendix B.2.3). The genome is g only. Conditioning concatenates w to each document's features.
The rankers and their training loop `fit` are in ranker.py; HyperDPO's ICOS training of a
conditioned ranker (`train_icos`) is in icos_training.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from evofair.core.individual import Weights
from evofair.core.problem import Objective, WeightsProblem
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.core.torch_utils import torch_threads
from evofair.errors import UserError
from evofair.problems import shipped_data
from evofair.problems.hyperdpo.icos_training import train_icos
from evofair.problems.hyperdpo.letor import Groups, load_letor, mean_ndcg, ndcg_per_query, parse_feature_ids, to_groups
from evofair.problems.hyperdpo.losses import Phi, listwise_dpo_loss
from evofair.problems.hyperdpo.ranker import Ranker, condition_weights, fit

DATA_DIR = shipped_data("letor_mq2008_subset")
MQ2008_NAMES = {41: "pagerank", 42: "inlinks", 43: "outlinks", 44: "url_slashes", 45: "url_length", 46: "child_pages"}


class RankingParams(Args):
    train_path: str | None = Field(None, description="LETOR train file; None: split val_path's queries")
    val_path: str | None = Field(None, description="default: the shipped MQ2008 validation subset")
    test_path: str | None = Field(None, description="default: the shipped MQ2008 test subset")
    n_features: int | None = Field(None, ge=1, description="features per row (46 MQ2008, 136 MSLR); None: inferred")
    drop_qids: list[int] = Field(default_factory=list, description="queries to drop (e.g. a truncated one)")
    train_fraction: float = Field(
        0.7, gt=0, lt=1, description="share of val_path's queries used for training when there is no train_path"
    )
    split_seed: int = 0
    input_features: str = Field("1-40", description="1-based feature ids fed to the ranker")
    aux_features: list[int] = Field(
        [41, 46], min_length=2, max_length=5, description="features used as auxiliary labels (2 to 5)"
    )
    invert_features: list[int] = Field([44, 45], description="auxiliary features read as 1 − v")
    phi: Phi | list[Phi] = Field("l1", description="label transform per auxiliary objective")
    beta: float = Field(1.0, gt=0, description="DPO temperature")
    hidden: int = Field(64, ge=1, description="width of the fine-tuned g")
    w_scale: float = Field(
        5.0,
        gt=0,
        description="w enters a conditioned g as w_scale·w, on the scale of the "
        "standardised features (at 1 the w columns barely moved the front, measured)",
    )
    base_hidden: int = Field(64, ge=1)
    base_epochs: int = Field(200, ge=1)
    base_patience: int = Field(30, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = Field(0, ge=0, description="seed of the base model (and of a HyperDPO-seeded population)")
    k: int = Field(10, ge=1, description="NDCG@k")
    no_relevant: Literal["zero", "skip"] = Field(
        "zero", description="NDCG of a query without relevant document: 0 (as sklearn) or left out of the mean"
    )
    init: Literal["base", "hyperdpo"] = Field(
        "base",
        description="initial population: the base with a small "
        "random g, or w-samples of one HyperDPO-conditioned model",
    )
    init_scale: float = Field(0.1, ge=0, description="scale of g's last layer for init='base'")
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration for ICOS / seeding")
    lam: float = Field(1.0, ge=0, description="ICOS cosine penalty")
    hyper_epochs: int = Field(300, ge=1, description="max ICOS epochs for init='hyperdpo'")
    patience: int = Field(
        20, ge=1, description="early stopping (epochs without a better validation w·NDCG_aux) of fine-tuning"
    )

    @field_validator("aux_features")
    @classmethod
    def _distinct(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("auxiliary features must be distinct")
        return v


@component("problem", "letor", RankingParams)
class RankingProblem(WeightsProblem):
    """LETOR ranking: maximise the auxiliary labels' NDCG@k; the main (relevance) NDCG is reported."""

    name = "letor"

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        p = self.params
        self.aux_ids = list(p.aux_features)
        self.n_aux = len(self.aux_ids)
        phis = [p.phi] * self.n_aux if isinstance(p.phi, str) else list(p.phi)
        if len(phis) != self.n_aux:
            raise UserError(f"problem.args.phi: expected 1 or {self.n_aux} values, got {len(phis)}")
        self.phi = tuple(phis)
        self.aux_names = [self._aux_name(f) for f in self.aux_ids]
        self.objectives = tuple(Objective(f"ndcg{p.k}_{n}", "max") for n in self.aux_names)
        self.default_hv_ref = (0.0,) * self.n_aux
        self.main_metric = f"ndcg{p.k}_main"

    def _aux_name(self, f: int) -> str:
        base = MQ2008_NAMES.get(f, f"f{f}") if self.params.n_features in (None, 46) else f"f{f}"
        return ("inv_" + base) if f in self.params.invert_features else base

    # -- data --------------------------------------------------------------------------------
    def _paths(self) -> dict[str, Path | None]:
        p = self.params
        root = Path(self.data_root) / "letor_mq2008_subset" if self.data_root else DATA_DIR
        return {
            "train": Path(p.train_path) if p.train_path else None,
            "val": Path(p.val_path) if p.val_path else root / "val.txt",
            "test": Path(p.test_path) if p.test_path else root / "test.txt",
        }

    def check_inputs(self) -> None:
        for split, path in self._paths().items():
            if path is not None and not path.is_file():
                raise UserError(f"problem.args.{split}_path: {path}: LETOR file not found")

    def setup(self) -> None:
        p = self.params
        paths = self._paths()
        self.input_ids = [f for f in parse_feature_ids(p.input_features) if f not in self.aux_ids]

        def load(path):
            return to_groups(
                load_letor(path, p.n_features, p.drop_qids), self.input_ids, self.aux_ids, p.invert_features
            )

        val_all = load(paths["val"])
        if paths["train"] is not None:
            train, val = load(paths["train"]), val_all
        else:
            perm = np.random.default_rng(p.split_seed).permutation(len(val_all))
            n_tr = int(round(p.train_fraction * len(val_all)))
            if n_tr < 1 or n_tr >= len(val_all):
                raise UserError("problem.args.train_fraction: leaves an empty train or val split")
            train, val = val_all.take(np.sort(perm[:n_tr])), val_all.take(np.sort(perm[n_tr:]))
        test = load(paths["test"])
        real = train.X[train.mask]
        self.mu, self.sd = real.mean(0), real.std(0).clamp_min(1e-6)
        self.data = {}
        for split, g in (("train", train), ("val", val), ("test", test)):
            g.X = (g.X - self.mu) / self.sd * g.mask.unsqueeze(-1)
            self.data[split] = g
        self.d = len(self.input_ids)
        self.base_model, self.base_log = self._train_base()
        with torch.no_grad():
            for g in self.data.values():
                g.base = self.base_model(g.X) * g.mask
        self._conditioned: Weights | None = None

    def _train_base(self):
        p = self.params
        with torch_seeded(p.seed):
            model = Ranker(self.d, p.base_hidden)

        def listnet(mdl, b, rng):
            return listwise_dpo_loss(
                mdl(b.X), torch.zeros_like(b.mask, dtype=torch.float32), b.labels[..., 0], b.mask, 1.0, "softmax"
            )[0]

        val = self.data["val"]
        val_fn = lambda mdl: -self._ndcg(mdl(val.X).numpy(), val, 0)
        return fit(
            model,
            listnet,
            self.data["train"],
            epochs=p.base_epochs,
            lr=p.lr,
            batch_size=8,
            seed=p.seed,
            val_fn=val_fn,
            patience=p.base_patience,
        )

    def _ndcg(self, scores: np.ndarray, g: Groups, col: int) -> float:
        per_q = ndcg_per_query(scores, g.labels[..., col].numpy(), g.mask.numpy(), self.params.k)
        return mean_ndcg(per_q, self.params.no_relevant)

    def aux_ndcg(self, scores: np.ndarray, split: str) -> np.ndarray:
        """The auxiliary NDCG@k vector of one score array (what early stopping watches on val)."""
        g = self.data[split]
        return np.array([self._ndcg(scores, g, 1 + j) for j in range(self.n_aux)])

    def metrics_of_scores(self, scores: np.ndarray, split: str) -> dict[str, float]:
        g = self.data["test" if split == "test" else split]
        out = {o.name: self._ndcg(scores, g, 1 + j) for j, o in enumerate(self.objectives)}
        out[self.main_metric] = self._ndcg(scores, g, 0)
        return out

    # -- WeightsProblem ----------------------------------------------------------------------
    def g_model(self, conditioned: bool = False, seed: int = 0, zero_last: bool = True) -> Ranker:
        with torch_seeded(seed & 0xFFFFFFFFFFFF):
            return Ranker(self.d, self.params.hidden, self.n_aux if conditioned else 0, zero_last, self.params.w_scale)

    def build_model(self, weights: Weights) -> Ranker:
        model = self.g_model()
        model.load_state_dict(weights)
        return model

    def base_weights(self) -> Weights:
        return {k: torch.zeros_like(v) for k, v in self.g_model().state_dict().items()}

    def init_weights(self, seed: int) -> Weights:
        if self.params.init == "hyperdpo":
            from evofair.problems.hyperdpo.losses import seed_population

            return seed_population(self, self.conditioned_weights(), 1, seed, self.params.alpha)[0][1]
        model = self.g_model(seed=seed, zero_last=False)
        with torch.no_grad():
            model.net[4].weight.mul_(self.params.init_scale)
            model.net[4].bias.mul_(self.params.init_scale)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def conditioned_weights(self) -> Weights:
        """One HyperDPO (ICOS) conditioned model, trained once per process from `seed`."""
        if self._conditioned is None:
            p = self.params
            model, _ = train_icos(self, seed=p.seed, epochs=p.hyper_epochs, alpha=p.alpha, lam=p.lam)
            self._conditioned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return self._conditioned

    def condition(self, conditioned: Weights, w) -> Weights:
        return condition_weights(conditioned, w, self.params.w_scale)

    def train_batches(self, seed: int, batch_size: int):
        train = self.data["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        for i in range(0, len(order), batch_size):
            yield train.take(order[i : i + batch_size])

    def listwise_scores(self, model: Ranker, batch: Groups) -> torch.Tensor:
        return batch.base + model(batch.X)

    def listwise_labels(self, batch: Groups):
        return batch.labels[..., 1:], batch.mask

    def loss(self, model, batch) -> torch.Tensor:
        """Plain fine-tuning loss (for `sft`): equal-weight listwise DPO against the base."""
        L = listwise_dpo_loss(
            self.listwise_scores(model, batch),
            batch.base,
            batch.labels[..., 1:],
            batch.mask,
            self.params.beta,
            self.phi,
        )
        return L.mean()

    def evaluate(self, genomes, split):
        rows = []
        g = self.data[split]
        for weights in genomes:
            with torch.no_grad(), torch_threads(1):
                scores = (g.base + self.build_model(weights)(g.X)).numpy()
            rows.append(self.metrics_of_scores(scores, split))
        return {k: np.array([r[k] for r in rows]) for k in rows[0]} if rows else {}

    def report_sections(self, store, out, recipe):
        base = {s: self.metrics_of_scores(self.data[s].base.numpy(), s) for s in ("val", "test")}
        names = self.objective_names
        md = (
            "| split | "
            + " | ".join(names + [self.main_metric])
            + " |\n"
            + "|---" * (len(names) + 2)
            + "|\n"
            + "".join(
                f"| {s} | " + " | ".join(f"{base[s][n]:.4f}" for n in names + [self.main_metric]) + " |\n" for s in base
            )
        )
        return {
            "markdown": {"Base ranker (ListNet on relevance)": md},
            "points": {"base ranker": np.array([[base["val"][n] for n in names[:2]]])},
        }

    def describe(self):
        return {
            "queries": {s: len(g) for s, g in self.data.items()},
            "input_features": len(self.input_ids),
            "aux": dict(zip(self.aux_names, self.aux_ids)),
            "base_epochs": self.base_log["best_epoch"],
        }
