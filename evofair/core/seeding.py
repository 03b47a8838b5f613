"""Deterministic seeds derived from (run seed, generation, individual, purpose).

Every random choice in a run takes its seed from here, never from global RNG state or from
scheduling order, so serial and Ray runs agree and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends only on `parts` (ints or short strings)."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) & 0xFFFFFFFF for p in parts]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def seed_torch(seed: int) -> None:
    """Seed torch's global generators. Unlike `torch.manual_seed`, this skips the lazy seeding of
    every accelerator backend (which formats a stack trace per call: 0.15 ms vs 0.003 ms, benchmarks/engine_overhead.py)."""
    seed &= 0xFFFFFFFFFFFF
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def torch_seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the previous state afterwards.

    Libraries such as mergekit (DARE) draw from torch's global generator, and dropout inside a
    model does too; this keeps those draws reproducible without leaking state between tasks.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        seed_torch(seed)
        yield
