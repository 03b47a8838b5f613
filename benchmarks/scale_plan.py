"""A cluster run planned on paper from measured driver costs: where the
driver stops keeping GPUs busy.

    .venv/bin/python benchmarks/scale_plan.py                      # driver costs, 10,000 tiny genomes, Ray
    .venv/bin/python benchmarks/scale_plan.py --offspring-gpu-s 90 # with another per-offspring GPU time

Measured here (the driver's serial work, CPU): writing a Plan (PlanMaker.cross + its content key);
the two ways weights reach the store — through the driver (`RunStore.put_weights` + flush of each
tiny genome: serialise, hash, write) or written by the workers themselves into a shared run directory
(the driver only checks each reported file is there, `RunStore.require_weights`: one stat);
`commit_generation` of 10,000 individuals (SQLite rows, one batched transaction); writing the
safetensors file of a 7B factor genome (33.6 MB); Ray's object store (`ray.put` on the driver + a
worker reading it, per byte); and, on a real local Ray run of the toy recipe, the weight bytes and keys
that crossed between driver and workers per offspring (the executor's `wire` counter, stored as the
run's `object_store` event), with `executor.shared_store: off` (weights via the driver) and `auto`
(workers read and write the run directory). NOT measured (no GPU on this machine): the time of one 7B
offspring on a GPU (merge + noise + SFT + evaluation) — the `--offspring-gpu-s` input, 60 s by
default, an assumption to replace with a measured figure.

The plan: a generation of 256 offspring of the 7B factor genome (max_rank 16, 33.6 MB each, see
genome_scale.py) on 1, 8 and 64 GPUs, for both paths. Workers: ceil(256 / GPUs) × (per-offspring
time, plus writing its 33.6 MB file on the shared-store path). Driver: 256 × (plan + SQLite commit +
either [store write + two parents out and the child back and out again through the object store] or
[one stat + four keys]). The plan adds the two (an upper bound: they overlap); the larger share is the
bottleneck. Timings on the shared 2-core machine vary several-fold with the load of the moment.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

N_TINY = 10_000
OFFSPRING = 256
FACTOR_BYTES_7B = 33_587_200 + 9_000  # genome_scale.py: 7B, r 8 on q/v, max_rank 16 (data + header)


def measure_plans(n: int) -> float:
    from evofair.engine.pipeline import GenomeRef
    from evofair.engine.plans import PlanMaker
    from evofair.lifecycle.recipe import OperatorsCfg

    cfg = OperatorsCfg.model_validate(
        {"crossover": [{"name": "ties", "args": {"density": 0.5}}], "mutation": {"name": "gaussian"}}
    )
    maker, rng = PlanMaker(cfg), np.random.default_rng(0)
    refs = [GenomeRef(f"g{i}", f"{i:064x}") for i in range(64)]
    t = time.perf_counter()
    for i in range(n // 2):
        for plan in maker.cross(refs[i % 64], refs[(i * 7 + 1) % 64], rng):
            plan = maker.mutate(plan, rng)
            _ = plan.key
    return (time.perf_counter() - t) / n


def measure_store(n: int, root: Path) -> dict[str, float]:
    from evofair.core.individual import Individual, individual_id
    from evofair.store.run_store import RunStore

    store = RunStore(root)
    genomes = [{"w": torch.tensor([float(i), 1.0, 2.0, 3.0]), "b": torch.tensor([float(-i)])} for i in range(n)]
    t = time.perf_counter()
    hashes = [store.put_weights(g) for g in genomes]
    store.flush()
    put = (time.perf_counter() - t) / n
    inds = [
        Individual(
            id=individual_id(1, i),
            generation=1,
            parents=("a", "b"),
            seed=i,
            weights_hash=h,
            operator={"crossover": {"name": "ties", "args": {"density": 0.5}, "seed": i}},
            metrics={s: {"error": 0.1, "dtpr": 0.2, "eod": 0.3} for s in ("val", "test")},
        )
        for i, h in enumerate(hashes)
    ]
    t = time.perf_counter()
    store.require_weights(hashes)  # the shared-store path: the driver only checks the workers' files exist
    require = (time.perf_counter() - t) / n
    t = time.perf_counter()
    store.commit_generation(1, inds, [ind.id for ind in inds], {"hv_val": 0.5, "n_front": 10, "evaluations": n})
    commit = (time.perf_counter() - t) / n
    big = {"w": torch.randn(FACTOR_BYTES_7B // 4 // 64, 64)}
    t = time.perf_counter()
    store.put_weights(big)
    store.flush()
    big_put = time.perf_counter() - t
    store.close()
    return {"put_tiny_s": put, "require_tiny_s": require, "commit_sqlite_s": commit, "put_7b_factor_s": big_put}


def measure_wire(tmp: Path) -> dict[str, dict] | None:
    """Weight bytes and keys between driver and Ray workers per offspring, on a local Ray run of the
    toy recipe (runs/toy_ray.yaml, 2 workers), weights via the driver vs the shared store."""
    import evofair
    from evofair.lifecycle.recipe import read_recipe_file
    from evofair.store.run_store import RunStore

    recipe = read_recipe_file(str(Path(__file__).resolve().parent.parent / "runs" / "toy_ray.yaml"))
    out = {}
    for mode in ("off", "auto"):
        run = tmp / f"wire-{mode}"
        r = {
            **recipe,
            "executor": {**recipe.get("executor", {}), "name": "ray", "num_workers": 2, "shared_store": mode},
        }
        try:
            evofair.run(r, run, progress=False)
        except Exception as exc:  # a loaded machine: Ray may not start in time
            print(f"  (Ray run did not complete: {str(exc).splitlines()[0]})")
            return None
        store = RunStore(run, readonly=True)
        (event,) = store.events("object_store")
        genome = store.individuals()[0].weights_hash
        out[mode] = {
            **event["data"],
            "genome_bytes": store.weights_path(genome).stat().st_size,
            "front": (run / "front.csv").read_text(),
        }
        store.close()
    return out


def measure_object_store(nbytes: int = 64 * 2**20) -> float | None:
    """Seconds per byte: ray.put on the driver, a one-CPU worker task reading the whole buffer."""
    try:
        import ray
    except ImportError:
        return None
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # a loaded machine: the node may not start in time
        print(f"  (Ray did not start: {str(exc).splitlines()[0]})")
        return None
    try:

        @ray.remote
        def touch(x):
            return int(x[::4096].sum())

        ray.get(touch.remote(np.zeros(16, dtype=np.uint8)))  # start the worker
        data = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            ray.get(touch.remote(ray.put(data)))
            best = min(best, time.perf_counter() - t)
        return best / nbytes
    finally:
        ray.shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--offspring-gpu-s",
        type=float,
        default=60.0,
        help="one 7B offspring on one GPU (merge, noise, SFT, evaluation): ASSUMED, not measured",
    )
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args(argv)
    plan_s = measure_plans(N_TINY)
    with tempfile.TemporaryDirectory() as tmp:
        store = measure_store(N_TINY, Path(tmp) / "run")
        wire = None if args.no_ray else measure_wire(Path(tmp))
    per_byte = None if args.no_ray else measure_object_store()
    print(f"driver, measured with {N_TINY:,} tiny genomes:")
    print(f"  plan (cross + mutate + key)      {plan_s * 1e6:9.1f} µs per offspring")
    print(
        f"  put_weights + flush (tiny)       {store['put_tiny_s'] * 1e6:9.1f} µs per individual (weights via the driver)"
    )
    print(f"  require_weights (tiny)           {store['require_tiny_s'] * 1e6:9.1f} µs per individual (shared store)")
    print(
        f"  commit_generation (SQLite rows)  {store['commit_sqlite_s'] * 1e6:9.1f} µs per individual"
        f"  -> {1 / store['commit_sqlite_s']:,.0f} individuals/s"
    )
    print(
        f"  write of a 7B factor genome ({FACTOR_BYTES_7B / 1e6:.1f} MB): {store['put_7b_factor_s']:.3f} s "
        "(the driver's, or each worker's on the shared store)"
    )
    if per_byte is not None:
        print(f"  Ray object store put + worker read: {1 / per_byte / 1e9:.2f} GB/s")
    if wire is not None:
        print("  between driver and Ray workers, toy recipe (runs/toy_ray.yaml, 2 workers), per offspring:")
        for mode, label in (("off", "weights via the driver"), ("auto", "shared store")):
            w = wire[mode]
            n = w["offspring"]
            print(
                f"    {label:24s} {(w['weight_bytes_out'] + w['weight_bytes_in']) / n:10.0f} weight bytes "
                f"(out {w['weight_bytes_out'] / n:.0f}, back {w['weight_bytes_in'] / n:.0f}; genome file "
                f"{w['genome_bytes']} B), {w['keys'] / n:.1f} keys; {n} offspring"
            )
        print(f"    same front.csv on both paths: {wire['off']['front'] == wire['auto']['front']}")
    transfer = 4 * FACTOR_BYTES_7B * (per_byte or 0)  # two parents out, the child back and out to evaluate
    via_driver = OFFSPRING * (plan_s + store["commit_sqlite_s"] + store["put_7b_factor_s"] + transfer)
    shared = OFFSPRING * (plan_s + store["commit_sqlite_s"] + store["require_tiny_s"])
    print(
        f"\nplan on paper: {OFFSPRING} offspring of the 7B factor genome per generation, "
        f"{args.offspring_gpu_s:.0f} s per offspring on a GPU (assumed)"
    )
    print(
        f"  weights via the driver: driver {via_driver:.1f} s per generation (store writes "
        f"{OFFSPRING * store['put_7b_factor_s']:.1f} s, object store {OFFSPRING * transfer:.1f} s, SQLite "
        f"{OFFSPRING * store['commit_sqlite_s']:.2f} s, plans {OFFSPRING * plan_s:.3f} s)"
    )
    print(
        f"  shared store:           driver {shared:.2f} s per generation (SQLite {OFFSPRING * store['commit_sqlite_s']:.2f} s, "
        f"file checks {OFFSPRING * store['require_tiny_s']:.3f} s, plans {OFFSPRING * plan_s:.3f} s); each worker "
        f"writes its offspring ({store['put_7b_factor_s']:.2f} s)"
    )
    for label, driver, extra in (
        ("via the driver", via_driver, 0.0),
        ("shared store", shared, store["put_7b_factor_s"]),
    ):
        print(f"  {label}:")
        for gpus in (1, 8, 64):
            workers = math.ceil(OFFSPRING / gpus) * (args.offspring_gpu_s + extra)
            total = workers + driver
            where = "GPUs" if workers >= driver else "driver"
            print(
                f"    {gpus:3d} GPU(s): workers {workers:8.0f} s + driver {driver:6.1f} s = {total / 60:7.1f} min per "
                f"generation; bottleneck: {where} ({max(workers, driver) / total:.0%})"
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sys.exit(main())
