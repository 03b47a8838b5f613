"""What following a run costs: the packaged zdt1 recipe (100 × 200 = 20,000 evaluations) without
callbacks, with the TensorBoard logger per generation only, and with it per model too.

    .venv/bin/python benchmarks/tracking_overhead.py [--generations 200] [--repeats 1]

Prints each variant's wall time, its ratio to the run without callbacks (measured in the same
process, alternating), and checks that every variant wrote the same front.csv.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import evofair
from evofair.lifecycle.recipe import load_recipe

VARIANTS = {
    "no callbacks": [],
    "tensorboard, per generation": [{"name": "tensorboard", "args": {"per_model": False}}],
    "tensorboard, per generation and model": [{"name": "tensorboard"}],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    base = load_recipe(
        Path(__file__).resolve().parents[1] / "runs" / "zdt1.yaml", [f"algorithm.generations={args.generations}"]
    ).model_dump(mode="json")
    seconds = {name: [] for name in VARIANTS}
    fronts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, callbacks in VARIANTS.items():
                out = Path(tmp) / f"{r}-{list(VARIANTS).index(name)}"
                t = time.perf_counter()
                evofair.run({**base, "callbacks": callbacks}, out, progress=False)
                seconds[name].append(time.perf_counter() - t)
                fronts.setdefault(name, (out / "front.csv").read_bytes())
    ref = min(seconds["no callbacks"])
    evaluations = base["algorithm"]["pop_size"] * args.generations
    print(f"zdt1, {evaluations} evaluations, best of {args.repeats}:")
    for name, times in seconds.items():
        print(f"  {name:40s} {min(times):7.2f} s  x{min(times) / ref:.2f}")
    same = len(set(fronts.values())) == 1
    print("front.csv identical across variants:", same)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
