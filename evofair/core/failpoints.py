"""Named failure points for fault-injection tests (kill mid-write, disk full).

`EVOFAIR_FAILPOINT=NAME[@N]` makes the N-th (default first) pass through `hit(NAME)` fail:
names starting with `kill` send SIGKILL to this process (nothing gets to clean up, as with a real
crash); `enospc` names raise OSError(ENOSPC) as a full disk would; `sqlite_full` names raise the
sqlite3.OperationalError SQLite itself raises when the disk fills during a write. Unset, `hit`
costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal

_counts: dict[str, int] = {}


def armed() -> bool:
    """Whether a failure point is set: loops that pass one per item skip the passes when not."""
    return bool(os.environ.get("EVOFAIR_FAILPOINT"))


def hit(name: str) -> None:
    spec = os.environ.get("EVOFAIR_FAILPOINT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] != int(nth or 1):
        return
    if name.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("enospc"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if name.startswith("sqlite_full"):
        import sqlite3

        raise sqlite3.OperationalError("database or disk is full")
