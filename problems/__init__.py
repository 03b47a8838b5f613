"""Concrete problems, each registered by name with typed parameters (see `evofair problems`).

Problem modules may also register `experiment`s: standalone studies (a paper's table against its
baselines) that a recipe runs instead of the evolutionary loop. An experiment is a function
``fn(recipe, problem, args, out: Path, progress: bool) -> dict[str, float]`` (phase timings) that
writes its own tables, plots and report.md into `out`.
"""

from __future__ import annotations

from evofair.registry import LazyRegistry

_MODULES = ("problems.benchmark", "problems.toy", "problems.biasbios", "problems.multilabel",
            "problems.ranking", "problems.ranking_table", "problems.alignment")


def registry(kind: str = "problem") -> LazyRegistry:
    """The registry of problems (or of `experiment`s); modules are imported only as needed."""
    return LazyRegistry(kind, _MODULES)
