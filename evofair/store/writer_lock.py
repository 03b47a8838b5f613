"""One writer per run directory: an exclusive `flock` on `.lock`, released when the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from evofair.errors import UserError
from evofair.store.safe_io import safe_open_lock

DB_NAME = "evofair.sqlite"


def writer_alive(root: Path) -> bool:
    """Whether a process holds the run directory's write lock (or left a non-empty WAL behind)."""
    wal = root / f"{DB_NAME}-wal"
    if wal.exists() and wal.stat().st_size > 0:
        return True
    try:
        fh = open(root / ".lock", "rb")
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def acquire_lock(root: Path):
    """One writer per run directory: an exclusive flock on `.lock`, released when the process dies."""
    fh = safe_open_lock(root / ".lock")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise UserError(f"{root}: in use by another evofair process (pid {holder}); wait for it or kill it") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh
