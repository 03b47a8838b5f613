"""Callbacks: follow a run from Python or a recipe (`callbacks: [{name: tensorboard, args: {...}}]`).

The engine calls every callback *after* it committed the generation to the store, with plain
read-only facts (dataclasses of numbers, ids and names). A callback observes; it cannot change
selection, the store or the front (nothing it gets is the engine's own state).

A callback that raises fails the run cleanly: the generation it was told about is already
committed, the store and the run lock are released as after any error, the user gets one line
naming the callback (the traceback goes to the run's events and `run.log`), and
`evofair run --resume DIR` continues — with the callback fixed, or dropped by
`--set callbacks=[]` (callbacks never change results, so resume may change them). Failing rather
than warning-and-continuing was chosen because a tracker that silently stops logging is found out
only after a long run, when the numbers are missing.

Recipe callbacks are components of kind `callback` (entry-point group `evofair.callback`, or
`module:Name`): a class or function marked `@component("callback", name, ArgsModel)` and called
with the validated args; it returns a `Callback`.

A recipe callback may carry a time limit (`callbacks: [{name: ..., timeout_s: 10}]`): a tracker
whose server stops answering would otherwise hold a finished generation hostage forever. Such a
callback runs in a daemon thread of its own (one thread for all its calls, so trackers that keep
per-thread state, such as MLflow's active run, see one thread); a call that outlives its limit
stops the run like a raising callback, and the stuck thread is abandoned (a daemon thread never
keeps the process alive).
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evofair.errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    """One evaluated model of a generation: its id, parents and every metric, by split."""

    generation: int
    id: str
    parents: tuple[str, ...]
    metrics: Mapping[str, Mapping[str, float]]  # {"val": {...}, "test": {...}}
    objectives: Mapping[str, float]  # the objectives' validation values, as the engine ranks them

    @property
    def val(self) -> Mapping[str, float]:
        return self.metrics.get("val", {})


@dataclass(frozen=True)
class GenerationInfo:
    """A committed generation: HV of the population's front (validation), its size, evaluations so
    far, seconds of evolution so far, the surviving population's ids and this generation's models."""

    generation: int
    generations: int  # the recipe's total
    hv_val: float | None
    n_front: int
    evaluations: int
    seconds: float
    population: tuple[str, ...]
    models: tuple[ModelInfo, ...] = ()


@dataclass(frozen=True)
class RunStartInfo:
    """Before the first generation (or the first one a resumed run computes)."""

    out: Path
    recipe: Mapping[str, Any]  # the resolved recipe, as config.yaml records it
    problem: str
    objectives: tuple[str, ...]
    start_generation: int
    generations: int


@dataclass(frozen=True)
class RunInfo:
    """The finished run: history as history.csv holds it, the front's ids and rows, and the files written."""

    out: Path
    history: tuple[Mapping[str, Any], ...]  # generation, hv_val, n_front, evaluations, seconds
    front: tuple[ModelInfo, ...]
    front_plot: Path | None
    report: Path | None
    timings: Mapping[str, float] = field(default_factory=dict)


class Callback:
    """Override any of these; each gets one info object and returns nothing. `close()` is always
    called at the end, even after an error (flush and release files there)."""

    def on_run_start(self, info: RunStartInfo) -> None:
        pass

    def on_model_evaluated(self, info: ModelInfo) -> None:
        pass

    def on_generation_end(self, info: GenerationInfo) -> None:
        pass

    def on_run_end(self, info: RunInfo) -> None:
        pass

    def close(self) -> None:
        pass


class CallbackError(UserError):
    """A callback raised: one line for the user, the traceback for the run's events and run.log."""

    def __init__(self, message: str, traceback_text: str = ""):
        super().__init__(message)
        self.traceback = traceback_text


def _label(cb: Any, index: int) -> str:
    return f"callbacks[{index}] ({getattr(cb, 'name', None) or type(cb).__name__})"


TIME_LIMIT_ATTR = "_evofair_timeout_s"  # set by build_callbacks from the recipe's `timeout_s`


class CallTimeout(Exception):
    """A time-limited callback did not return in time (its thread is left running)."""


