"""Components for screening variants of `fapareto_vs_baselines.py` that the package does not ship
(measured, none helps: README.md beside this file). Referenced from a recipe as
`fapareto_variant_ops:<name>` with `paths: [<this folder>]`.

`--variant logw`: the individual's fairness weight w treated as a self-adaptive strategy parameter (as in evolution
strategies) instead of an ordinary tensor — merged geometrically, exp(c·log w1 + (1−c)·log w2),
and mutated log-normally, w·exp(τ·N(0,1)) clipped to [lo, hi]. Why try it: the shipped operators
average w arithmetically, which pulls every lineage towards the middle of the initial range and
loses the near-CE individuals of the accurate corner.

`--variant base30`: problem `BiasBiosTrainedBase`, BiasBios whose shared base head θ₀ is first
trained with cross-entropy (`base_epochs`), so every model — evolved or baseline, both start from
θ₀ + noise — starts fine-tuned, as the paper's LLMs do.

The other variants (sft-decay, sft-swa, pooled-val, pooled-dtpr, dtpr-max-train, soft-val,
dtpr-floor*) each say below why they were tried; the README beside this file has what they measured."""

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from evofair.analysis.metrics import fairness_metrics
from evofair.core.operator import Refined, training_batches
from evofair.core.problem import Trainable
from evofair.core.registry import component
from evofair.core.seeding import torch_seeded
from evofair.operators import merge
from evofair.operators.mutation import GaussianArgs, gaussian
from evofair.operators.refine import SFTArgs, make_optimizer, train_step
from evofair.problems.common.baselines import train_heads
from evofair.problems.common.classification import SplitData
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

KEY = "fair_weight"


class LogArgs(GaussianArgs):
    tau: float = Field(0.3)
    lo: float = Field(1e-3)
    hi: float = Field(10.0)


@component("mutation", "gaussian_logw", LogArgs)
def gaussian_logw(weights, args, *, seed):
    out = gaussian(weights, args, seed=seed)
    if KEY in weights:
        g = torch.Generator().manual_seed((seed + 17) & 0xFFFFFFFFFFFF)
        w = float(weights[KEY].reshape(-1)[0])
        w = w * math.exp(args.tau * float(torch.randn((), generator=g)))
        out[KEY] = torch.tensor([min(max(w, args.lo), args.hi)])
    return out


def _geo(children, parents, seed):
    if KEY not in parents[0]:
        return children
    g = torch.Generator().manual_seed((seed + 29) & 0xFFFFFFFFFFFF)
    c = float(torch.rand((), generator=g))
    a, b = (math.log(float(p[KEY].reshape(-1)[0])) for p in parents[:2])
    children[0][KEY] = torch.tensor([math.exp(c * a + (1 - c) * b)])
    children[1][KEY] = torch.tensor([math.exp((1 - c) * a + c * b)])
    return children


@component("crossover", "uniform_logw", merge.UniformArgs)
def uniform_logw(parents, args, *, seed, base=None):
    return _geo(merge.uniform(parents, args, seed=seed, base=base), parents, seed)


@component("crossover", "ties_logw", merge.TiesArgs, needs_base=True, requires=(merge.HasBase,))
def ties_logw(parents, args, *, seed, base=None):
    return _geo(merge.ties(parents, args, seed=seed, base=base), parents, seed)


class TrainedBaseParams(BiasBiosParams):
    base_epochs: int = Field(30, ge=0, description="cross-entropy epochs of θ₀ (AdamW lr 1e-3, batch 128)")


@component("problem", "biasbios_trained_base", TrainedBaseParams)
class BiasBiosTrainedBase(BiasBios):
    """BiasBios with θ₀ trained on cross-entropy first (see module doc)."""

    Params = TrainedBaseParams

    def head_base_weights(self):
        if self._base is None:
            base = super().head_base_weights()
            fair = base.pop("fair_weight", None)
            # the baselines' own CE trainer (λ = 0, one head): AdamW lr 1e-3, weight decay 0.01, batch 128
            self._base = train_heads(
                self,
                [base],
                [0.0],
                [self.params.base_seed],
                epochs=self.params.base_epochs,
                batch_size=128,
                lr=1e-3,
                weight_decay=0.01,
            )[0]
            if fair is not None:
                self._base["fair_weight"] = fair
        return self._base


# -- `--variant sft-decay`, `sft-swa`: the local search's own schedule ---------------------------------
# Why try them: every offspring restarts AdamW at a constant lr 1e-3 for one epoch, so its last steps are
# as large as its first and a converged lineage is kicked off its minimum each generation (the accurate
# corner stays out of reach, docs/fapareto.md). A decaying lr ends each local search with small steps;
# averaging the iterates of the epoch's second half (SWA) lands at the flat centre of where they wander.


class ScheduledSFTArgs(SFTArgs):
    schedule: Literal["linear", "constant"] = Field("linear", description="linear: lr → 0 over the local search")
    average_tail: float = Field(0.0, ge=0, lt=1, description="average the iterates after this fraction of the steps")


def _n_steps(problem, args) -> int:
    if args.steps is not None:
        return args.steps
    return args.epochs * math.ceil(len(problem.splits["train"]) / args.batch_size)


