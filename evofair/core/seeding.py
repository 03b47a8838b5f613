"""Deterministic seeds derived from (run seed, generation, individual, purpose).

Every random choice in a run takes its seed from here, never from global RNG state or from
scheduling order, so serial and Ray runs agree and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends only on `parts` (ints or short strings)."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) & 0xFFFFFFFF for p in parts]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


# numpy's SeedSequence constants (numpy/random/bit_generator.pyx), for `derive_seeds`
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_MASK32 = 0xFFFFFFFF


def derive_seeds(seed: int, generation: int, n: int) -> list[int]:
    """`[derive_seed(seed, generation, i) for i in range(n)]`, computed for all i at once.

    A vector problem makes thousands of individuals a second; one `SeedSequence` each cost more
    than storing them. This is SeedSequence's own hash (entropy mixed into a pool of 4 words,
    then 2 words drawn), on uint32 columns; tests/evofair/test_seeding.py checks it equals
    `derive_seed` on random and edge inputs."""
    if n <= 0:
        return []
    words = [np.full(n, int(seed) & _MASK32, np.uint32), np.full(n, int(generation) & _MASK32, np.uint32)]
    words += [np.arange(n, dtype=np.uint64).astype(np.uint32), np.zeros(n, np.uint32)]
    hash_const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal hash_const
        value = value ^ np.uint32(hash_const)
        hash_const = (hash_const * _MULT_A) & _MASK32
        value = value * np.uint32(hash_const)
        return value ^ (value >> np.uint32(16))

    with np.errstate(over="ignore"):
        pool = [hashmix(w) for w in words]
        for src in range(4):
            for dst in range(4):
                if src != dst:
                    mixed: Any = np.uint32(_MIX_L) * pool[dst] - np.uint32(_MIX_R) * hashmix(pool[src])
                    pool[dst] = mixed ^ (mixed >> np.uint32(16))
        state, const = [], _INIT_B
        for word in pool[:2]:
            value = word ^ np.uint32(const)
            const = (const * _MULT_B) & _MASK32
            value = value * np.uint32(const)
            state.append((value ^ (value >> np.uint32(16))).astype(np.uint64))
    seeds = ((state[0] << np.uint64(31)) ^ state[1]) & np.uint64(2**63 - 1)
    return seeds.tolist()


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
