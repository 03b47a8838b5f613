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
from collections.abc import Iterator


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


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Collections inside the block skip every object that existed before it (`gc.freeze`): the
    collector still frees cycles made inside, and the frozen objects are collectable again after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
