"""Experiments: studies that are not an evolutionary run (a paper's table), with their own recipe and entry point.

Why not a key of the evolutionary `Recipe`: an experiment is one function given a set-up problem;
`algorithm`, `operators`, `executor` and `hv_ref` would mean nothing to it. Its recipe therefore has
none of them, `evofair experiment` / `evofair.experiment` run it, and a recipe that mixes the two
kinds is refused (exit 2, one line) instead of half of it being silently ignored.

The contract of an experiment component (kind "experiment", entry-point group `evofair.experiment`):

    @component("experiment", "my_table", MyArgs)
    def my_table(recipe: ExperimentRecipe, problem, args: MyArgs, out: Path, progress: bool) -> dict[str, float]:
        '''First docstring line: what `evofair experiment --list` shows.'''
        ...  # write tables / report.md under `out`; return phase timings in seconds

It gets the problem built from `recipe.problem` and already set up (`ensure_setup`), and may read
`recipe.name` and `recipe.seed`. A `UserError` it raises before writing anything (e.g. "needs
problem letor") leaves no run directory behind, as every other input error does.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from evofair.core.plugins import registry
from evofair.core.registry import explain_validation_error
from evofair.errors import UserError, require_new_dir
from evofair.lifecycle.recipe import ProblemCfg, Recipe, _Strict, resolved_yaml
from evofair.lifecycle.recipe_file import apply_overrides, check_shape, read_recipe_file
from evofair.store.safe_io import atomic_write_text

# keys of an evolutionary recipe that an experiment has no use for
EVOLUTION_ONLY = ("algorithm", "operators", "executor", "hv_ref", "report", "intervals")


class ExperimentCfg(_Strict):
    name: str = Field(description="an installed experiment (`evofair experiment --list`) or `module:function`")
    args: dict[str, Any] = Field(default_factory=dict)


class ExperimentRecipe(_Strict):
    """The YAML (or dict) of one experiment: which problem, which experiment, its arguments, the seed."""

    name: str = Field(
        "experiment",
        min_length=1,
        max_length=200,
        pattern=r"^[^/\x00]+$",
        description="names the default output directory: no '/'",
    )
    problem: ProblemCfg
    experiment: ExperimentCfg
    seed: int = Field(1, ge=0)
    data_root: str | None = None
    paths: list[str] = Field(
        default_factory=list,
        description="folders searched for `module:attr` components (a recipe file that uses one adds its own folder)",
    )


@dataclass
class ExperimentResult:
    out: str
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds, setup included


def is_experiment(raw: Any) -> bool:
    """Is this raw recipe (a mapping) an experiment rather than an evolutionary run?"""
    return isinstance(raw, Mapping) and "experiment" in raw


def parse_experiment(raw: Mapping[str, Any], source: str = "recipe", *, problem=None) -> ExperimentRecipe:
    """Validate an experiment recipe: its structure, then the problem's and the experiment's arguments.

    With `problem` (an object defined in Python), the problem is not looked up in the registry.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: a recipe must be a mapping, got a {type(raw).__name__}")
    check_shape(raw, source)
    if "experiment" not in raw:
        raise UserError(
            f"{source}: an evolutionary recipe (no `experiment:` key), not an experiment: "
            f"run it with `evofair run {source}` (Python: evofair.run)"
        )
    for key in EVOLUTION_ONLY:
        if key in raw:
            raise UserError(
                f"{source}: {key}: an experiment recipe has no `{key}` (only evolutionary runs use it): remove the key"
            )
    try:
        recipe = ExperimentRecipe.model_validate(dict(raw))
    except ValidationError as exc:
        path, msg = explain_validation_error(exc, ExperimentRecipe, dict(raw))
        raise UserError(f"{source}: {path}: {msg}" if path else f"{source}: {msg}") from None
    if problem is None:
        pspec = registry("problem", recipe.paths).get(recipe.problem.name, f"{source}: problem.name")
        pspec.parse_args(recipe.problem.args, f"{source}: problem.args")
    espec = registry("experiment", recipe.paths).get(recipe.experiment.name, f"{source}: experiment.name")
    espec.parse_args(recipe.experiment.args, f"{source}: experiment.args")
    return recipe


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentRecipe:
    raw = apply_overrides(read_recipe_file(path), overrides or [])
    return parse_experiment(raw, str(path))


def run_experiment(
    recipe: ExperimentRecipe | Mapping[str, Any], out: str | Path, *, problem=None, progress: bool = True
) -> ExperimentResult:
    """Run an experiment recipe into `out` (a new or empty directory); `evofair.experiment` is this.

    Every input check (recipe, problem arguments, data files, the output directory) happens before
    the first file is written; `config.yaml` holds the resolved recipe, the experiment writes the rest.
    """
    if isinstance(recipe, Recipe):
        raise UserError(
            f"recipe {recipe.name!r}: an evolutionary recipe, not an experiment: run it with "
            "evofair.run (`evofair run`)"
        )
    if not isinstance(recipe, ExperimentRecipe):
        recipe = parse_experiment(recipe, problem=problem)
    out = Path(out)
    require_new_dir(out, "--out")
    spec = registry("experiment", recipe.paths).get(recipe.experiment.name, "experiment.name")
    args = spec.parse_args(recipe.experiment.args, "experiment.args")
    if problem is None:
        pspec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
        problem = pspec.fn(pspec.parse_args(recipe.problem.args, "problem.args"), data_root=recipe.data_root)
    problem.check_inputs()
    t = time.perf_counter()
    problem.ensure_setup()  # data that does not parse fails here, before anything is written
    timings = {"setup (data, features)": time.perf_counter() - t}
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", resolved_yaml(recipe), within=out)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror})") from None
    try:
        timings.update(spec.fn(recipe, problem, args, out, progress) or {})
    except UserError:
        _undo_if_untouched(out, created)
        raise
    return ExperimentResult(str(out), timings)


def _undo_if_untouched(out: Path, created: bool) -> None:
    """An experiment refused its input (e.g. the wrong problem) before writing: leave nothing behind.

    Only when `config.yaml` is all there is; anything the experiment wrote is kept for the user.
    """
    if [p.name for p in out.iterdir()] != ["config.yaml"]:
        return
    if created:
        shutil.rmtree(out, ignore_errors=True)
    else:
        (out / "config.yaml").unlink(missing_ok=True)
