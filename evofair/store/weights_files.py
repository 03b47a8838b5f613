"""Content-addressed weights files: one safetensors file per distinct genome, named by its sha256.

Used by the driver's `RunStore` and by workers that share the run directory (they write offspring
themselves): a file is written once, by write-then-rename, and every read checks that its bytes
still hash to its name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from evofair.core import failpoints
from evofair.core.individual import Weights
from evofair.errors import UserError, WeightsIntegrityError
from evofair.store.safe_io import atomic_write_bytes, check_inside

DIGEST = re.compile(r"[0-9a-f]{64}")


def weights_bytes(weights: Mapping[str, torch.Tensor]) -> bytes:
    """Canonical safetensors bytes of a genome (keys sorted, contiguous CPU tensors)."""
    tensors = {k: weights[k].detach().to("cpu").contiguous() for k in sorted(weights)}
    return st_save(tensors)


def weights_hash(weights: Mapping[str, torch.Tensor]) -> str:
    return hashlib.sha256(weights_bytes(weights)).hexdigest()


def atomic_write(path: Path, data: bytes, fsync: bool = False, root: Path | None = None) -> None:
    """Write-then-rename, so a killed process never leaves a half-written file under its name.

    No fsync by default: a process kill (the failure runs meet) keeps the page cache, and an fsync
    per checkpoint cost ~10 ms each, a sixth of a small generation. EVOFAIR_FSYNC=1 turns it on
    for power-loss durability. With `root`, a `weights` folder linked outside the run is refused
    before anything is created there.
    """
    if root is not None:
        check_inside(path, root)
    path.parent.mkdir(parents=True, exist_ok=True)

    def halfway():
        failpoints.hit("kill_mid_weights")

    failpoints.hit("enospc_weights")
    atomic_write_bytes(path, data, fsync=fsync, before_rename=halfway)


def weights_file(root: Path, digest: str) -> Path:
    """Where a run keeps the weights hashing to `digest` (`weights/ab/abcd….safetensors`)."""
    if not DIGEST.fullmatch(str(digest)):  # a digest from a tampered index must not name other files
        raise WeightsIntegrityError(f"{digest!r}: not a sha256 weights digest")
    return Path(root) / "weights" / digest[:2] / f"{digest}.safetensors"


def read_weights_file(root: Path, digest: str) -> Weights:
    """Load weights by digest, checking that the file's content still hashes to its name."""
    path = weights_file(root, digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: weights file missing") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise WeightsIntegrityError(
            f"{path}: content hash {actual[:12]}… does not match its name (file corrupted or edited)"
        )
    return dict(st_load(data))


def write_weights_file(root: Path, weights: Mapping[str, torch.Tensor]) -> tuple[str, bytes]:
    """Write a genome under its content hash unless that file is already there; (digest, bytes).

    What a Ray worker calls on a store every worker shares: an existing file (an orphan a killed
    run left before its driver committed, or a duplicate) is reused, never rewritten, and the
    write-then-rename means a reader never sees a half-written file under the name.
    """
    data = weights_bytes(weights)
    digest = hashlib.sha256(data).hexdigest()
    path = weights_file(root, digest)
    if not path.exists():
        atomic_write(path, data, os.environ.get("EVOFAIR_FSYNC") == "1", Path(root))
    return digest, data
