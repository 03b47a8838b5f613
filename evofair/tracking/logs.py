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

Other libraries' records (fairlearn's grid warnings, transformers' load reports, Python warnings)
go to run.log too, and not to the console, while a run works and nobody configured logging
(`library_records`): they would otherwise reach stderr through Python's last-resort handler or a
library's own stderr handler and bury evofair's lines. Those said during setup, before run.log
exists, are held and written when it opens.

Nothing is configured at import: a library user who never calls these gets Python's defaults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from collections import deque
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
    saved_level, saved_propagate = logger.level, warn_logger.propagate
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)  # run.log gets INFO even when the console shows less
    logger.addHandler(handler)
    warn_logger.addHandler(handler)
    capturing = _capturing_warnings()
    logging.captureWarnings(True)
    with library_records() as libraries:
        if libraries is not None:
            warn_logger.propagate = False  # run.log has them; not a second time through the root logger
            libraries.attach(handler)
        try:
            yield handler
        finally:
            if libraries is not None:
                libraries.detach()
            warn_logger.propagate = saved_propagate
            if not capturing:
                logging.captureWarnings(False)
            warn_logger.removeHandler(handler)
            logger.removeHandler(handler)
            logger.setLevel(saved_level)
            handler.close()
            stream.close()


class LibraryRecords(logging.Handler):
    """On the root logger while a run works: other libraries' records go to run.log (held until it
    opens), not to the console; their own stderr handlers are set aside meanwhile (`adopt`)."""

    HELD = 1000  # records kept from before run.log opens (a chatty setup must not grow memory)

    def __init__(self) -> None:
        super().__init__()
        self.target: logging.Handler | None = None
        self.held: deque[logging.LogRecord] = deque(maxlen=self.HELD)
        self.adopted: list[tuple[logging.Logger, logging.Handler | None, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == ROOT or record.name.startswith(ROOT + "."):
            return  # evofair's own records have evofair's handlers
        if self.target is None:
            self.held.append(record)
        else:
            self.target.handle(record)

    def attach(self, target: logging.Handler) -> None:
        self.adopt()  # libraries imported during setup (transformers) installed their handlers since
        self.target = target
        while self.held:
            target.handle(self.held.popleft())

    def detach(self) -> None:
        self.target = None

    def adopt(self) -> None:
        """Set aside the stderr handlers libraries install on their own loggers (transformers does),
        and let those loggers propagate to this handler instead; `restore` undoes it."""
        for logger in _library_loggers():
            mine = [h for h in logger.handlers if _writes_to_stderr(h)]
            for h in mine:
                logger.removeHandler(h)
                self.adopted.append((logger, h, logger.propagate))
            if mine and not logger.handlers:
                logger.propagate = True

    def restore(self) -> None:
        for logger, h, propagate in reversed(self.adopted):
            if h is not None:
                logger.addHandler(h)
            logger.propagate = propagate
        self.adopted.clear()


def _library_loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    return [
        lg
        for name, lg in list(manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and not (name == ROOT or name.startswith(ROOT + "."))
    ]


def _writes_to_stderr(handler: logging.Handler) -> bool:
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__)


@contextlib.contextmanager
def library_records() -> Iterator[LibraryRecords | None]:
    """Other libraries' records to run.log instead of the console for the block (see the module's
    docstring); yields the handler, or None where the caller configured logging (a handler on the
    root logger) and keeps it. Nested blocks share the outermost one's handler."""
    root = logging.getLogger()
    active = next((h for h in root.handlers if isinstance(h, LibraryRecords)), None)
    if active is not None or root.handlers:
        yield active
        return
    handler = LibraryRecords()
    root.addHandler(handler)
    capturing = _capturing_warnings()
    logging.captureWarnings(True)
    handler.adopt()
    try:
        yield handler
    finally:
        handler.restore()
        root.removeHandler(handler)
        if not capturing:
            logging.captureWarnings(False)


def adopt_library_loggers() -> None:
    """A library just imported (a model loader calls this): its stderr handler, if any, is set aside
    for the rest of the run, as those present when the run started were."""
    for h in logging.getLogger().handlers:
        if isinstance(h, LibraryRecords):
            h.adopt()


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
