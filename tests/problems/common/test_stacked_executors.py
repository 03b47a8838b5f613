"""Every executor stacks the same offspring: `pipeline.stack_groups` cuts a generation's plans into
the groups a worker trains together, from the plans and the problem's stack size alone, and the
serial, processes and Ray executors each realise exactly those groups (Ray's actors as `RayWorker`
objects in this process: the actor code, without starting Ray). Stacked training equals
separate training only to ~1e-6, so the oracle is the serial executor, bit for bit (torch.equal,
equal store keys, equal losses). On these tiny models on the CPU stacked and separate training
happen to agree bitwise, so what shows the grouping is the spy on `refine_together` (in which
process, how many offspring per call); the bitwise comparison guards order, parents and seeds."""

from __future__ import annotations

import os
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
from stacking_parts import spied, spy_problem, tiny_bert

from evofair.engine.pipeline import GenomeRef, OpCall, Operators, Plan, refine_key, stack_groups
from evofair.executors.base import Executor
from evofair.executors.processes import ProcessExecutor
from evofair.executors.ray_executor import RayExecutor
from evofair.executors.ray_worker import RayWorker
from evofair.executors.serial import SerialExecutor
from evofair.lifecycle.rebuild import ProblemFactory
from evofair.store.run_store import RunStore

SFT_A = {"steps": 2, "optimizer": "adamw", "lr": 2e-2, "batch_size": 4, "grad_clip": 1.0}
SFT_B = {**SFT_A, "lr": 1e-2}


def _sft(args, seed: int) -> OpCall:
    return OpCall("sft", args, seed=seed)


def first_generation() -> list[Plan]:
    """Two refines interleaved, and one offspring without local learning. With a stack of 2:
    A at 0, 2 together, B at 1, 3 together, A at 4 alone (a stack of one), 5 not refined."""
    refines = [_sft(SFT_A, 10), _sft(SFT_B, 11), _sft(SFT_A, 12), _sft(SFT_B, 13), _sft(SFT_A, 14), None]
    return [Plan(init=OpCall("init", seed=i), refine=r) for i, r in enumerate(refines)]


def second_generation(keys: list[str]) -> list[Plan]:
    """Children of the first generation's offspring (merged, mutated), all with refine A."""
    a, b, c = (GenomeRef(f"p{i}", k) for i, k in enumerate(keys[:3]))
    noise = OpCall("gaussian", {"sigma": 0.05, "relative": True}, seed=3)
    return [
        Plan((a, b), crossover=OpCall("uniform", {}, seed=4, child=0), refine=_sft(SFT_A, 20)),
        Plan((a, b), crossover=OpCall("uniform", {}, seed=4, child=1), mutation=noise, refine=_sft(SFT_A, 21)),
        Plan((c,), mutation=noise, refine=_sft(SFT_A, 22)),
    ]


def test_stack_groups_is_a_pure_function_of_the_plans():
    plans = first_generation()
    a, b = refine_key(plans[0].refine), refine_key(plans[1].refine)
    assert a != b and refine_key(_sft(dict(reversed(SFT_A.items())), 99)) == a  # seed and key order aside
    assert stack_groups(plans, {a: 2, b: 2}) == [[0, 2], [1, 3], [4], [5]]
    assert stack_groups(plans, {a: 3, b: 2}) == [[0, 2, 4], [1, 3], [5]]
    assert stack_groups(plans, {a: 2, b: 1}) == [[0, 2], [1], [3], [4], [5]]
    assert stack_groups(plans, {a: 1, b: 1}) == stack_groups(plans, {}) == [[i] for i in range(6)]
    many = [Plan(init=OpCall("init", seed=i), refine=_sft(SFT_A, i)) for i in range(7)]
    assert stack_groups(many, {a: 3}) == [[0, 1, 2], [3, 4, 5], [6]]


