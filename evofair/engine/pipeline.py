"""Offspring plans and how an executor turns one into a checkpoint: merge → mutate → refine.

The engine decides *what* to make (a `Plan`: parents, operators, arguments, seeds); executors
decide *where* it is made. `realise` (and `realise_all` for the offspring a problem trains
together, in the groups `stack_groups` cuts) is what every executor calls, in the driver or on a
worker, so the result depends only on the plans, never on where or in which order they ran.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch

from evofair.core.genome import WeightsGenome, genome_of
from evofair.core.individual import Weights


@dataclass(frozen=True)
class OpCall:
    """One operator application: registered name, validated arguments (JSON-able), seed."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    child: int = 0  # which of a crossover's children this plan keeps

    def record(self) -> dict[str, Any]:
        out = {"name": self.name, "args": dict(self.args), "seed": self.seed}
        if self.child:
            out["child"] = self.child
        return out


@dataclass(frozen=True)
class GenomeRef:
    """A realised genome inside the engine's population: individual id plus content hash."""

    id: str
    key: str  # weights sha256

    def __eq__(self, other):  # pymoo's duplicate check compares by content
        return isinstance(other, GenomeRef) and other.key == self.key

    def __hash__(self):
        return hash(self.key)


@dataclass(frozen=True)
class Plan:
    """How to make one offspring. `parents` are GenomeRefs (empty for an initial individual)."""

    parents: tuple[GenomeRef, ...] = ()
    init: OpCall | None = None
    crossover: OpCall | None = None
    mutation: OpCall | None = None
    refine: OpCall | None = None

    @cached_property  # pymoo's duplicate check compares plans pairwise: hash once
    def key(self) -> str:
        payload = json.dumps(self.record(), sort_keys=True) + "|" + ",".join(p.key for p in self.parents)
        return hashlib.sha256(payload.encode()).hexdigest()

    def __eq__(self, other):
        return isinstance(other, Plan) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def record(self) -> dict[str, Any]:
        return {
            k: getattr(self, k).record()
            for k in ("init", "crossover", "mutation", "refine")
            if getattr(self, k) is not None
        }

    def with_refine(self, refine: OpCall | None) -> Plan:
        return replace(self, refine=refine)


@dataclass(frozen=True)
class Operators:
    """The resolved operator functions a worker needs (looked up once per process)."""

    crossover: Mapping[str, Any]
    mutation: Mapping[str, Any]
    refine: Mapping[str, Any]

    @classmethod
    def load(cls, paths: Sequence[str] = ()) -> Operators:
        """Every operator a plan may name resolves lazily, by entry point or `module:attr`."""
        from evofair.core.plugins import registry

        return cls(*(_Lookup(registry(k, paths)) for k in ("crossover", "mutation", "refine")))


class _Lookup(dict):
    """name → Spec, filled on first use (a worker imports only the operators its plans name)."""

    def __init__(self, reg):
        super().__init__()
        self.reg = reg

    def __missing__(self, name: str):
        spec = self[name] = self.reg.get(name)
        return spec


@dataclass
class Realised:
    weights: Weights | None  # None where a worker wrote them to the store: then `key` names them
    log: dict[str, Any]
    key: str | None = None


def _finite(weights: Weights) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())


def _vary(plan: Plan, parent_weights: Sequence[Weights], problem, ops: Operators) -> tuple[Weights, dict[str, Any]]:
    """The offspring before local learning (init or parent → crossover → mutation) and its log."""
    log: dict[str, Any] = {}
    if plan.init is not None:
        weights = problem.init_weights(plan.init.seed)
    else:
        weights = parent_weights[0]
    if plan.crossover is not None:
        spec = ops.crossover[plan.crossover.name]
        base = problem.base_weights() if spec.tags.get("needs_base") else None
        genome = genome_of(problem)
        assert isinstance(genome, WeightsGenome), "plans are realised for checkpoint genomes only"
        children, merge_log = genome.crossover(
            problem, spec, list(parent_weights), spec.args(**plan.crossover.args), seed=plan.crossover.seed, base=base
        )
        weights = children[plan.crossover.child]
        if merge_log:
            log["crossover"] = merge_log
    if plan.mutation is not None:
        spec = ops.mutation[plan.mutation.name]
        weights = spec.fn(weights, spec.args(**plan.mutation.args), seed=plan.mutation.seed)
    return weights, log


def _refine(plan: Plan, weights: Weights, parent_weights: Sequence[Weights], problem, ops: Operators):
    assert plan.refine is not None
    spec = ops.refine[plan.refine.name]
    reference = parent_weights[0] if parent_weights else None
    return spec.fn(weights, spec.args(**plan.refine.args), seed=plan.refine.seed, problem=problem, reference=reference)


