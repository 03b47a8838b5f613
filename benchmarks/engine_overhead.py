"""Engine overhead: evofair's time per generation vs a minimal hand-written pymoo ask/tell loop.

Both do the same work on the toy neural problem (problems/toy.py, 2,048 examples, 32→64→2 MLP): NSGA-II mating, `uniform`
merge crossover, Gaussian mutation, one SFT epoch per offspring, one batched evaluation of the
offspring on val and test. evofair additionally plans, hashes and stores every checkpoint
(safetensors + SQLite) and records each generation. Goal: ratio ≤ 1.10.

    .venv/bin/python benchmarks/engine_overhead.py [--pop 32] [--gens 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import NoDuplicateElimination
from pymoo.core.evaluator import Evaluator
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem as PymooProblem
from pymoo.core.sampling import Sampling
from pymoo.problems.static import StaticProblem

from evofair.operators.merge import UniformArgs, uniform
from evofair.operators.mutation import GaussianArgs, gaussian
from evofair.operators.refine import SFTArgs, sft
from evofair.problems.classic.toy import ToyMLP, ToyParams

SFT = SFTArgs(epochs=1, optimizer="adamw", lr=0.01, batch_size=64)
NOISE = GaussianArgs(sigma=0.05)


# A head-sized network (BiasBios heads see 3.8k examples): small, but not so small that the
# benchmark measures Python bookkeeping against a few microseconds of arithmetic.
PROBLEM = {"n_train": 2048, "n_eval": 512, "n_features": 32, "hidden": 64}


def recipe(pop: int, gens: int) -> dict:
    return {
        "name": "overhead",
        "problem": {"name": "toy_mlp", "args": PROBLEM},
        "algorithm": {"name": "nsga2", "pop_size": pop, "generations": gens},
        "operators": {
            "crossover": {"name": "uniform"},
            "crossover_prob": 0.9,
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
            "refine": {"name": "sft", "args": SFT.model_dump()},
        },
        "seed": 1,
    }


def hand_written(pop: int, gens: int) -> float:
    """The smallest honest pymoo loop doing the same work, weights held directly in X."""
    problem = ToyMLP(ToyParams(**PROBLEM)).ensure_setup()
    seeds = iter(range(10**9))

    class Init(Sampling):
        def _do(self, p, n, *a, random_state=None, **k):
            X = np.empty((n, 1), dtype=object)
            for i in range(n):  # evofair refines the initial population too (refine_initial)
                X[i, 0] = sft(problem.init_weights(next(seeds)), SFT, seed=next(seeds), problem=problem).weights
            return X

    class Merge(Crossover):
        def __init__(self):
            super().__init__(2, 2, prob=0.9)

        def _do(self, p, X, *a, random_state=None, **k):
            Y = np.empty((2, X.shape[1], 1), dtype=object)
            for j in range(X.shape[1]):
                Y[0, j, 0], Y[1, j, 0] = uniform([X[0, j, 0], X[1, j, 0]], UniformArgs(), seed=next(seeds))
            return Y

    class Noise(Mutation):
        def _do(self, p, X, *a, random_state=None, **k):
            Y = np.empty_like(X)
            for i in range(len(X)):
                Y[i, 0] = gaussian(X[i, 0], NOISE, seed=next(seeds))
            return Y

    shape = PymooProblem(n_var=1, n_obj=2, vtype=object)
    alg = NSGA2(
        pop_size=pop,
        sampling=Init(),
        crossover=Merge(),
        mutation=Noise(),
        eliminate_duplicates=NoDuplicateElimination(),
    )
    alg.setup(shape, termination=("n_gen", gens), seed=1)
    t = time.perf_counter()
    for _ in range(gens):
        first = not alg.is_initialized
        off = alg.ask()
        X = off.get("X")
        W = [X[i, 0] if first else sft(X[i, 0], SFT, seed=next(seeds), problem=problem).weights for i in range(len(X))]
        val = problem.evaluate(W, "val")
        problem.evaluate(W, "test")
        for i, w in enumerate(W):
            X[i, 0] = w
        off.set("X", X)
        Evaluator().eval(StaticProblem(shape, F=np.stack([val["error"], val["gap"]], 1)), off)
        alg.tell(infills=off)
    return (time.perf_counter() - t) / gens


def evofair_loop(pop: int, gens: int) -> float:
    """The whole engine loop, store writes and per-generation commits included."""
    from evofair.engine.loop import Engine
    from evofair.executors.serial import SerialExecutor
    from evofair.lifecycle.recipe import parse_recipe
    from evofair.store.run_store import RunStore

    rec = parse_recipe(recipe(pop, gens))
    problem = ToyMLP(ToyParams(**PROBLEM)).ensure_setup()
    with tempfile.TemporaryDirectory() as tmp, SerialExecutor(rec.executor.eval_chunk) as executor:
        executor.start(None, problem)
        store = RunStore(tmp)
        engine = Engine(rec, problem, store, executor, progress=False)
        t = time.perf_counter()
        engine.run()
        elapsed = time.perf_counter() - t
        store.close()
    return elapsed / gens


def seeding_cost(n: int = 200) -> tuple[float, float]:
    """ms per call: torch.manual_seed (seeds every accelerator backend) vs evofair's seed_torch."""
    from evofair.core.seeding import seed_torch

    t = time.perf_counter()
    for i in range(n):
        torch.manual_seed(i)
    full = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        seed_torch(i)
    return full * 1000, (time.perf_counter() - t) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pop", type=int, default=32)
    ap.add_argument("--gens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)  # both loops single-threaded: the comparison is of overhead, not BLAS
    hand_written(4, 1)  # warm-up: torch imports torch._dynamo lazily on the first optimizer (~10 s)
    evofair_loop(4, 1)
    hand, ours = [], []
    for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
        hand.append(hand_written(args.pop, args.gens))
        ours.append(evofair_loop(args.pop, args.gens))
    h, o = statistics.median(hand), statistics.median(ours)
    print(f"hand-written pymoo ask/tell: {h * 1000:.1f} ms/generation (median of {args.repeats})")
    print(f"evofair engine:              {o * 1000:.1f} ms/generation (median of {args.repeats})")
    print(f"ratio evofair / hand-written: {o / h:.3f}  (goal <= 1.10)")
    full, ours_seed = seeding_cost()
    print(f"seeding: torch.manual_seed {full:.3f} ms/call, evofair seed_torch {ours_seed:.4f} ms/call")


if __name__ == "__main__":
    main()
