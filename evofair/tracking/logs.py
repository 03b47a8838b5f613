"""`logging` for evofair: the console (levels from -v/-q) and a `run.log` in each run directory.

Everything evofair says while it works goes through loggers under `evofair` (`evofair.run`,
`evofair.progress`, `evofair.ray`, ...), so a user's own logging configuration applies as for any
library. Two handlers are evofair's own:

- the console handler the CLI installs (`configure_console`): INFO by default, WARNING with `-q`,
  DEBUG with `-v`; it writes through `tqdm.write` so a line never tears a progress bar, and on a
  TTY it leaves `evofair.progress` lines to the bars that show the same thing;
- `run_log(out)`: while a run works, INFO and above (warnings, worker errors with their
  tracebacks, callback errors, each generation's summary, Python warnings) are appended to
  `out/run.log`, opened without following a link planted there (see `evofair.store.safe_io`).

Nothing is configured at import: a library user who never calls these gets Python's defaults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from evofair.errors import UserError
from evofair.store.safe_io import check_inside

ROOT = "evofair"
RUN_LOG = "run.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def level_for(verbose: int = 0, quiet: bool = False) -> int:
    """Console level for the CLI's flags: -q → WARNING, none → INFO, -v → DEBUG."""
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 0 else logging.INFO


class ConsoleHandler(logging.Handler):
    """Lines on stderr through `tqdm.write` (bars are redrawn below them), `evofair: ` prefixed."""

    def __init__(self, level: int, stream=None):
        super().__init__(level)
        self.stream = stream
        self.setFormatter(logging.Formatter("evofair: %(message)s"))

    def _stream(self):
        return self.stream if self.stream is not None else sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        stream = self._stream()
        try:
            is_tty = stream.isatty()
        except (AttributeError, ValueError):
            is_tty = False
        if is_tty and record.name.startswith(f"{ROOT}.progress") and record.levelno < logging.WARNING:
            return  # the bars show it
        if getattr(record, "run_log_only", False):
            return  # e.g. a worker's traceback: the CLI says it in one line, run.log keeps the whole text
        try:
            msg = self.format(record)
            if record.levelno >= logging.WARNING and not msg.startswith("evofair: warning"):
                msg = msg.replace("evofair: ", f"evofair: {record.levelname.lower()}: ", 1)
            from tqdm import tqdm

            tqdm.write(msg, file=stream)
        except Exception:  # noqa: BLE001 - logging's own contract: a handler never raises
            self.handleError(record)


def configure_console(level: int, stream=None) -> ConsoleHandler:
    """Install (or replace) the CLI's console handler on the `evofair` logger."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if isinstance(h, ConsoleHandler):
            logger.removeHandler(h)
    handler = ConsoleHandler(level, stream)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the CLI owns the console: no second copy through the root logger
    return handler


def _open_append(path: Path, root: Path):
    """Open `path` for appending, refusing a link or non-regular file planted at that name."""
    check_inside(path, root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | _CLOEXEC, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise UserError(
                f"{path}: is a symbolic link; evofair does not write through links in a run directory (remove it)"
            ) from None
        # a full disk here is reported where it matters (the store's first write); the run goes on unlogged
        logging.getLogger(f"{ROOT}.run").warning(
            "%s: cannot open the run log (%s); running without it", path, exc.strerror
        )
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path}: not a regular file (expected evofair's run log)")
    return os.fdopen(fd, "a", encoding="utf-8")


@contextlib.contextmanager
def run_log(out: Path, level: int = logging.DEBUG) -> Iterator[logging.Handler | None]:
    """Append the `evofair` loggers' records (DEBUG and up: each generation's summary too) and Python
    warnings to `out/run.log` for the block; yields the handler, or None when the log cannot be opened
    (the run goes on without it)."""
    out = Path(out)
    stream = _open_append(out / RUN_LOG, out)
    if stream is None:
        yield None
        return
    handler = _QuietStreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger(ROOT)
    warn_logger = logging.getLogger("py.warnings")
    saved_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)  # run.log gets INFO even when the console shows less
    logger.addHandler(handler)
    warn_logger.addHandler(handler)
    capturing = _capturing_warnings()
    logging.captureWarnings(True)
    try:
        yield handler
    finally:
        if not capturing:
            logging.captureWarnings(False)
        warn_logger.removeHandler(handler)
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        handler.close()
        stream.close()


class _QuietStreamHandler(logging.StreamHandler):
    """A run.log that cannot be written (disk full) must not print logging's own traceback: the
    store's write fails on the same disk and says so in one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _capturing_warnings() -> bool:
    import warnings

    return getattr(warnings.showwarning, "__module__", "") == "logging"


@contextlib.contextmanager
def console_for_library(progress: bool) -> Iterator[None]:
    """`evofair.run(progress=True)` from Python with no `evofair` handler configured: show INFO lines
    (non-TTY progress, the run's summary) on stderr for the run, as the CLI would. A user who set up
    logging (any handler on `evofair` or the root logger) keeps their own configuration."""
    logger = logging.getLogger(ROOT)
    if not progress or logger.handlers or logging.getLogger().handlers:
        yield
        return
    with console(logging.INFO):
        yield


@contextlib.contextmanager
def console(level: int) -> Iterator[None]:
    """The console handler on the `evofair` logger at `level` for the duration; afterwards the
    logger's level, propagation and handlers are as they were (in-process callers, tests)."""
    logger = logging.getLogger(ROOT)
    saved = logger.level, logger.propagate
    handler = configure_console(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