class _Worker:
    """One daemon thread that runs every call of one time-limited callback, in order.

    A thread per call would be simpler, but trackers keep per-thread state (MLflow's active run):
    all of a callback's calls must see the same thread. Daemon, because a call stuck in a network
    read must never keep the process from exiting."""

    def __init__(self, label: str):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.stuck = False
        threading.Thread(target=self._loop, name=f"evofair {label}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, arg, box, done = job
            try:
                box.append((True, fn(arg) if arg is not _NO_ARG else fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
                box.append((False, (exc, traceback.format_exc())))
            done.set()

    def run(self, fn, arg: Any, timeout: float) -> Any:
        """fn(arg) on the worker; its exception is re-raised here; `CallTimeout` past `timeout`."""
        if self.stuck:
            raise CallTimeout
        box: list = []
        done = threading.Event()
        self.jobs.put((fn, arg, box, done))
        if not done.wait(timeout):
            self.stuck = True
            raise CallTimeout
        ok, value = box[0]
        if ok:
            return value
        exc, text = value
        exc.evofair_traceback = text
        raise exc

    def stop(self) -> None:
        if not self.stuck:
            self.jobs.put(None)


_NO_ARG = object()


class CallbackList:
    """Calls each callback in order; turns a callback's exception into one `CallbackError`."""

    def __init__(self, callbacks: Sequence[Any] = ()):
        for i, cb in enumerate(callbacks):
            if not any(
                callable(getattr(cb, m, None))
                for m in ("on_run_start", "on_model_evaluated", "on_generation_end", "on_run_end")
            ):
                raise UserError(
                    f"callbacks[{i}]: expected an evofair.tracking.Callback (an object with "
                    f"on_generation_end / on_model_evaluated / on_run_end), got {type(cb).__name__}"
                )
        self.callbacks = list(callbacks)
        # (its worker thread, its limit) for a time-limited callback, None for one called directly
        self.timed: list[tuple[_Worker, float] | None] = [
            (_Worker(_label(cb, i)), float(limit)) if (limit := getattr(cb, TIME_LIMIT_ATTR, None)) else None
            for i, cb in enumerate(self.callbacks)
        ]

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def call(self, method: str, info: Any, after: str = "") -> None:
        for i, cb in enumerate(self.callbacks):
            fn = getattr(cb, method, None)
            if fn is None:
                continue
            timed = self.timed[i]
            try:
                fn(info) if timed is None else timed[0].run(fn, info, timed[1])
            except CallTimeout:
                limit = timed[1] if timed else 0.0
                raise CallbackError(
                    f"{_label(cb, i)}: {method} did not return within {limit:g} s (callbacks[{i}].timeout_s){after}"
                ) from None
            except (Exception, SystemExit) as exc:  # a callback's sys.exit() must not end the run as a success
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                text = text if len(text) <= 300 else text[:300] + "…"
                trace = getattr(exc, "evofair_traceback", None) or traceback.format_exc()
                raise CallbackError(f"{_label(cb, i)}: {method} raised {text}{after}", trace) from None

    def close(self) -> None:
        """Close every callback; errors here are not raised (the run's outcome is already decided),
        and a time-limited callback's close() gets its limit too."""
        log = logging.getLogger("evofair.tracking")
        for i, cb in enumerate(self.callbacks):
            timed = self.timed[i]
            close = getattr(cb, "close", None)
            if timed is not None and timed[0].stuck:  # the run already stopped on this callback's hang
                log.debug("%s: still busy after its time limit; close() not called", _label(cb, i))
                continue
            try:
                if close is not None:
                    close() if timed is None else timed[0].run(close, _NO_ARG, timed[1])
            except CallTimeout:
                log.warning(
                    "%s: close() did not return within %g s; left running", _label(cb, i), timed[1] if timed else 0
                )
            except Exception:  # noqa: BLE001 - a tracker that cannot flush must not hide the run's result
                log.warning("%s.close() failed", type(cb).__name__, exc_info=True)
            finally:
                if timed is not None:
                    timed[0].stop()


def build_callbacks(recipe) -> list[Any]:
    """The recipe's `callbacks:`, each built from its registered component with validated args.

    Builders must not write anything (the run directory may not exist yet): they check that their
    package is installed and keep their settings; files are opened in `on_run_start`."""
    from evofair.core.plugins import registry

    found = []
    reg = registry("callback", recipe.paths)
    for i, cfg in enumerate(recipe.callbacks):
        spec = reg.get(cfg.name, f"callbacks[{i}].name")
        cb = spec.fn(spec.parse_args(cfg.args, f"callbacks[{i}].args"))
        if getattr(cb, "name", None) is None:
            try:
                cb.name = cfg.name
            except AttributeError:
                pass
        if cfg.timeout_s is not None:
            try:
                setattr(cb, TIME_LIMIT_ATTR, float(cfg.timeout_s))
            except AttributeError:
                raise UserError(
                    f"callbacks[{i}].timeout_s: {cfg.name} returned an object that cannot carry a time "
                    "limit (no attributes can be set on it); leave timeout_s unset"
                ) from None
        found.append(cb)
    return found
