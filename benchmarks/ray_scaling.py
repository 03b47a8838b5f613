"""Ray scaling: the same fine-tuning-heavy run with the serial executor, Ray with 1 worker and
Ray with 2 workers, measured in one process and interleaved so machine noise hits all alike.

Work: the toy neural problem (problems/toy.py, 4,096 training examples, 32→64→2 MLP), NSGA-II
with `uniform` merges, Gaussian noise and 6 SFT epochs (AdamW) per offspring, so each realise
task is ~0.3 s of single-threaded training. Every configuration uses one torch thread per
process (driver, serial, each actor), so the comparison is of executors, not of BLAS threading.
Timed: `Engine.run()` only — Ray start-up and actor start-up (importing torch and building the
problem in each actor, once per run) are printed separately, and one warm-up task per worker
pays torch's lazy first-optimizer imports before the clock starts.

Goals: speedup Ray-2 over Ray-1 ≥ 1.6 on 2 cores; overhead Ray-1 over serial ≤ 1.15.

    .venv/bin/python benchmarks/ray_scaling.py [--pop 16] [--gens 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster, no token needed
os.environ["OMP_NUM_THREADS"] = "1"  # inherited by Ray's workers; RayWorker pins torch to it

import torch  # noqa: E402

PROBLEM = {"n_train": 4096, "n_eval": 512, "n_features": 32, "hidden": 64}
SFT = {"epochs": 6, "optimizer": "adamw", "lr": 0.01, "batch_size": 64}


def recipe(pop: int, gens: int, executor: dict) -> dict:
    return {
        "name": "ray-scaling",
        "problem": {"name": "toy_mlp", "args": PROBLEM},
        "algorithm": {"name": "nsga2", "pop_size": pop, "generations": gens},
        "operators": {
            "crossover": {"name": "uniform"},
            "crossover_prob": 0.9,
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
            "refine": {"name": "sft", "args": SFT},
        },
        "executor": executor,
        "seed": 1,
    }


def warm_up(executor, problem, n: int) -> None:
    """One refine task per worker, so no timed task pays torch's first-optimizer imports."""
    from evofair.engine.pipeline import GenomeRef, OpCall, Plan

    plans = [Plan(parents=(GenomeRef(f"w{i}", f"h{i}"),), refine=OpCall("sft", SFT, 100 + i)) for i in range(n)]
    executor.realise_weights(plans, lambda key: problem.init_weights(0))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (the driver and the Ray actors)."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def timed_run(pop: int, gens: int, executor_cfg: dict) -> tuple[float, float, float, list[float]]:
    """(seconds in Engine.run, seconds starting the executor, CPU cores the run obtained on
    average — CPU seconds of driver + actors over wall seconds —, per-generation val HV)."""
    from evofair.engine.loop import Engine
    from evofair.executors import make_executor
    from evofair.lifecycle.rebuild import ProblemFactory
    from evofair.lifecycle.recipe import parse_recipe
    from evofair.problems.classic.toy import ToyMLP, ToyParams
    from evofair.store.run_store import RunStore

    rec = parse_recipe(recipe(pop, gens, executor_cfg))
    problem = ToyMLP(ToyParams(**PROBLEM)).ensure_setup()
    with tempfile.TemporaryDirectory() as tmp, make_executor(rec.executor) as executor:
        t = time.perf_counter()
        executor.start(ProblemFactory("toy_mlp", PROBLEM), problem if rec.executor.name == "serial" else None)
        startup = time.perf_counter() - t
        warm_up(executor, problem, rec.executor.num_workers or 1)
        pids = [os.getpid()]
        if rec.executor.name == "ray":
            pids += [actor["pid"] for actor in executor.placement]  # the actors' pids, from their start-up ping
        store = RunStore(tmp)
        engine = Engine(rec, problem, store, executor, progress=False)
        cpu = cpu_seconds(pids)
        t = time.perf_counter()
        engine.run()
        elapsed = time.perf_counter() - t
        cores = (cpu_seconds(pids) - cpu) / elapsed
        hv = [g["hv_val"] for g in store.generations()]
        store.close()
    return elapsed, startup, cores, hv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pop", type=int, default=16)
    ap.add_argument("--gens", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the driver (and the serial executor) single-threaded too

    import ray

    t = time.perf_counter()
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}
    )
    print(
        f"ray.init: {time.perf_counter() - t:.1f} s (not timed below); cores: {os.cpu_count()}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    configs = {
        "serial": {"name": "serial"},
        "ray x1": {"name": "ray", "num_workers": 1},
        "ray x2": {"name": "ray", "num_workers": 2},
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    starts: dict[str, list[float]] = {k: [] for k in configs}
    cores: dict[str, list[float]] = {k: [] for k in configs}
    cpus: dict[str, list[float]] = {k: [] for k in configs}
    fronts = {}
    try:
        timed_run(4, 1, {"name": "serial"})  # warm-up of the driver: imports, first optimizer
        for _ in range(args.repeats):  # interleaved
            for name, cfg in configs.items():
                elapsed, startup, used, hv = timed_run(args.pop, args.gens, cfg)
                times[name].append(elapsed)
                cores[name].append(used)
                cpus[name].append(used * elapsed)
                starts[name].append(startup)
                fronts[name] = hv
    finally:
        ray.shutdown()
    tasks = args.pop * args.gens
    print(
        f"load average after: {os.getloadavg()[0]:.2f} (above ~2 on 2 cores, other processes took CPU "
        "from the workers and the speedup reads low)"
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in configs:
        print(
            f"{k:7s}: {med[k]:6.2f} s per run (median of {args.repeats}; {tasks} refine tasks, "
            f"{med[k] / tasks * 1000:.0f} ms/task), executor start-up {statistics.median(starts[k]):.1f} s, "
            f"CPU {statistics.median(cpus[k]):.2f} s, CPU cores obtained {statistics.median(cores[k]):.2f}; "
            f"all: {', '.join(f'{x:.2f}' for x in times[k])}"
        )
    assert fronts["serial"] == fronts["ray x1"] == fronts["ray x2"], "executors disagree on the run's HV history"
    print(f"speedup ray x2 over ray x1:  {med['ray x1'] / med['ray x2']:.3f}  (goal >= 1.6 on 2 cores)")
    print(f"overhead ray x1 over serial: {med['ray x1'] / med['serial']:.3f}  (goal <= 1.15)")
    print(f"speedup ray x2 over serial:  {med['serial'] / med['ray x2']:.3f}")
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    print(
        f"CPU seconds ray x1 / serial:  {cpu['ray x1'] / cpu['serial']:.3f}, ray x2 / serial: "
        f"{cpu['ray x2'] / cpu['serial']:.3f}  (Ray's work overhead, insensitive to other load)"
    )
    print(
        '("CPU cores obtained" = CPU seconds of driver + actors / wall seconds: with 2 workers on an idle '
        "2-core machine it nears 2; if it stays near 1, other load capped the speedup, not the executor)"
    )


if __name__ == "__main__":
    main()
