"""Executors: where offspring are realised and evaluated (in the driver, local processes, Ray actors).

The contract is in `evofair.executors.base`. Each executor is a plugin of kind `executor`, found by
entry point (group `evofair.executor`: evofair's own `serial`, `processes`, `ray`) or by a recipe's
`module:Class`; `executor_spec` finds the one a recipe names and `make_executor` builds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evofair.errors import UserError
from evofair.executors.base import (
    Executor,
    ExecutorArgs,
    Made,
    WorkerError,
    chunks,
    evaluate_all_splits,
    merge_metrics,
)

__all__ = ["Executor", "ExecutorArgs", "Made", "WorkerError", "chunks", "evaluate_all_splits", "merge_metrics",
           "executor_spec", "executor_args", "make_executor", "recorded_executor", "resolve_executor",
           "switch_executor"]


def executor_spec(name: str, paths: Iterable[str] = (), where: str = "executor.name"):
    """The registered executor `name` (a `Spec` whose `fn` is the class), or a one-line `UserError`."""
    from evofair.core.plugins import registry

    spec = registry("executor", paths).get(name, where)
    if not (isinstance(spec.fn, type) and issubclass(spec.fn, Executor) and issubclass(spec.args, ExecutorArgs)):
        raise UserError(f"{where}: {name!r} is not an executor (expected a subclass of "
                        "evofair.executors.base.Executor marked with component('executor', NAME, ArgsModel), "
                        "ArgsModel deriving from evofair.executors.base.ExecutorArgs)")
    return spec


def executor_args(cfg, paths: Iterable[str] = (), where: str = "executor") -> ExecutorArgs:
    """A recipe's `executor:` section (`name` plus that executor's fields) validated by the executor's
    own args model; errors are one line naming the key (`executor.num_workers: ...`)."""
    spec = executor_spec(cfg.name, paths, f"{where}.name")
    return spec.parse_args(cfg.fields, where)


def make_executor(cfg, paths: Iterable[str] = ()) -> Executor:
    """Build the executor a recipe's `executor:` section names, with its fields."""
    spec = executor_spec(cfg.name, paths)
    return spec.fn.from_args(spec.parse_args(cfg.fields, "executor"))


def resolve_executor(cfg, paths: Iterable[str] = (), where: str = "executor"):
    """A recipe's `executor:` section with every field of its executor, checked by that executor's args
    model and its defaults filled in, so config.yaml records what ran."""
    args = executor_args(cfg, paths, where)
    return type(cfg)(name=cfg.name, **args.model_dump(mode="json", by_alias=True))


def switch_executor(raw: Mapping[str, Any], name: str) -> dict:
    """A raw recipe run by executor `name` (`--executor NAME`, `evofair submit`): the recipe's other
    `executor:` fields belong to the executor it named, so only those every executor takes are kept
    (`eval_chunk`, on which the front depends)."""
    section = raw.get("executor")
    section = dict(section) if isinstance(section, Mapping) else {}
    if section.get("name", "serial") == name:
        return dict(raw)
    common = {k: v for k, v in section.items() if k in ExecutorArgs.model_fields}
    return {**raw, "executor": {"name": name, **common}}


# Before executors were plugins, config.yaml recorded these Ray fields for every executor; a serial
# run never read them.
_FORMER_RAY_FIELDS = ("address", "num_workers", "num_cpus_per_task", "num_gpus_per_task", "resources_per_task",
                      "max_retries", "placement_timeout_s", "start_timeout_s", "shared_store")


def recorded_executor(raw: Mapping[str, Any]) -> dict:
    """A run's config.yaml as a recipe to resume: a serial run recorded by an earlier evofair is read
    without the Ray fields it recorded but never used (they are unknown keys for serial now)."""
    section = raw.get("executor")
    if not isinstance(section, Mapping) or section.get("name", "serial") != "serial":
        return dict(raw)
    return {**raw, "executor": {k: v for k, v in section.items() if k not in _FORMER_RAY_FIELDS}}
