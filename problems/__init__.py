"""Concrete problems, each registered by name with typed parameters (see `evofair problems`).

Problem modules may also register `experiment`s: standalone studies (a paper's table against its
baselines) that a recipe runs instead of the evolutionary loop. An experiment is a function
``fn(recipe, problem, args, out: Path, progress: bool) -> dict[str, float]`` (phase timings) that
writes its own tables, plots and report.md into `out`.
"""

from __future__ import annotations

import importlib

from evofair.registry import Registry

_MODULES = ("problems.benchmark", "problems.tabular", "problems.biasbios", "problems.multilabel",
            "problems.ranking")


def registry(kind: str = "problem") -> Registry:
    """The registry of problems (or of `experiment`s), built from the problem modules present."""
    modules = []
    for name in _MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Registry.from_modules(kind, modules)
