"""Components for screening variants of `fapareto_vs_baselines.py` that the package does not ship
(measured, none helps: benchmarks/README.md). Referenced from a recipe as
`fapareto_variant_ops:<name>` with `paths: [<this folder>]`.

`--variant logw`: the individual's fairness weight w treated as a self-adaptive strategy parameter (as in evolution
strategies) instead of an ordinary tensor — merged geometrically, exp(c·log w1 + (1−c)·log w2),
and mutated log-normally, w·exp(τ·N(0,1)) clipped to [lo, hi]. Why try it: the shipped operators
average w arithmetically, which pulls every lineage towards the middle of the initial range and
loses the near-CE individuals of the accurate corner.

`--variant base30`: problem `BiasBiosTrainedBase`, BiasBios whose shared base head θ₀ is first
trained with cross-entropy (`base_epochs`), so every model — evolved or baseline, both start from
θ₀ + noise — starts fine-tuned, as the paper's LLMs do."""

import math

import torch
from pydantic import Field
from evofair.registry import component
from evofair.operators.mutation import GaussianArgs, gaussian
from evofair.operators import merge
from evofair.problems.fapareto.baselines import train_heads
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
            self._base = train_heads(self, [base], [0.0], [self.params.base_seed], epochs=self.params.base_epochs,
                                     batch_size=128, lr=1e-3, weight_decay=0.01)[0]
            if fair is not None:
                self._base["fair_weight"] = fair
        return self._base

