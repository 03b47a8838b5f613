"""Writing into a run directory without ever writing through a link planted there.

A run directory may come from someone else (a colleague's results, a downloaded archive). A
symbolic link placed in it — `report.html.tmp -> ~/.bashrc`, `.lock -> /etc/passwd`, a `plots`
folder linked elsewhere — must never make evofair write outside it. So every writer goes through
these helpers:

- `atomic_write_bytes/_text` write a fresh temporary file opened with O_CREAT|O_EXCL|O_NOFOLLOW
  (a random name: nothing planted can be in its place, and an existing name is never reused),
  then `os.replace` it onto the target — which replaces a link at the target, never follows it;
- `within=ROOT` also refuses a target whose folder resolves outside ROOT (a linked sub-folder);
- `safe_open_lock` opens `.lock` without following a link.

Python's `tempfile.mkstemp` opens with O_EXCL too, but not O_NOFOLLOW on the final name, and its
0600 mode would stay on the renamed file; this is the few lines it takes to do both.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from evofair.errors import UserError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _refuse_link(path: Path) -> None:
    raise UserError(f"{path}: is a symbolic link; evofair does not write through links in a run directory (remove it)")


def check_inside(path: Path, root: Path) -> None:
    """Refuse `path` whose folder resolves outside `root` (a linked sub-folder of a run directory)."""
    parent = Path(os.path.realpath(path.parent))
    base = Path(os.path.realpath(root))
    if parent != base and base not in parent.parents:
        raise UserError(
            f"{path}: its folder leads outside {root} (a symbolic link?); evofair does not "
            "write outside a run directory"
        )


def atomic_write_bytes(
    path: str | os.PathLike,
    data: bytes,
    *,
    within: str | os.PathLike | None = None,
    fsync: bool = False,
    replace: bool = True,
    before_rename=None,
) -> None:
    """Write `data` to `path` through an exclusively created temporary file, then rename it.

    A killed process never leaves a half-written file under the real name. With `replace=False`
    an existing `path` is never overwritten, even one created a moment ago (a hard link of the
    finished file, which fails if the name exists). `before_rename` is called between writing
    and renaming (failpoints in tests).
    """
    path = Path(path)
    if within is not None:
        check_inside(path, Path(within))
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path, follow_symlinks=False)
            except FileExistsError:
                raise UserError(f"{path}: exists (evofair does not overwrite it; choose a new name)") from None
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(
    path: str | os.PathLike,
    text: str,
    *,
    within: str | os.PathLike | None = None,
    replace: bool = True,
    encoding: str = "utf-8",
) -> None:
    atomic_write_bytes(path, text.encode(encoding), within=within, replace=replace)


def safe_open_lock(path: str | os.PathLike):
    """Open (creating if needed) a lock file for reading and writing, refusing a symbolic link."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
    except OSError as exc:
        if path.is_symlink():
            _refuse_link(path)
        raise UserError(f"{path}: cannot open the run lock ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted as `.lock`
        os.close(fd)
        raise UserError(f"{path}: not a regular file (expected evofair's run lock)")
    return os.fdopen(fd, "r+")


def refuse_links(*paths: str | os.PathLike) -> None:
    """Refuse any of `paths` that is a symbolic link (e.g. the run database before SQLite opens it)."""
    for p in paths:
        if Path(p).is_symlink():
            _refuse_link(Path(p))
