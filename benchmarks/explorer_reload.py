"""Explorer on a large run: a full re-read of the store and drawing the front, vs the plain store read.

Builds a ZDT1 run of 100 generations × 100 models (10,000 individuals) and times, interleaved:
the baseline `RunStore.individuals()` (what any reader must do at least), the explorer's full
`RunData.refresh()` (that read + its snapshot), and `front_figure` with every model drawn.

    .venv/bin/python benchmarks/explorer_reload.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import evofair
from evofair.explorer.data import RunData
from evofair.explorer.front_figure import front_figure
from evofair.store.run_store import RunStore


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        evofair.run(
            {
                "name": "zdt1-10k",
                "problem": {"name": "zdt1"},
                "algorithm": {"pop_size": 100, "generations": 100},
                "operators": {"crossover": {"name": "sbx"}, "crossover_prob": 1.0, "mutation": {"name": "pm"}},
            },
            out,
            progress=False,
        )
        plain, reread, figure = [], [], []
        for _ in range(args.repeats):

            def read():
                store = RunStore(out, readonly=True)
                store.individuals()
                store.close()

            plain.append(timed(read))
            reread.append(timed(lambda: RunData(out).refresh()))
            snap = RunData(out).refresh()
            figure.append(
                timed(
                    lambda: front_figure(snap, x="f1", y="f2", colour=None, split="val", generation=None, show_all=True)
                )
            )
        p, r, f = (statistics.median(v) for v in (plain, reread, figure))
        print(f"10,000 models; median of {args.repeats}")
        print(f"plain RunStore.individuals():  {p:.3f} s")
        print(f"explorer RunData.refresh():    {r:.3f} s   ratio to plain read {r / p:.2f}")
        print(f"front_figure, all models drawn: {f:.3f} s")


if __name__ == "__main__":
    main()