def _accept(refined, weights: Weights, log: dict[str, Any]) -> Realised:
    if _finite(refined.weights):
        log["refine"] = refined.log
        return Realised(refined.weights, _jsonable(log))
    log["refine_rejected"] = "non-finite weights after local search"  # the engine records the event
    return Realised(weights, _jsonable(log))  # keep the pre-refinement weights


def realise(plan: Plan, parent_weights: Sequence[Weights], problem, ops: Operators) -> Realised:
    """Make the offspring a plan describes. Never modifies `parent_weights`."""
    weights, log = _vary(plan, parent_weights, problem, ops)
    if plan.refine is None:
        return Realised(weights, _jsonable(log))
    return _accept(_refine(plan, weights, parent_weights, problem, ops), weights, log)


def _refine_stack(problem, ops: Operators, plan: Plan) -> int:
    if plan.refine is None or not hasattr(problem, "refine_stack"):
        return 1
    spec = ops.refine[plan.refine.name]
    return int(problem.refine_stack(spec, spec.args(**plan.refine.args)))


def refine_key(call: OpCall) -> str:
    """What plans must share to be refined together: the refine operator and its arguments."""
    return json.dumps([call.name, dict(call.args)], sort_keys=True, default=str)


def refine_stacks(plans: Sequence[Plan], problem, ops: Operators) -> dict[str, int]:
    """{`refine_key`: how many offspring of that refine `problem` trains at once} for the plans'
    refines (`problem.refine_stack`, 1 where a problem has none). Asked of whoever holds the problem
    that trains them: the driver's for the serial executor, a worker's for the others."""
    out: dict[str, int] = {}
    for p in plans:
        if p.refine is not None and refine_key(p.refine) not in out:
            out[refine_key(p.refine)] = _refine_stack(problem, ops, p)
    return out


def stack_groups(plans: Sequence[Plan], stacks: Mapping[str, int]) -> list[list[int]]:
    """The plans (by index) realised together: those whose refine has a stack > 1 in `stacks`
    (`refine_stacks`), grouped by `refine_key` in plan order and cut into consecutive chunks of
    that stack (the last one smaller); every other plan alone. Groups are ordered by their first
    plan. A pure function of the plans and the stack sizes, never of workers or scheduling:
    stacked training equals separate training only up to float reassociation, so every executor
    must stack exactly these groups for a recipe's front to be the same whichever runs it."""
    by_key: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i, p in enumerate(plans):
        size = stacks.get(refine_key(p.refine), 1) if p.refine is not None else 1
        if size < 2:
            groups.append([i])
            continue
        assert p.refine is not None
        open_ = by_key.get(refine_key(p.refine))
        if open_ is None or len(open_) == size:
            open_ = by_key[refine_key(p.refine)] = []
            groups.append(open_)
        open_.append(i)
    return sorted(groups, key=lambda g: g[0])


def realise_all(
    plans: Sequence[Plan],
    parents_of: Callable[[Plan], Sequence[Weights]],
    problem,
    ops: Operators,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Realised]:
    """`realise` of every plan, the same offspring, but where the problem trains several offspring
    of one refine operator at once (`problem.refine_stack(spec, args) > 1`, e.g. LoRA adapters
    stacked through one forward: problems/common/stacked_sft.py) each of `stack_groups`' groups is
    refined together by `problem.refine_together(spec, args, [(weights, seed)])`, which must return
    what the operator returns for each. Otherwise one plan at a time. Serial runs a generation
    through this; the other executors give a worker one group at a time and it runs the group
    through this, so the same groups are stacked everywhere. `parents_of(plan)` gives a plan's
    parents' weights (loaded when needed); `progress(n)` is told how many offspring are finished
    as they finish."""
    stacks = refine_stacks(plans, problem, ops)
    stacked = [p.refine is not None and stacks[refine_key(p.refine)] > 1 for p in plans]
    if not any(stacked):
        made = []
        for p in plans:
            made.append(realise(p, parents_of(p), problem, ops))
            progress(len(made))
        return made
    varied = [_vary(p, parents_of(p), problem, ops) for p in plans]
    refined: dict[int, Any] = {}
    for idx in stack_groups(plans, stacks):
        if not stacked[idx[0]]:
            continue
        call = plans[idx[0]].refine
        assert call is not None
        spec = ops.refine[call.name]
        items = [(varied[i][0], plans[i].refine.seed) for i in idx]  # type: ignore[union-attr]
        refined.update(zip(idx, problem.refine_together(spec, spec.args(**call.args), items)))
        progress(len(refined))
    out = []
    for i, plan in enumerate(plans):
        weights, log = varied[i]
        if plan.refine is None:
            out.append(Realised(weights, _jsonable(log)))
        else:
            one = refined[i] if i in refined else _refine(plan, weights, parents_of(plan), problem, ops)
            out.append(_accept(one, weights, log))
        if i not in refined:
            progress(len(refined) + sum(1 for j in range(i + 1) if j not in refined))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value
