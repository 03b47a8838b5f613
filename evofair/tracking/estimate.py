"""What a user is told before a long run: how long it will take, and whether it is sized for other hardware.

Two lines, each said once:

- `hardware_note`: a recipe that declares `sized_for: {device: gpu, trial: {...}}` and is started on a
  machine without a CUDA device (and not on a Ray cluster, whose workers may have one) gets a note
  at the very start, before minutes of setup: it is meant for a GPU, and the `--set` overrides
  of its `trial` make a small run that shows the whole pipeline on a CPU.
- `RunEstimate`: seconds per offspring × offspring still to come, timed on the first offspring of
  the first generation that varies (one after the initial population, or an initial population
  that is locally trained), plus the evaluation time per model measured before it.

Why the run's own first offspring rather than a separate probe: it goes through exactly what every
later offspring does (merge, mutate, local learning, evaluation) on this machine, device and
executor, and nothing is computed twice. With several workers the first offspring finishes as
the others are still running, so the figure then errs high.
"""

from __future__ import annotations

import importlib.util
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

import yaml

log = logging.getLogger("evofair.estimate")
EVALUATE = "evaluate"
REFINE = "local learning"


class RunEstimate:
    """Times the phases a generation reports (`Executor.on_progress`) and says the estimate once."""

    def __init__(self, generations: int, clock: Callable[[], float] = time.monotonic):
        self.generations = generations
        self.clock = clock
        self.generation = 0
        self.said: str | None = None
        self.eval_per_model: float | None = None
        self._phase: str | None = None
        self._phase_start = self._last = clock()

    def begin(self, generation: int) -> None:
        self.generation = generation
        self._phase = None
        self._phase_start = self._last = self.clock()

    def observe(self, phase: str, done: int, total: int) -> None:
        """`done` of `total` items of `phase` finished in the current generation."""
        now = self.clock()
        if phase != self._phase:  # a phase starts where the previous one reported its last item
            self._phase, self._phase_start = phase, self._last
        self._last = now
        if done <= 0:
            return
        per_item = (now - self._phase_start) / done
        if phase == EVALUATE:
            self.eval_per_model = per_item
        elif self.said is None and (self.generation > 0 or phase == REFINE):
            self.said = self.line(phase, per_item, done, total)
            log.info(self.said)

    def line(self, phase: str, per_offspring: float, done: int, total: int) -> str:
        later = max(self.generations - self.generation - 1, 0) * total
        to_make, to_evaluate = total - done + later, total + later
        seconds = per_offspring * to_make + (self.eval_per_model or 0.0) * to_evaluate
        evaluation = (
            f" + {_per(self.eval_per_model)} per model evaluated"
            if self.eval_per_model is not None
            else " (evaluation not timed yet)"
        )
        return (
            f"estimate: about {format_seconds(seconds)} to go: {_per(per_offspring)} per offspring ({phase})"
            f"{evaluation}, {to_make} offspring to come (timed on generation {self.generation + 1}'s first)"
        )


def format_seconds(seconds: float) -> str:
    """`42 s`, `7.5 min`, `3.2 h`: a duration as a person reads it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _per(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else format_seconds(seconds)


def hardware_note(
    recipe_name: str,
    sized_for: Any,
    executor_name: str,
    current: Mapping[str, Any] | None = None,
    has_gpu: Callable[[], bool] | None = None,
) -> str | None:
    """The note for a recipe sized for a GPU started without one; None when it does not apply.

    `sized_for` is the recipe's section (`device`, `trial`); `current` the resolved recipe as a dict,
    so a run that already uses every trial value is not told to run the trial."""
    if sized_for is None or getattr(sized_for, "device", None) != "gpu" or executor_name == "ray":
        return None
    if (has_gpu or cuda_visible)():
        return None
    trial = dict(getattr(sized_for, "trial", None) or {})
    if current is not None and trial and all(_dotted(current, k) == v for k, v in trial.items()):
        return f"{recipe_name} is sized for a GPU and none is visible: running its small trial settings on the CPU"
    flags = " ".join("--set " + shlex.quote(f"{k}={_flow(v)}") for k, v in trial.items())
    suggestion = f"; for a small trial on this machine: evofair run {recipe_name} {flags}" if flags else ""
    return f"{recipe_name} is sized for a GPU and none is visible (CPU only): expect it to run for hours{suggestion}"


def say_hardware_note(*args: Any, **kwargs: Any) -> None:
    note = hardware_note(*args, **kwargs)
    if note:
        log.info("note: %s", note)


def cuda_visible() -> bool:
    """Whether torch sees a CUDA device here (False where torch is not installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _dotted(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _flow(value: Any) -> str:
    """A value as `--set` reads it back (YAML flow style, one line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text
