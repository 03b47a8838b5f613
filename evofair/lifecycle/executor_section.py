"""A recipe's `executor:` section: the executor's name plus its own fields, written flat.

Executors are plugins (kind `executor`); the recipe names one and gives the fields its args model
declares. Validation here looks the executor up by name and checks the fields with that model, as
every other component is checked, without importing the executors themselves: they sit above the
recipe (they run what it says), and `evofair.executors.make_executor` builds the one named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evofair.core.plugins import registry
from evofair.errors import UserError

#: fields every executor takes (`evofair.executors.base.ExecutorArgs`): the front depends on them
COMMON_FIELDS = ("eval_chunk",)


def executor_spec(name: str, paths: Iterable[str] = (), where: str = "executor.name"):
    """The registered executor `name` (a `Spec` whose `fn` is the class), or a one-line `UserError`."""
    spec = registry("executor", paths).get(name, where)
    fn, fields = spec.fn, getattr(spec.args, "model_fields", {})
    is_executor = isinstance(fn, type) and all(callable(getattr(fn, m, None)) for m in ("start", "evaluate", "realise"))
    if not is_executor or not all(f in fields for f in COMMON_FIELDS):
        raise UserError(
            f"{where}: {name!r} is not an executor (expected a subclass of "
            "evofair.executors.base.Executor marked with component('executor', NAME, ArgsModel), "
            "ArgsModel deriving from evofair.executors.base.ExecutorArgs)"
        )
    return spec


def executor_args(cfg, paths: Iterable[str] = (), where: str = "executor"):
    """A recipe's `executor:` section (`name` plus that executor's fields) validated by the executor's
    own args model; errors are one line naming the key (`executor.num_workers: ...`)."""
    spec = executor_spec(cfg.name, paths, f"{where}.name")
    return spec.parse_args(cfg.fields, where)


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
    common = {k: v for k, v in section.items() if k in COMMON_FIELDS}
    return {**raw, "executor": {"name": name, **common}}


# Before executors were plugins, config.yaml recorded these Ray fields for every executor; a serial
# run never read them.
_FORMER_RAY_FIELDS = (
    "address",
    "num_workers",
    "num_cpus_per_task",
    "num_gpus_per_task",
    "resources_per_task",
    "max_retries",
    "placement_timeout_s",
    "start_timeout_s",
    "shared_store",
)


def recorded_executor(raw: Mapping[str, Any]) -> dict:
    """A run's config.yaml as a recipe to resume: a serial run recorded by an earlier evofair is read
    without the Ray fields it recorded but never used (they are unknown keys for serial now)."""
    section = raw.get("executor")
    if not isinstance(section, Mapping) or section.get("name", "serial") != "serial":
        return dict(raw)
    return {**raw, "executor": {k: v for k, v in section.items() if k not in _FORMER_RAY_FIELDS}}
