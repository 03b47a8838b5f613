"""Parts for tests/evofair/test_bounded_waits.py, importable by `module:Name` from a recipe."""

from __future__ import annotations

import threading

from pydantic import Field

from evofair.core.registry import Args, component
from evofair.tracking import Callback


class SleepArgs(Args):
    at_generation: int = Field(1, ge=0)
    sleep_s: float = Field(5.0, ge=0)


@component("callback", "sleep_at", SleepArgs)
class SleepAt(Callback):
    """Hangs in on_generation_end of one generation (a tracker whose server stopped answering);
    the sleep is bounded so an abandoned thread ends by itself."""

    def __init__(self, args: SleepArgs):
        self.at, self.sleep_s = args.at_generation, args.sleep_s
        self.threads: set[str] = set()

    def on_run_start(self, info):
        self.threads.add(threading.current_thread().name)

    def on_generation_end(self, info):
        self.threads.add(threading.current_thread().name)
        if info.generation == self.at:
            threading.Event().wait(self.sleep_s)
