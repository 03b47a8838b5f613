"""Progress that is never silent: a tqdm bar on a terminal, a log line per interval elsewhere.

A generation of a slow genome (LoRA local learning, a text encoder) can take minutes; on a
terminal tqdm shows it, but in a batch job, CI or `nohup` output tqdm prints nothing useful (its
carriage-return redraws are one long line, or disabled). `ProgressBar` picks per stream: tqdm when
the stream is a TTY, else an INFO line on the `evofair.progress` logger at most every `interval`
seconds (default 10, `EVOFAIR_PROGRESS_INTERVAL` to change it), and a last one when a phase that was
long enough to be mentioned ends.

Work that reports nothing for minutes (one batched evaluation, a model load) would still leave
the output silent between updates, so bars opened with `heartbeat=True` speak on their own: a line
per interval on non-TTY output, a redrawn clock on a TTY.

The engine reports each phase of a generation through `Executor.on_progress(phase, done, total)`
(`GenerationProgress`, which also feeds the run's estimate, `evofair.tracking.estimate`); a
problem's own long phases (embedding texts, training baselines) use `progress_bar(total, desc)` or
`step(desc)` directly, so they show the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from evofair.tracking.estimate import RunEstimate, format_seconds

log = logging.getLogger("evofair.progress")
DEFAULT_INTERVAL_S = 10.0
INTERVAL_ENV = "EVOFAIR_PROGRESS_INTERVAL"


def interval_seconds() -> float:
    """Seconds between two progress lines on non-TTY output (`EVOFAIR_PROGRESS_INTERVAL`, default 10)."""
    raw = os.environ.get(INTERVAL_ENV)
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value >= 0 else DEFAULT_INTERVAL_S


def is_tty(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class Heartbeat:
    """Calls `beat` every `every` seconds from a daemon thread until `stop()`.

    Why a thread: one batched evaluation, a model load or a tokeniser call can run for minutes
    without a single `update`, and a display that only speaks on updates is then silent."""

    def __init__(self, beat: Callable[[], object], every: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(beat, every), name="evofair progress", daemon=True)
        self._thread.start()

    def _run(self, beat: Callable[[], object], every: float) -> None:
        while not self._stop.wait(every):
            try:
                beat()
            except Exception:  # noqa: BLE001 - a display must never break the work it shows
                return

    def stop(self) -> None:
        self._stop.set()


class LogLines:
    """tqdm's `update/set_postfix_str/reset/close` as throttled log lines (for non-TTY output).

    With `heartbeat`, a line is also written when no update came for `interval` seconds, so the
    output is never silent for longer than that. Lines name the estimated time left once a count
    of a known total has moved."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = False,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.interval = interval_seconds() if interval is None else interval
        self.clock = clock
        self.n = self.initial = 0
        self.postfix = ""
        self.logged = 0  # lines written: a phase that got none was too short to mention at its end
        self._logged_n = 0
        self._lock = threading.Lock()
        self.start = self.last_line = clock()  # when the last line was written (or the bar began)
        self._heartbeat = (
            Heartbeat(self._maybe_log, min(1.0, self.interval / 2)) if heartbeat and self.interval > 0 else None
        )

    def _line(self) -> str:
        elapsed = self.clock() - self.start
        extra = f", {self.postfix}" if self.postfix else ""
        if self.total is None and not self.n:  # a step without counts: only the time it has taken
            return f"{self.desc} ({elapsed:.0f} s{extra})"
        of = f"/{self.total}" if self.total is not None else ""
        made = self.n - self.initial
        if self.total is not None and 0 < made and self.n < self.total:
            extra += f", about {format_seconds(elapsed / made * (self.total - self.n))} left"
        return f"{self.desc}: {self.n}{of} {self.unit} ({elapsed:.0f} s{extra})"

    def _maybe_log(self, force: bool = False) -> None:
        with self._lock:
            now = self.clock()
            if force or now - self.last_line >= self.interval:
                self.last_line = now
                self.logged += 1
                self._logged_n = self.n
                log.info(self._line())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_log()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_description_str(self, text: str, refresh: bool = True) -> None:
        self.desc = text

    def reset(self, total: int | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self.logged and self.n != self._logged_n:
            self._maybe_log(force=True)


class Bar(Protocol):
    """What the engine uses of a bar from `progress_bar` (a tqdm bar, `LogLines` or a disabled one)."""

    n: Any

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


class _Off:
    """A disabled bar: every call does nothing."""

    n = 0

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def progress_bar(
    total: int | None,
    desc: str,
    unit: str = "it",
    *,
    enabled: bool = True,
    leave: bool = True,
    position: int | None = None,
    initial: int = 0,
    heartbeat: bool = False,
):
    """A tqdm bar on a TTY (stderr), throttled INFO log lines otherwise, nothing when disabled.

    `heartbeat`: the bar shows its elapsed time even while no update comes (the caller must
    `close()` it: a thread keeps it alive until then)."""
    if not enabled:
        return _Off()
    if is_tty() or "ipykernel" in sys.modules:  # a terminal, or a notebook (tqdm.auto draws a widget there)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave, position=position, initial=initial
        )
        if heartbeat:
            _refresh_until_closed(bar)
        return bar
    lines = LogLines(total, desc, unit, heartbeat=heartbeat)
    lines.n = lines.initial = initial
    return lines


