"""Executors: where offspring are realised and evaluated (in the driver, local processes, Ray actors).

The contract is in `evofair.executors.base`. Each executor is a plugin of kind `executor`, found by
entry point (group `evofair.executor`: evofair's own `serial`, `processes`, `ray`) or by a recipe's
`module:Class`; `evofair.lifecycle.executor_section` validates the section a recipe writes and `make_executor`
builds the executor it names.
"""

from __future__ import annotations

from collections.abc import Iterable

from evofair.errors import UserError
from evofair.executors.base import Executor, ExecutorArgs, Made, WorkerError, chunks, evaluate_all_splits, merge_metrics
from evofair.lifecycle.executor_section import executor_spec

__all__ = [
    "Executor",
    "ExecutorArgs",
    "Made",
    "WorkerError",
    "chunks",
    "evaluate_all_splits",
    "merge_metrics",
    "make_executor",
]


def make_executor(cfg, paths: Iterable[str] = ()) -> Executor:
    """Build the executor a recipe's `executor:` section names, with its fields (validated when the
    recipe was, by `evofair.lifecycle.executor_section`)."""
    spec = executor_spec(cfg.name, paths)
    if not (issubclass(spec.fn, Executor) and issubclass(spec.args, ExecutorArgs)):
        raise UserError(f"executor.name: {cfg.name!r} does not derive from evofair.executors.base.Executor")
    return spec.fn.from_args(spec.parse_args(cfg.fields, "executor"))
