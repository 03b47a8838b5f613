"""Local worker processes: one machine's cores without Ray.

A `concurrent.futures.ProcessPoolExecutor` with the `spawn` context (no forked copy of the driver's
threads, CUDA state or open store) whose initializer builds the problem once in each worker
(`ProblemFactory.build()`, then `ensure_setup()`, as a Ray actor does) and keeps it resident. A task
carries one group of plans (`Executor.plan_groups`: one plan, or the offspring the problem trains
together, which the worker realises with `pipeline.realise_all` as the serial executor does) with
their parents' weights, or one `eval_chunk` batch of genomes, so stacking and evaluation are
batched exactly as the serial executor batches them and the front is the same.

Weights cross the pool's pipes as ordinary pickled bytes: once torch is imported, the pool's own
pickler would pass every tensor as a shared-memory handle instead (a file descriptor each, and a
segment in /dev/shm that a killed worker leaves behind). Each parent is pickled once per generation.

Workers ignore SIGINT, so Ctrl-C interrupts the driver alone, which then stops them. A task that
raises in a worker is one `WorkerError` line; the worker's traceback is logged and kept for the
run's events.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pydantic import Field

from evofair.core.individual import Weights
from evofair.core.registry import component
from evofair.engine.pipeline import Operators, Plan, Realised, realise_all, refine_stacks
from evofair.errors import UserError
from evofair.executors.base import Executor, ExecutorArgs, WorkerError, chunks, evaluate_all_splits, merge_metrics

log = logging.getLogger("evofair.processes")


class ProcessArgs(ExecutorArgs):
    """`executor: {name: processes, ...}`: a pool of worker processes on this machine."""

    num_workers: int | None = Field(None, ge=1, le=4096, description="worker processes; unset: os.cpu_count()")


# -- in each worker process ----------------------------------------------------------------------

_RESIDENT: tuple[Any, Operators] | BaseException | None = None  # (problem, operators), or why building failed


def _start_worker(factory: bytes, threads: int) -> None:
    """The pool's initializer: build the problem once. A failure is kept and raised by every task,
    so the driver sees it as a task failure carrying the worker's traceback."""
    global _RESIDENT
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    import torch

    torch.set_num_threads(threads)  # the machine's cores shared out, not every worker using all of them
    try:
        built = pickle.loads(factory)
        _RESIDENT = (built.build().ensure_setup(), Operators.load(built.paths))
    except Exception as exc:  # noqa: BLE001 - reported through the first task
        _RESIDENT = exc


def _resident() -> tuple[Any, Operators]:
    if isinstance(_RESIDENT, BaseException):
        raise _RESIDENT
    if _RESIDENT is None:
        raise RuntimeError("this worker process was not started by ProcessExecutor")
    return _RESIDENT


