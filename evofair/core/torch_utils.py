"""Small torch context helpers shared by refiners and problems."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run a block with `n` intra-op threads, then restore (None: leave as is).

    Small heads train fastest on one thread, and on a shared machine more threads than free
    cores made a training step ~10× slower (measured by the FairPO and HyperDPO work).
    """
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