def test_executor_asks_the_stack_of_each_refine_once():
    class Asking(Executor):
        asked: list[int] = []

        def start(self, factory, problem=None): ...

        def evaluate(self, genomes): ...

        def refine_stacks(self, plans):
            self.asked.append(len(plans))
            return {refine_key(p.refine): 2 for p in plans}

    ex, plans = Asking(), first_generation()
    assert ex.plan_groups(plans) == [[0, 2], [1, 3], [4], [5]]
    assert ex.plan_groups(plans[:3]) == [[0, 2], [1]]
    assert ex.plan_groups([plans[5]]) == [[0]]
    assert ex.asked == [2]  # one plan per distinct refine, once per run
    assert Executor.refine_stacks(ex, plans) == {refine_key(plans[0].refine): 1, refine_key(plans[1].refine): 1}
    assert SerialExecutor.ungroup([[0, 2], [1]], [["x", "z"], ["y"]]) == ["x", "y", "z"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"))


def two_generations(executor, weights: dict) -> list:
    """The two generations' realised offspring; `weights` receives every offspring by a key."""
    out = []
    keys: list[str] = []
    for gen in range(2):
        plans = first_generation() if gen == 0 else second_generation(keys)
        made = executor.realise_weights(plans, weights.__getitem__)
        keys = [f"g{gen}-{i}" for i in range(len(made))]
        weights.update(zip(keys, (m.weights for m in made)))
        out += made
    return out


def assert_bit_identical(got, want) -> None:
    assert len(got) == len(want) == 9
    for g, w in zip(got, want):
        assert g.log == w.log  # the refine's losses too: float equality
        assert g.weights.keys() == w.weights.keys()
        assert all(torch.equal(g.weights[k], w.weights[k]) for k in w.weights)


@pytest.fixture(scope="module")
def serial_made(bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    spy = tmp / "spy"
    ex = SerialExecutor()
    ex.start(None, spy_problem(bert, tmp / "cache", spy, stack=2))
    made = two_generations(ex, {})
    ex.close()
    # each chunk of stack_groups one refine_together call, in the driver
    assert spied(spy) == [(os.getpid(), n) for n in (2, 2, 1, 2, 1)]
    return made


@pytest.mark.slow
def test_processes_stack_the_serial_groups(bert, tmp_path, serial_made, monkeypatch):
    spy = tmp_path / "spy"
    sizes: list[list[int]] = []
    inner = ProcessExecutor._map

    def recording(self, fn, args, **kw):
        if kw.get("sizes") and kw.get("phase") != "evaluate":
            sizes.append(list(kw["sizes"]))
        return inner(self, fn, args, **kw)

    monkeypatch.setattr(ProcessExecutor, "_map", recording)
    ex = ProcessExecutor(num_workers=2)
    ex.start(ProblemFactory("biasbios", instance=spy_problem(bert, tmp_path / "cache", spy, stack=2)))
    try:
        made = two_generations(ex, {})
    finally:
        ex.close()
    assert sizes == [[2, 2, 1, 1], [2, 1]]  # one task per group
    calls = spied(spy)
    assert calls and os.getpid() not in {pid for pid, _ in calls}  # in the workers
    assert sorted(n for _, n in calls) == [1, 1, 2, 2, 2]  # the workers stacked the groups
    assert_bit_identical(made, serial_made)


def local_actor(problem) -> SimpleNamespace:
    """A `RayWorker` body in this process standing in for an actor (no Ray): `.x.remote(...)` runs `x`."""
    worker = object.__new__(RayWorker)
    worker.problem, worker.ops, worker.cache = problem.ensure_setup(), Operators.load(), OrderedDict()
    names = ("realise", "realise_group", "realise_stored", "realise_stored_group", "refine_stacks")
    return SimpleNamespace(**{n: SimpleNamespace(remote=getattr(worker, n)) for n in names})


def test_ray_stacks_the_serial_groups(bert, tmp_path, serial_made, monkeypatch):
    """Both of the Ray executor's weight paths, its actors replaced by a local `RayWorker`: through
    the driver (`ray.put` made the identity), and the shared store, where equal keys are equal bytes."""
    import ray

    monkeypatch.setattr(ray, "put", lambda obj: obj)
    spy = tmp_path / "spy"
    actor = local_actor(spy_problem(bert, tmp_path / "cache", spy, stack=2))
    tasks: list[int] = []

    def run_here(submit, items, phase=None, sizes=None):
        tasks.extend(len(it) for it in items if phase)
        return [submit(actor, it) for it in items]

    ex = RayExecutor()
    ex._map = run_here
    assert_bit_identical(two_generations(ex, {}), serial_made)
    assert spied(spy) == [(os.getpid(), n) for n in (2, 2, 1, 2, 1)]
    assert tasks == [2, 2, 1, 1, 2, 1]

    ex.shared_store, ex.root = True, str(tmp_path / "ray")
    stores = {name: RunStore(tmp_path / name) for name in ("ray", "serial")}
    serial = SerialExecutor()
    serial.start(None, spy_problem(bert, tmp_path / "cache", tmp_path / "spy-serial", stack=2))
    try:
        keys = {}
        for name, executor in (("ray", ex), ("serial", serial)):
            made = executor.realise(first_generation(), stores[name])
            made += executor.realise(second_generation([m.key for m in made]), stores[name])
            keys[name] = [(m.key, m.log) for m in made]
        assert keys["ray"] == keys["serial"]
        assert [r.log for r in serial_made] == [log for _, log in keys["ray"]]
    finally:
        for store in stores.values():
            store.close()
