"""`commit_generation` of 10,000 tiny individuals: the row-at-a-time commit of an older evofair vs today's.

The older `store.py` is read from git (`--before`, default a3bc352, the last commit with per-row
inserts) and imported under another name; both commit the same 10,000 individuals into fresh run
directories, alternating, `--rounds` times. Wall and CPU seconds (this process's, which on a shared
machine varies far less with other people's load than wall time), best of the rounds.

    .venv/bin/python benchmarks/commit_batched_ab.py --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def old_store_module(rev: str, tmp: Path):
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:evofair/store/run_store.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / "store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("store_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def individuals(n: int, hashes: list[str]):
    from evofair.core.individual import Individual, individual_id

    return [
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


def commit_seconds(store_cls, root: Path, n: int) -> tuple[float, float]:
    store = store_cls(root)
    hashes = [store.put_weights({"w": torch.tensor([float(i)])}) for i in range(n)]
    store.flush()
    inds = individuals(n, hashes)
    wall, cpu = time.perf_counter(), time.process_time()
    store.commit_generation(1, inds, [i.id for i in inds], {"hv_val": 0.5, "n_front": 10, "evaluations": n})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="a3bc352")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    from evofair.store.run_store import RunStore

    best = {"before": [float("inf")] * 2, "after": [float("inf")] * 2}
    with tempfile.TemporaryDirectory() as tmp:
        old = old_store_module(args.before, Path(tmp))
        for r in range(args.rounds):
            for label, cls in (("before", old.RunStore), ("after", RunStore)):
                wall, cpu = commit_seconds(cls, Path(tmp) / f"{label}-{r}", args.n)
                best[label] = [min(best[label][0], wall), min(best[label][1], cpu)]
    for label, (wall, cpu) in best.items():
        print(
            f"{label:6s} ({args.before if label == 'before' else 'this checkout'}): commit_generation of "
            f"{args.n:,}: wall {wall / args.n * 1e6:6.1f} µs, CPU {cpu / args.n * 1e6:6.1f} µs per individual "
            f"-> {args.n / wall:,.0f} individuals/s (wall)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
