"""Progress that is never silent: a tqdm bar on a terminal, a log line per interval elsewhere.

A generation of a slow genome (LoRA local learning, a text encoder) can take minutes; on a
terminal tqdm shows it, but in a batch job, CI or `nohup` output tqdm prints nothing useful (its
carriage-return redraws are one long line, or disabled). `ProgressBar` picks per stream: tqdm when
the stream is a TTY, else an INFO line on the `evofair.progress` logger at most every `interval`
seconds (default 10, `EVOFAIR_PROGRESS_INTERVAL` to change it), and a last one when a phase that was
long enough to be mentioned ends.

The engine reports each phase of a generation through `Executor.on_progress(phase, done, total)`
(`GenerationProgress`); a problem's own long phases (embedding texts, training baselines) use
`progress_bar(total, desc)` directly, so they show the same way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

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


class LogLines:
    """tqdm's `update/set_postfix_str/reset/close` as throttled log lines (for non-TTY output)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.interval = interval_seconds() if interval is None else interval
        self.clock = clock
        self.n = 0
        self.postfix = ""
        self.logged = 0  # lines written: a phase that got none was too short to mention at its end
        self._logged_n = 0
        self.start = self._last = clock()

    def _line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {self.n}{of} {self.unit} ({self.clock() - self.start:.0f} s{extra})"

    def _maybe_log(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last >= self.interval:
            self._last = now
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
):
    """A tqdm bar on a TTY (stderr), throttled INFO log lines otherwise, nothing when disabled."""
    if not enabled:
        return _Off()
    if is_tty() or "ipykernel" in sys.modules:  # a terminal, or a notebook (tqdm.auto draws a widget there)
        from tqdm.auto import tqdm

        return tqdm(
            total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave, position=position, initial=initial
        )
    bar = LogLines(total, desc, unit)
    bar.n = initial
    return bar


class GenerationProgress:
    """What a generation is doing: offspring done / total in its current phase.

    Phases are named after the work: `variation` (merge, mutate), `local learning` (refine),
    `evaluate`. On a TTY a second bar under the generation bar; elsewhere a log line per interval.
    """

    def __init__(self, enabled: bool, generations: int):
        self.enabled = enabled
        self.generations = generations
        self.generation = 0
        self._phase: str | None = None
        self._bar: Bar | None = None

    def begin(self, generation: int) -> None:
        self.generation = generation

    def __call__(self, phase: str, done: int, total: int) -> None:
        """`Executor.on_progress`: `done` of `total` items of `phase` finished."""
        if not self.enabled:
            return
        if phase != self._phase or self._bar is None:
            self.close()
            self._phase = phase
            self._bar = progress_bar(
                total,
                f"generation {self.generation + 1}/{self.generations}: {phase}",
                unit="offspring" if phase != "evaluate" else "models",
                leave=False,
                position=1 if is_tty() else None,
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._phase = None, None