def _pack(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _ready() -> int:
    _resident()
    return os.getpid()


def _realise(plans: Sequence[Plan], parents: Mapping[str, bytes]) -> bytes:
    """One group of plans; `parents` holds each of their parents' pickled weights by key."""
    problem, ops = _resident()
    return _pack(realise_all(plans, lambda p: [pickle.loads(parents[r.key]) for r in p.parents], problem, ops))


def _refine_stacks(plans: Sequence[Plan]) -> dict[str, int]:
    problem, ops = _resident()
    return refine_stacks(plans, problem, ops)


def _evaluate(genomes: bytes) -> bytes:
    problem, _ = _resident()
    return _pack(evaluate_all_splits(problem, pickle.loads(genomes)))


# -- in the driver -------------------------------------------------------------------------------


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "…"


@component("executor", "processes", ProcessArgs)
class ProcessExecutor(Executor):
    """Worker processes on this machine, each holding the problem resident (no Ray needed)."""

    def __init__(self, eval_chunk: int = 32, num_workers: int | None = None):
        super().__init__(eval_chunk)
        self.num_workers = num_workers or os.cpu_count() or 1
        self.pool: ProcessPoolExecutor | None = None
        self.pids: list[int] = []  # of the workers that answered at start

    def start(self, factory, problem=None) -> None:
        try:  # once here: a problem object that cannot reach the workers is one line, before any spawn
            payload = _pack(factory)
        except Exception as exc:  # PicklingError, or the TypeError/AttributeError of an unpicklable part
            what = "the problem object passed from Python" if factory.instance is not None else "the problem"
            raise UserError(
                f"executor.name processes: {what} cannot be sent to worker processes "
                f"({_one_line(exc, 200)}); use executor serial, or a problem a recipe names"
            ) from None
        threads = max(1, (os.cpu_count() or 1) // self.num_workers)
        self.pool = ProcessPoolExecutor(
            self.num_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(payload, threads),
        )
        # one task per worker submitted at once: the pool starts every process now, not at the first generation
        self.pids = sorted(
            set(self._map(_ready, [()] * self.num_workers, failed="a worker process failed while building the problem"))
        )
        log.info("processes: %d workers, %d torch thread(s) each", self.num_workers, threads)

    def refine_stacks(self, plans: Sequence[Plan]) -> dict[str, int]:
        return self._map(_refine_stacks, [(plans,)])[0]

    def realise_weights(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        groups = self.plan_groups(plans)  # one plan each, unless the problem trains offspring together
        parents = {r.key: _pack(weights_of(r.key)) for p in plans for r in p.parents}  # each pickled once
        tasks = []
        for idx in groups:
            group = [plans[i] for i in idx]
            tasks.append((group, {r.key: parents[r.key] for p in group for r in p.parents}))
        made = self._map(_realise, tasks, phase=self.realise_phase(plans), sizes=[len(g) for g in groups])
        return self.ungroup(groups, [pickle.loads(m) for m in made])

    def evaluate(self, genomes: Sequence[Any]):
        batches = [genomes[s] for s in chunks(len(genomes), self.eval_chunk)]
        parts = self._map(_evaluate, [(_pack(b),) for b in batches], phase="evaluate", sizes=[len(b) for b in batches])
        return merge_metrics([pickle.loads(p) for p in parts])

    def _map(
        self,
        fn,
        args: Sequence[tuple],
        *,
        phase: str | None = None,
        sizes: Sequence[int] | None = None,
        failed: str = "a task failed in a worker process",
    ) -> list:
        """`fn(*a)` for every `a` in the workers; results in `args` order, progress reported as they
        finish. The first failure stops every worker (the run ends there) and is one `WorkerError`."""
        if self.pool is None:
            raise RuntimeError("ProcessExecutor: start() first")
        sizes = list(sizes) if sizes is not None else [1] * len(args)
        total, done, results = sum(sizes), 0, [None] * len(args)
        try:
            futures = {self.pool.submit(fn, *a): i for i, a in enumerate(args)}
            for future in as_completed(futures):
                i = futures[future]
                if future.exception() is not None:
                    raise self._worker_error(future, failed)
                results[i] = future.result()
                done += sizes[i]
                if phase is not None:
                    self.report(phase, done, total)
        except BaseException:  # a worker's failure, Ctrl-C, or the driver's own error: no use finishing the rest
            self._stop()
            raise
        return results

    def _worker_error(self, future: Future, failed: str) -> WorkerError:
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):  # killed, crashed, or could not start: nothing came back
            return WorkerError(
                "a worker process ended abruptly (killed, out of memory, or it could not start: its "
                "own error is printed above); with memory short, set executor.num_workers lower",
                str(exc),
            )
        assert exc is not None
        traceback = getattr(exc.__cause__, "tb", "") or _one_line(exc, 10_000)  # the worker's own text
        log.error("%s:\n%s", failed, traceback)
        return WorkerError(f"{failed}: {_one_line(exc)}", traceback)

    def _stop(self) -> None:
        """End the workers now, running tasks included."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        # no public way before Python 3.14 (`terminate_workers`): the pool's own process table
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # idle workers: they exit at once
        super().close()
