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
"""

from __future__ import annotations

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

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def call(self, method: str, info: Any, after: str = "") -> None:
        for i, cb in enumerate(self.callbacks):
            fn = getattr(cb, method, None)
            if fn is None:
                continue
            try:
                fn(info)
            except Exception as exc:  # KeyboardInterrupt and SystemExit pass through
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                text = text if len(text) <= 300 else text[:300] + "…"
                raise CallbackError(f"{_label(cb, i)}: {method} raised {text}{after}", traceback.format_exc()) from None

    def close(self) -> None:
        """Close every callback; errors here are not raised (the run's outcome is already decided)."""
        for cb in self.callbacks:
            try:
                getattr(cb, "close", lambda: None)()
            except Exception:  # noqa: BLE001 - a tracker that cannot flush must not hide the run's result
                import logging

                logging.getLogger("evofair.tracking").warning("%s.close() failed", type(cb).__name__, exc_info=True)


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
        found.append(cb)
    return found
