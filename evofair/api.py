"""The Python API: run an evolutionary recipe (or a recipe dict plus a problem object) into a run directory.

Experiments (a paper's table, no evolutionary loop) have their own entry point: evofair/experiments.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping

from evofair import failpoints
from evofair.constraints import check_metrics
from evofair.engine.loop import Engine, RunResult
from evofair.errors import UserError, require_new_dir
from evofair.executors import ProblemFactory, WorkerError, make_executor
from evofair.executors.base import with_base_dir
from evofair.experiments import ExperimentRecipe
from evofair.plugins import registry
from evofair.problem import AfterRun
from evofair.recipe import Recipe, parse_recipe, resolved_yaml
from evofair.report import final_front, write_report
from evofair.resume import check_resumable, check_resume, never_started
from evofair.safe_io import atomic_write_text
from evofair.store import RunStore


def build_problem(recipe: Recipe):
    spec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
    return with_base_dir(spec.fn(spec.parse_args(recipe.problem.args, "problem.args"), data_root=recipe.data_root),
                         recipe.base_dir)


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        check_resumable(out)
    elif not never_started(out):  # a run killed before it wrote config.yaml may be started again there
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
    check_metrics(recipe.parsed_constraints, problem.metric_names, problem.name)
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
    changes = check_resume(out, recipe) if resume else {}  # refuses result-changing edits, writes nothing
    problem = prepare(recipe, problem)
    t = time.perf_counter()
    problem.ensure_setup()  # data that does not parse fails here, before anything is written
    setup_seconds = time.perf_counter() - t
    check_metrics(recipe.parsed_constraints, problem.metric_names, problem.name)  # names known after setup
    executor = make_executor(recipe.executor)
    executor.connect()  # a Ray cluster is joined and the actors placed before anything is written
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = RunStore(out)  # takes the run directory's lock before anything else is written
    except BaseException as exc:
        executor.close()
        if isinstance(exc, OSError) or (isinstance(exc, sqlite3.OperationalError) and _disk_error(exc)):
            raise UserError(f"--out {out}: cannot write ({_strerror(exc)}); nothing was computed: free space "
                            f"and run again with the same --out") from None
        raise
    try:
        failpoints.hit("kill_before_config")
        if changes:
            store.log_event("resume_recipe_changed", "resumed with " + ", ".join(
                f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()), data=changes)
        _write_config(out, recipe)
        return _evolve(recipe, problem, store, out, progress, setup_seconds, executor, given)
    except WorkerError as exc:  # the worker's traceback goes to the run's events; the user gets one line
        store.log_event("worker_error", str(exc), data={"traceback": exc.traceback})
        raise UserError(f"{exc}; every completed generation is kept: `evofair run --resume {out}` "
                        "continues") from None
    except (OSError, sqlite3.OperationalError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and not _disk_error(exc):
            raise  # not the disk: a damaged database, which the CLI reports as such
        if not (out / "config.yaml").exists():
            raise UserError(f"{out}: cannot write run data ({_strerror(exc)}); nothing was computed: free space "
                            f"and run again with the same --out") from None
        raise UserError(f"{out}: cannot write run data ({_strerror(exc)}); the store keeps every "
                        f"completed generation and `evofair run --resume {out}` continues") from None
    finally:
        store.close()
        executor.close()


def _disk_error(exc: sqlite3.OperationalError) -> bool:
    """SQLite's own words for a full or failing disk (it raises no OSError)."""
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "unable to open database" in text


def _strerror(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _write_config(out: Path, recipe: Recipe) -> None:
    failpoints.hit("enospc_config")
    atomic_write_text(out / "config.yaml", resolved_yaml(recipe), within=out)


def _evolve(recipe: Recipe, problem, store: RunStore, out: Path, progress: bool, setup_seconds: float,
            executor, given: bool = False) -> RunResult:
    timings = {"setup (data, features)": setup_seconds}
    # an object passed from Python is used as is, even under a registered name (its data may be in memory)
    factory = ProblemFactory(recipe.problem.name, recipe.problem.args, recipe.data_root, tuple(recipe.paths),
                             instance=None if problem_is_registered(recipe) and not given else problem,
                             base_dir=recipe.base_dir)
    t = time.perf_counter()
    with executor:
        executor.start(factory, problem if recipe.executor.name == "serial" else None)
        executor.attach_store(store.root)
        try:
            Engine(recipe, problem, store, executor, progress=progress).run()
        finally:
            _record_wire(store, executor)
    timings["evolution"] = time.perf_counter() - t
    if isinstance(problem, AfterRun):
        timings.update(problem.after_run(store, out, recipe) or {})
    write_report(store, problem, recipe, out, timings)
    return RunResult(str(out), final_front(store, problem, recipe.parsed_constraints), store.generations())


def _record_wire(store: RunStore, executor) -> None:
    """What crossed between driver and workers (Ray): weight bytes and keys, as an `object_store` event."""
    wire = executor.wire.record()
    if not wire["offspring"]:
        return
    path = "shared store: workers read and write weights" if executor.shared_store else "weights via the driver"
    with contextlib.suppress(Exception):  # a full disk must not hide the run's own error
        store.log_event("object_store", f"{path}; {wire['weight_bytes_out'] + wire['weight_bytes_in']} weight "
                        f"bytes, {wire['keys']} keys for {wire['offspring']} offspring", data=wire)


def problem_is_registered(recipe: Recipe) -> bool:
    return recipe.problem.name in registry("problem", recipe.paths)

