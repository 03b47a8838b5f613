"""The Python API: run an evolutionary recipe (or a recipe dict plus a problem object) into a run directory.

Experiments (a paper's table, no evolutionary loop) have their own entry point: evofair/experiments.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from evofair.engine.loop import Engine, RunResult
from evofair.errors import UserError, require_new_dir
from evofair.executors import ProblemFactory, make_executor
from evofair.executors.base import with_base_dir
from evofair.experiments import ExperimentRecipe
from evofair.plugins import registry
from evofair.problem import AfterRun
from evofair.recipe import Recipe, parse_recipe, resolved_yaml
from evofair.report import final_front, write_report
from evofair.store import DB_NAME, RunStore


def build_problem(recipe: Recipe):
    spec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
    return with_base_dir(spec.fn(spec.parse_args(recipe.problem.args, "problem.args"), data_root=recipe.data_root),
                         recipe.base_dir)


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        if not (out / DB_NAME).exists():
            raise UserError(f"--resume {out}: not an evofair run directory (no {DB_NAME})")
        return
    require_new_dir(out, "--out", "choose a new directory, or --resume it")


def prepare(recipe: Recipe, problem=None):
    """Build and check everything that can fail on bad input, before any file is written."""
    problem = problem or build_problem(recipe)
    problem.check_inputs()
    if not problem.objectives:
        raise UserError(f"problem {problem.name}: expected at least one objective, got none")
    ref = recipe.hv_ref or problem.default_hv_ref
    if ref is not None and len(ref) != len(problem.objectives):
        raise UserError(f"hv_ref: expected {len(problem.objectives)} values (one per objective), got {len(ref)}")
    return problem


def run(recipe: Recipe | Mapping[str, Any], out: str | Path, *, problem=None, resume: bool = False,
        progress: bool = True) -> RunResult:
    """Run a recipe into `out` (or continue the run there, with `resume`).

    Pass `problem=` to run a problem object defined in Python. Every input check happens before
    the first file is written; disk errors become a `UserError` and leave the store consistent.
    An experiment recipe (`experiment:` key) is refused: `evofair.experiment` runs those.
    """
    if isinstance(recipe, ExperimentRecipe):
        raise UserError(f"recipe {recipe.name!r}: an experiment recipe, not an evolutionary run: run it with "
                        "evofair.experiment (`evofair experiment`)")
    if not isinstance(recipe, Recipe):
        recipe = parse_recipe(recipe, problem=problem)
    given = problem is not None
    if given and callable(getattr(problem, "recipe_args", None)):  # e.g. data passed as a DataFrame
        recipe.problem.args = problem.recipe_args()  # config.yaml records what the object was built from
    out = Path(out)
    _check_out(out, resume)
    problem = prepare(recipe, problem)
    t = time.perf_counter()
    problem.ensure_setup()  # data that does not parse fails here, before anything is written
    setup_seconds = time.perf_counter() - t
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = RunStore(out)  # takes the run directory's lock before anything else is written
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror})") from None
    try:
        _write_config(out, recipe)
        return _evolve(recipe, problem, store, out, progress, setup_seconds, given)
    except OSError as exc:
        raise UserError(f"{out}: cannot write run data ({exc.strerror}); the store keeps every "
                        f"completed generation and `evofair run --resume {out}` continues") from None
    finally:
        store.close()


def _write_config(out: Path, recipe: Recipe) -> None:
    tmp = out / "config.yaml.tmp"
    tmp.write_text(resolved_yaml(recipe))
    tmp.replace(out / "config.yaml")


def _evolve(recipe: Recipe, problem, store: RunStore, out: Path, progress: bool, setup_seconds: float,
            given: bool = False) -> RunResult:
    timings = {"setup (data, features)": setup_seconds}
    # an object passed from Python is used as is, even under a registered name (its data may be in memory)
    factory = ProblemFactory(recipe.problem.name, recipe.problem.args, recipe.data_root, tuple(recipe.paths),
                             instance=None if problem_is_registered(recipe) and not given else problem,
                             base_dir=recipe.base_dir)
    t = time.perf_counter()
    with make_executor(recipe.executor) as executor:
        executor.start(factory, problem if recipe.executor.name == "serial" else None)
        Engine(recipe, problem, store, executor, progress=progress).run()
    timings["evolution"] = time.perf_counter() - t
    if isinstance(problem, AfterRun):
        timings.update(problem.after_run(store, out, recipe) or {})
    write_report(store, problem, recipe, out, timings)
    return RunResult(str(out), final_front(store, problem), store.generations())


def problem_is_registered(recipe: Recipe) -> bool:
    return recipe.problem.name in registry("problem", recipe.paths)

