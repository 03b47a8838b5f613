"""Crossover by model merging (docs/method-definitions.md#one-generation, step 2).

The LLM merge family (linear, SLERP, task arithmetic, TIES, DARE) is delegated to mergekit's
in-memory `merge_state_dicts`, so evofair's merges are mergekit's merges. Only `uniform`
(element-wise c ~ U(0,1), FaMOEL's weight averaging) is written here: mergekit has no such method.
Each merge returns two children; the second mirrors the first's coefficients, so NSGA-II's
two-offspring mating works with every method.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mergekit.merge_methods.api import merge_state_dicts
from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.problem import HasBase
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.errors import UserError


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)


def merge_coefficient(fixed: float | None, seed: int) -> float:
    """A fixed coefficient, or one drawn from U(0,1) with the operator's seed.

    Public: the factor genome (problems/common/low_rank.py) draws the very same coefficient so
    its merges equal the dense genome's."""
    if fixed is not None:
        return fixed
    return float(torch.rand((), generator=_generator(seed), dtype=torch.float64))


def _canonical(weights: Weights) -> Weights:
    """The same tensors with names sorted.

    mergekit walks tensors in the first input's key order, and DARE draws its masks from one RNG
    stream in that order; a parent fresh from `init_weights` and the same parent loaded back from
    its (sorted) safetensors file would otherwise get different masks.
    """
    return {name: weights[name] for name in sorted(weights)}


def _two(parents: Sequence[Weights]) -> tuple[Weights, Weights]:
    if len(parents) != 2:
        raise ValueError(f"this merge takes 2 parents, got {len(parents)}")
    return _canonical(parents[0]), _canonical(parents[1])


class UniformArgs(Args):
    scalar: bool = Field(False, description="one c per tensor instead of one per element")


@component("crossover", "uniform", UniformArgs)
def uniform(parents: Sequence[Weights], args: UniformArgs, *, seed: int, base: Weights | None = None):
    """Element-wise averaging: child1 = c⊙θ1 + (1−c)⊙θ2, child2 the mirror, c ~ U(0,1)."""
    p1, p2 = _two(parents)
    gen = _generator(seed)
    child1, child2 = {}, {}
    for name in sorted(p1):
        a, b = p1[name], p2[name]
        if not a.is_floating_point():
            child1[name], child2[name] = a.clone(), a.clone()
            continue
        shape = () if args.scalar else a.shape
        c = torch.rand(shape, generator=gen, dtype=torch.float64).to(a.dtype)
        child1[name] = c * a + (1 - c) * b
        child2[name] = (1 - c) * a + c * b
    return [child1, child2]


class LinearArgs(Args):
    weight: float | None = Field(None, ge=0, le=1, description="weight of parent 1 (None: U(0,1))")
    normalize: bool = True


@component("crossover", "linear", LinearArgs)
def linear(parents: Sequence[Weights], args: LinearArgs, *, seed: int, base: Weights | None = None):
    """Weighted average of the two parents (mergekit `linear`); child 2 swaps the weights."""
    p1, p2 = _two(parents)
    w = merge_coefficient(args.weight, seed)
    return [
        merge_state_dicts([p1, p2], "linear", parameters={"weight": [wa, wb], "normalize": args.normalize})
        for wa, wb in ((w, 1 - w), (1 - w, w))
    ]


class SlerpArgs(Args):
    t: float | None = Field(None, ge=0, le=1, description="interpolation from parent 1 (None: U(0,1))")


@component("crossover", "slerp", SlerpArgs)
def slerp(parents: Sequence[Weights], args: SlerpArgs, *, seed: int, base: Weights | None = None):
    """Spherical interpolation of each tensor as one vector (mergekit `slerp`); child 2 uses 1−t."""
    p1, p2 = _two(parents)
    t = merge_coefficient(args.t, seed)
    return [merge_state_dicts({"a": p1, "b": p2}, "slerp", parameters={"t": tt}, base="a") for tt in (t, 1 - t)]


class TaskArithmeticArgs(Args):
    weight: float | None = Field(None, ge=0, le=1, description="weight of parent 1's delta (None: U(0,1))")
    lambda_: float = Field(1.0, alias="lambda", gt=0, description="scale of the merged delta")
    normalize: bool = False


class TiesArgs(TaskArithmeticArgs):
    density: float = Field(0.5, gt=0, le=1, description="fraction of each delta kept")
    normalize: bool = True


def _task_family(method: str, parents, args, seed: int, base: Weights | None, extra: dict) -> list[Weights]:
    if base is None:
        raise UserError(f"crossover {method!r} needs the problem's base weights, and this problem has none")
    p1, p2 = _two(parents)
    w = merge_coefficient(args.weight, seed)
    base = _canonical(base)
    children = []
    for k, (wa, wb) in enumerate(((w, 1 - w), (1 - w, w))):
        params = {"weight": {"a": wa, "b": wb}, "lambda": args.lambda_, "normalize": args.normalize, **extra}
        # DARE draws its drop masks from torch's global RNG: seed it per child.
        with torch_seeded(seed + k + 1):
            children.append(merge_state_dicts({"a": p1, "b": p2, "base": base}, method, parameters=params, base="base"))
    return children


@component("crossover", "task_arithmetic", TaskArithmeticArgs, needs_base=True, requires=(HasBase,))
def task_arithmetic(parents, args: TaskArithmeticArgs, *, seed: int, base: Weights | None = None):
    """Base + λ·Σ w_i (θ_i − base) (mergekit `task_arithmetic`)."""
    return _task_family("task_arithmetic", parents, args, seed, base, {})


@component("crossover", "ties", TiesArgs, needs_base=True, requires=(HasBase,))
def ties(parents, args: TiesArgs, *, seed: int, base: Weights | None = None):
    """TIES: trim deltas to `density` by magnitude, elect signs, merge agreeing entries (mergekit)."""
    return _task_family("ties", parents, args, seed, base, {"density": args.density})


class DareArgs(TiesArgs):
    normalize: bool = False
    rescale: bool = True


@component("crossover", "dare_ties", DareArgs, needs_base=True, requires=(HasBase,))
def dare_ties(parents, args: DareArgs, *, seed: int, base: Weights | None = None):
    """DARE with TIES sign consensus: random drop to `density`, rescale, elect (mergekit)."""
    return _task_family("dare_ties", parents, args, seed, base, {"density": args.density, "rescale": args.rescale})


@component("crossover", "dare_linear", DareArgs, needs_base=True, requires=(HasBase,))
def dare_linear(parents, args: DareArgs, *, seed: int, base: Weights | None = None):
    """DARE without sign consensus (mergekit `dare_linear`)."""
    return _task_family("dare_linear", parents, args, seed, base, {"density": args.density, "rescale": args.rescale})
