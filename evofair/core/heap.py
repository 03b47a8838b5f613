"""Keeping Python's cyclic garbage collector off the hot paths of cheap-genome runs.

A vector-problem run makes tens of thousands of small containers (individuals, metric dicts,
decoded JSON) and no reference cycles, in a process that already holds a few hundred thousand
objects (torch, pymoo, matplotlib). Each full collection rescans all of them: on ZDT1 (20,000
evaluations) one full collection took 0.19 s of a 2 s run, and reading all individuals back ran
up to 4x slower while the collector kept rescanning what was already decoded.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (for decoding many acyclic objects at once)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: a step longer than this collects its own cycles before its survivors are frozen (the scan is
#: then a negligible share of it); shorter ones, a cheap vector generation, skip the scan
CHEAP_STEP_SECONDS = 0.05
#: young collections inside the block wait for this many new containers (CPython's default: 700)
YOUNG_THRESHOLD = 50_000


@contextlib.contextmanager
def steps_unscanned(young_threshold: int | None = YOUNG_THRESHOLD) -> Iterator[Callable[[float], None]]:
    """For a run of steps: yields `step_done(seconds)`, to call after each step. Inside the block
    the collector scans neither the heap the run started with nor what each step leaves alive:
    `step_done` freezes the step's survivors (its individuals, kept by the store's in-memory copy),
    and with `young_threshold` a young collection waits for that many new containers, which a cheap
    step never makes. At CPython's threshold a ZDT1 generation of 100 set off about one young
    collection, each rescanning them (0.02 s a run; `benchmarks/zdt1_parts.py`), while such steps
    make little cyclic garbage (a few thousand objects in a 20,000-evaluation run), which stays
    frozen until the block ends.
    With a raised threshold, a step slower than `CHEAP_STEP_SECONDS` (it may build models, and
    cycles holding tensors with them) collects its young objects before they are frozen.
    `young_threshold=None`, for steps that train models: CPython's threshold, so cycles are freed
    as the step goes and its end needs no extra collection; what survives is frozen, as each step's
    start froze the heap before. After the block every object is collectable again and the
    thresholds are CPython's own."""

    def step_done(seconds: float) -> None:
        if young_threshold is not None and seconds > CHEAP_STEP_SECONDS:
            gc.collect(1)  # the step's young objects only: everything older is frozen
        gc.freeze()

    thresholds = gc.get_threshold()
    gc.freeze()
    if young_threshold is not None:
        gc.set_threshold(young_threshold, *thresholds[1:])
    try:
        yield step_done
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
