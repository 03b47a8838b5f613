"""Parts for tests/evofair/test_tracking*.py, importable by `module:Name` from a recipe (also in a subprocess)."""

from __future__ import annotations

import time
import warnings

from pydantic import Field

from evofair.core.registry import Args, component
from evofair.problems.classic.benchmarks import ZDT1, ZDTParams
from evofair.tracking import Callback


class SlowParams(ZDTParams):
    sleep_s: float = Field(0.02, ge=0)
    warn: bool = False


class SlowZDT1(ZDT1):
    """ZDT1 that sleeps per genome evaluated: a 'slow genome' for progress lines."""

    name = "slow_zdt1"
    Params = SlowParams
    rowwise = False  # evaluated in `eval_chunk` batches, each reported, as a slow problem's are

    def evaluate(self, genomes, split):
        if self.params.warn and split == "val":
            warnings.warn("slow_zdt1: a warning from inside evaluate", UserWarning)
        time.sleep(self.params.sleep_s * len(genomes))
        return super().evaluate(genomes, split)


class Recording(Callback):
    """Keeps every info object it is given."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.closed = False

    def on_run_start(self, info):
        self.calls.append(("start", info))

    def on_model_evaluated(self, info):
        self.calls.append(("model", info))

    def on_generation_end(self, info):
        self.calls.append(("generation", info))

    def on_run_end(self, info):
        self.calls.append(("end", info))

    def close(self):
        self.closed = True

    def of(self, kind):
        return [info for k, info in self.calls if k == kind]


class RaiseArgs(Args):
    at_generation: int = Field(1, ge=0)


@component("callback", "raise_at", RaiseArgs)
class RaiseAt(Callback):
    """Raises in on_generation_end of one generation (a tracker that breaks mid-run)."""

    def __init__(self, args: RaiseArgs):
        self.at = args.at_generation

    def on_generation_end(self, info):
        if info.generation == self.at:
            raise ConnectionError(f"tracker unreachable at generation {info.generation}")