@component("refine", "sft_scheduled", ScheduledSFTArgs, requires=(Trainable,))
def sft_scheduled(weights, args, *, seed, problem, reference=None):
    model = problem.build_model(weights)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, args)
    total = max(_n_steps(problem, args), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda k: max(0.0, 1.0 - k / total)) if args.schedule == "linear" else (lambda k: 1.0)
    )
    start_avg = int(args.average_tail * total) if args.average_tail > 0 else None
    avg, n_avg, losses = None, 0, []
    with torch_seeded(seed):
        for k, batch in enumerate(
            training_batches(problem, seed=seed, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size)
        ):
            losses.append(train_step(problem, model, opt, batch, args.grad_clip))
            sched.step()
            if start_avg is not None and k + 1 > start_avg:
                state = {n: v.detach().clone() for n, v in model.state_dict().items()}
                avg = state if avg is None else {n: avg[n] + (state[n] - avg[n]) / (n_avg + 1) for n in avg}
                n_avg += 1
    if avg is not None:
        model.load_state_dict(avg)
    model.eval()
    return Refined(problem.extract_weights(model), {"loss": [float(x) for x in losses], "steps": len(losses)})


# -- `--variant pooled-val`: selection on train ∪ validate --------------------------------------------
# Why try it: the evolution's fair end is chosen on ΔTPR over 50 male nurses and 95 female surgeons and
# regresses on test (val ΔTPR 0.004–0.013 → test 0.055–0.072 on seed 1); train ∪ validate has 4× as many
# in those cells, at the price of scoring models on the data they were trained on. The evolution's
# fitness and the baselines' selection both read split "val", so both get the pooled rule.


@component("problem", "biasbios_pooled_val", BiasBiosParams)
class BiasBiosPooledVal(BiasBios):
    """BiasBios whose "val" split (fitness and every selection) is train ∪ validate; test untouched."""

    def load_splits(self):
        splits = super().load_splits()
        tr, va = splits["train"], splits["val"]
        splits["val"] = SplitData(torch.cat([tr.X, va.X]), np.concatenate([tr.y, va.y]), np.concatenate([tr.g, va.g]))
        return splits


class PooledDtprParams(BiasBiosParams):
    pooled: list[str] = Field(default_factory=lambda: ["dtpr"], description="metrics read on train and validate")
    combine: Literal["pooled", "max"] = Field(
        "pooled",
        description="pooled: on train ∪ validate; max: the larger of the train "
        "and validate values (a model counts as fair only if fair on both)",
    )


@component("problem", "biasbios_pooled_metrics", PooledDtprParams)
class BiasBiosPooledMetrics(BiasBiosPooledVal):
    """`--variant pooled-dtpr`, `dtpr-max-train`: only the metrics named in `pooled` read the training
    split too; the rest (error) come from validate alone, where a model's own training data does not
    flatter it."""

    Params = PooledDtprParams

    def load_splits(self):
        splits = super().load_splits()
        self._n_train = len(splits["train"])
        return splits

    def metrics_of_predictions(self, P, split):
        out = super().metrics_of_predictions(P, split)
        if split != "val":
            return out
        v, n = self.splits["val"], self._n_train

        def part(sl):
            return fairness_metrics(
                P[:, sl], v.y[sl], v.g[sl], classes=np.arange(self.n_classes), pos_label=self.pos_label
            )

        own, train = part(slice(n, None)), part(slice(0, n))
        if self.params.combine == "max":
            out = {k: np.maximum(own[k], train[k]) for k in out}
        return {k: (out[k] if k in self.params.pooled else own[k]) for k in out}


# -- `--variant soft-val`: selection on the expected ΔTPR of the model's probabilities ----------------
# Why try it: hard ΔTPR on 50 male nurses moves in steps of 0.02 and selection picks models that are
# lucky on those few bios; the mean predicted probability of the true class per (group, class) cell is
# a lower-variance estimate of the same gap (a randomised classifier's expected ΔTPR).


@component("problem", "biasbios_soft_val", BiasBiosParams)
class BiasBiosSoftVal(BiasBios):
    """Validate-side ΔTPR (fitness and every selection) from probabilities; test keeps hard ΔTPR."""

    def head_predictions(self, genomes, split):
        if split != "val" or not genomes:
            return super().head_predictions(genomes, split)
        with torch.no_grad():
            probs = torch.softmax(self.population_logits(genomes, split), -1).numpy()
        self._val_probs = probs
        return probs.argmax(-1)

    def metrics_of_predictions(self, P, split):
        out = super().metrics_of_predictions(P, split)
        if split != "val":
            return out
        probs = getattr(self, "_val_probs", None)
        if probs is None or probs.shape[:2] != P.shape or not (probs.argmax(-1) == P).all():
            return out  # (c)'s randomised thresholds have no probabilities: hard ΔTPR, as before
        v = self.splits["val"]
        gaps = []
        for c in range(self.n_classes):
            rate = [probs[:, (v.y == c) & (v.g == g), c].mean(axis=1) for g in sorted(set(v.g.tolist()))]
            gaps.append(np.abs(rate[0] - rate[1]))
        return {**out, "dtpr": np.mean(gaps, axis=0)}


# -- `--variant dtpr-floor`: ΔTPR on validate floored at its noise level ------------------------------
# Why try it: ΔTPR on validate has a standard error of ≈ 0.035 (50 male nurses, 95 female surgeons);
# the evolution fills half its front with models whose validate ΔTPR < 0.03 and whose test ΔTPR is
# 0.03–0.05 higher (heritable luck: offspring are near-copies of lucky parents). With a floor ε,
# every model below ε ties on ΔTPR and selection prefers the lowest error among them (ε-dominance).


class FloorParams(BiasBiosParams):
    dtpr_floor: float = Field(0.03, ge=0, description="validate ΔTPR below this counts as this")


@component("problem", "biasbios_dtpr_floor", FloorParams)
class BiasBiosDtprFloor(BiasBios):
    Params = FloorParams

    def metrics_of_predictions(self, P, split):
        out = super().metrics_of_predictions(P, split)
        if split == "val":
            out = {**out, "dtpr": np.maximum(out["dtpr"], self.params.dtpr_floor)}
        return out