def _refresh_until_closed(bar) -> None:
    """tqdm redraws (and so advances its elapsed time) only on updates: redraw once a second."""
    beat = Heartbeat(bar.refresh, 1.0)
    close = bar.close

    def close_and_stop() -> None:
        beat.stop()
        close()

    bar.close = close_and_stop


@contextlib.contextmanager
def step(desc: str, *, enabled: bool = True) -> Iterator[None]:
    """A long step that reports no counts (loading a model, tokenising): a line when it starts, then
    its elapsed time at least every interval until it ends (a bar with a clock on a TTY)."""
    if enabled:
        log.info("%s ...", desc)
    bar = progress_bar(None, desc, unit="", enabled=enabled, heartbeat=True)
    try:
        yield
    finally:
        bar.close()


class GenerationProgress:
    """What a generation is doing: offspring done / total in its current phase.

    Phases are named after the work: `variation` (merge, mutate), `local learning` (refine),
    `evaluate`. On a TTY a second bar under the generation bar; elsewhere a log line per interval.
    Every bar has a heartbeat, and a bar is open from the generation's start to its end (the
    evaluation of offspring just made is shown at 0 done until its first chunk ends).
    """

    def __init__(self, enabled: bool, generations: int):
        self.enabled = enabled
        self.generations = generations
        self.generation = 0
        self.estimate = RunEstimate(generations)
        self._last_line: float | None = None
        self._phase: str | None = None
        self._bar: Bar | None = None

    def begin(self, generation: int) -> None:
        """A generation starts: until its first phase reports, a bar with a clock says it is alive."""
        self.generation = generation
        self.estimate.begin(generation)
        self._open(None, None)

    def __call__(self, phase: str, done: int, total: int) -> None:
        """`Executor.on_progress`: `done` of `total` items of `phase` finished."""
        self.estimate.observe(phase, done, total)
        if not self.enabled:
            return
        if phase != self._phase or self._bar is None:
            self._open(phase, total)
        assert self._bar is not None
        self._bar.update(done - self._bar.n)
        if done >= total and phase != "evaluate":
            self._open("evaluate", total)  # the offspring just made are evaluated next, silently until a chunk ends

    def _open(self, phase: str | None, total: int | None) -> None:
        self.close()
        if not self.enabled:
            return
        self._phase = phase
        where = f"generation {self.generation + 1}/{self.generations}"
        self._bar = progress_bar(
            total,
            f"{where}: {phase}" if phase else where,
            unit="offspring" if phase not in (None, "evaluate") else "models",
            leave=False,
            position=1 if is_tty() else None,
            heartbeat=True,
        )
        if self._last_line is not None and isinstance(self._bar, LogLines):
            self._bar.last_line = self._last_line  # a new bar keeps the old one's rhythm: no longer gap

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._last_line = getattr(self._bar, "last_line", None)
        self._bar, self._phase = None, None
