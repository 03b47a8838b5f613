"""The Python API: run an evolutionary recipe (or a recipe dict plus a problem object) into a run directory.

Experiments (a paper's table, no evolutionary loop) have their own entry point: evofair/lifecycle/experiments.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evofair.analysis.report import final_front, write_report
from evofair.analysis.result import OBJECTIVES_META, Result
from evofair.analysis.run_check import refuse_damaged
from evofair.core import failpoints
from evofair.core.constraints import check_metrics
from evofair.core.plugins import code_trust, registry
from evofair.core.problem import AfterRun
from evofair.engine.loop import Engine
from evofair.errors import UserError, require_new_dir
from evofair.executors import WorkerError, make_executor
from evofair.lifecycle.executor_section import recorded_executor
from evofair.lifecycle.experiments import ExperimentRecipe
from evofair.lifecycle.rebuild import ProblemFactory, build_problem, class_reference, prepare, record_problem  # noqa: F401 (build_problem: API)
from evofair.lifecycle.recipe import Recipe, parse_recipe, read_recipe_file, resolved_yaml
from evofair.lifecycle.resume import check_resumable, check_resume, never_started
from evofair.lifecycle.stages import Stages, is_staged, recipe_file_of, run_stages, stages_of
from evofair.store.run_store import RunStore
from evofair.store.safe_io import atomic_write_text
from evofair.tracking.callbacks import CallbackError, CallbackList, RunInfo, RunStartInfo, build_callbacks
from evofair.tracking.estimate import say_hardware_note
from evofair.tracking.logs import console_for_library, library_records, run_log
from evofair.tracking.progress import step

log = logging.getLogger("evofair.run")


NAME_MAX = 255  # bytes in one file name, on the file systems evofair writes to
PATH_MAX = 4096


def check_out_path(out: str | Path, flag: str = "--out") -> Path:
    """An output folder that can be created: not empty text (which would mean the current folder),
    no name longer than the file system takes (refused here, in one line, before anything else)."""
    if not str(out).strip():
        raise UserError(f"{flag}: empty; expected the run directory to create")
    path = Path(out)
    longest = max((len(os.fsencode(p)) for p in path.parts), default=0)
    if longest > NAME_MAX or len(os.fsencode(str(path.absolute()))) >= PATH_MAX:
        shown = str(out) if len(str(out)) <= 60 else str(out)[:57] + "..."
        raise UserError(
            f"{flag} {shown}: path too long (a name of {longest} bytes; file systems take {NAME_MAX} "
            f"per name and {PATH_MAX} in all)"
        )
    return path


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        check_resumable(out)
    elif not never_started(out):  # a run killed before it wrote config.yaml may be started again there
        require_new_dir(out, "--out", "choose a new directory, or --resume it")


def run(
    recipe: Recipe | Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    problem=None,
    resume: bool | str | Path = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    trust_code: bool = False,
) -> Result:
    """Run a recipe into `out` (or continue the run there, with `resume`); returns its `Result`.

    Pass `problem=` to run a problem object defined in Python: config.yaml then records its class
    and arguments (evofair/lifecycle/rebuild.py). `resume=DIR` continues DIR, by default under its own
    config.yaml. `callbacks=` (evofair.tracking.Callback objects) follow the run, after the recipe's
    own `callbacks:`. Every input check happens before the first file is written; disk errors become
    a `UserError` and leave the store consistent. An experiment recipe (`experiment:` key) is
    refused: `evofair.experiment` runs those. Resuming under the folder's own config.yaml (no
    `recipe`) imports a `module:Name` it names only with `trust_code=True`: the folder may come
    from anyone, while a recipe passed here is the caller's own.
    """
    folder = Path(resume if isinstance(resume, (str, Path)) else out or ".")
    with (
        console_for_library(progress),
        library_records(),  # other libraries' warnings go to run.log, not the console
        code_trust(recipe is not None or not resume or trust_code, recipe_file_of(folder)),
    ):
        return _run(recipe, out, problem=problem, resume=resume, progress=progress, callbacks=callbacks)


def _run(recipe, out, *, problem, resume: bool | str | Path, progress: bool, callbacks: Sequence[Any]) -> Result:
    recipe, out, resume = _resume_target(recipe, out, resume)
    if problem is not None and isinstance(recipe, Mapping) and "problem" not in recipe:
        recipe = {**recipe, "problem": {"name": class_reference(type(problem))}}  # the object names itself
    if isinstance(recipe, ExperimentRecipe):
        raise UserError(
            f"recipe {recipe.name!r}: an experiment recipe, not an evolutionary run: run it with "
            "evofair.experiment (`evofair experiment`)"
        )
    if not isinstance(recipe, Recipe):
        recipe = parse_recipe(recipe, problem=problem)
    plan = stages_of(recipe, problem)  # several runs (lifecycle/stages.py)
    if plan is not None:
        return _run_stages(recipe, out, plan, resume=resume, progress=progress, callbacks=callbacks)
    given = problem is not None
    if given:
        recipe = recipe.model_copy(deep=True)  # the caller's Recipe stays as written
        record_problem(recipe, problem)  # config.yaml states the object's class and arguments
    _check_out(out, resume)
    if resume:
        _refuse_damaged(out)  # before the store is opened for writing (which would re-create tables)
    changes = check_resume(out, recipe) if resume else {}  # refuses result-changing edits, writes nothing
    say_hardware_note(recipe.name, recipe.sized_for, recipe.executor.name, recipe.model_dump(mode="json"))
    problem = prepare(recipe, problem)
    t = time.perf_counter()
    problem.ensure_setup()  # data that does not parse fails here, before anything is written
    setup_seconds = time.perf_counter() - t
    check_metrics(recipe.parsed_constraints, problem.metric_names, problem.name)  # names known after setup
    trackers = CallbackList([*build_callbacks(recipe), *callbacks])  # a missing tracker package fails here
    executor = make_executor(recipe.executor, recipe.paths)
    executor.connect()  # e.g. a Ray cluster is joined and the actors placed before anything is written
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = RunStore(out)  # takes the run directory's lock before anything else is written
    except BaseException as exc:
        executor.close()
        if isinstance(exc, OSError) or (isinstance(exc, sqlite3.OperationalError) and _disk_error(exc)):
            raise UserError(
                f"--out {out}: cannot write ({_strerror(exc)}); nothing was computed: free space "
                f"and run again with the same --out"
            ) from None
        raise
    logs = contextlib.ExitStack()
    try:
        logs.enter_context(run_log(out))  # warnings, worker and callback errors, per-generation lines
        failpoints.hit("kill_before_config")
        if changes:
            store.log_event(
                "resume_recipe_changed",
                "resumed with " + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()),
                data=changes,
            )
        _write_config(out, recipe)
        _record_objectives(store, problem)
        store.seal((out / "config.yaml").read_bytes(), [[o.name, o.direction] for o in problem.objectives])
        _evolve(recipe, problem, store, out, progress, setup_seconds, executor, given, trackers)
    except WorkerError as exc:  # the worker's traceback goes to the run's events; the user gets one line
        store.log_event("worker_error", str(exc), data={"traceback": exc.traceback})
        raise UserError(f"{exc}; every completed generation is kept: `evofair run --resume {out}` continues") from None
    except CallbackError as exc:  # raised after its generation was committed: the store is consistent
        store.log_event("callback_error", str(exc), data={"traceback": exc.traceback})
        raise
    except (OSError, sqlite3.OperationalError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and not _disk_error(exc):
            raise  # not the disk: a damaged database, which the CLI reports as such
        if not (out / "config.yaml").exists():
            raise UserError(
                f"{out}: cannot write run data ({_strerror(exc)}); nothing was computed: free space "
                f"and run again with the same --out"
            ) from None
        raise UserError(
            f"{out}: cannot write run data ({_strerror(exc)}); the store keeps every "
            f"completed generation and `evofair run --resume {out}` continues"
        ) from None
    finally:
        trackers.close()
        logs.close()
        store.close()
        executor.close()
    return Result(out, problem=problem)


def _resume_target(recipe, out, resume) -> tuple[Any, Path, bool]:
    """`resume=DIR` (or `resume=True` with `out`): the run folder, and its config.yaml when no
    recipe is given (a problem passed again from Python is checked against that record)."""
    if isinstance(resume, (str, Path)):
        if out is not None and Path(out) != Path(resume):
            raise UserError(f"resume={resume}, out={out}: give the run folder once (resume=DIR)")
        out = resume
    if out is None:
        raise UserError("out: expected the run directory to create (or resume=DIR to continue one)")
    out = check_out_path(out, "out" if not resume else "resume")
    if recipe is None:
        if not resume:
            raise UserError("recipe: expected a recipe (a dict, a Recipe, or evofair.load_recipe(FILE))")
        if not is_staged(out):
            check_resumable(out)
        recipe = recorded_executor(read_recipe_file(recipe_file_of(out)))
    return recipe, out, bool(resume)


def _run_stages(recipe: Recipe, out: Path, plan: Stages, *, resume: bool, progress: bool, callbacks) -> Result:
    """Each stage an ordinary run in its own folder; a finished one is read back, not run again."""

    def run_one(tree, folder: Path, again: bool) -> Result:
        return _run(tree, folder, problem=None, resume=again, progress=progress, callbacks=callbacks)

    def reuse(tree, folder: Path) -> Result:
        _refuse_damaged(folder)  # sealed: its config.yaml states what the stage ran
        check_resume(folder, parse_recipe(tree, str(folder / "config.yaml")))
        return Result(folder)

    result = run_stages(
        recipe,
        out,
        plan,
        resume=resume,
        write_recipe=lambda path: atomic_write_text(path, resolved_yaml(recipe), within=out),
        run_one=run_one,
        reuse=reuse,
    )
    log.info("%s: the final front is %s", plan.what, Path(result.out) / "front.csv")
    return result


def _refuse_damaged(out: Path) -> None:
    """`--resume` continues only a run `verify` accepts (weights checked for presence, not re-hashed)."""
    refuse_damaged(out, "--resume ")


def _record_objectives(store: RunStore, problem) -> None:
    """The objectives and their directions, so `evofair.load` and the explorer read a run's front
    right without rebuilding its problem."""
    store.set_meta(OBJECTIVES_META, [[o.name, o.direction] for o in problem.objectives])


def _disk_error(exc: sqlite3.OperationalError) -> bool:
    """SQLite's own words for a full or failing disk (it raises no OSError)."""
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "unable to open database" in text


def _strerror(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _write_config(out: Path, recipe: Recipe) -> None:
    failpoints.hit("enospc_config")
    atomic_write_text(out / "config.yaml", resolved_yaml(recipe), within=out)


def _evolve(
    recipe: Recipe,
    problem,
    store: RunStore,
    out: Path,
    progress: bool,
    setup_seconds: float,
    executor,
    given: bool = False,
    callbacks: CallbackList | None = None,
) -> None:
    timings = {"setup (data, features)": setup_seconds}
    _record_compute(store, problem, executor)
    # an object passed from Python is used as is, even under a registered name (its data may be in memory)
    factory = ProblemFactory(
        recipe.problem.name,
        recipe.problem.args,
        recipe.data_root,
        tuple(recipe.paths),
        instance=None if problem_is_registered(recipe) and not given else problem,
        base_dir=recipe.base_dir,
    )
    callbacks = callbacks or CallbackList()
    t = time.perf_counter()
    with executor:
        executor.start(factory, problem)  # used as is where the executor evaluates in the driver
        executor.attach_store(store.root)
        try:
            engine = Engine(recipe, problem, store, executor, progress=progress, callbacks=callbacks)
            if callbacks:
                callbacks.call(
                    "on_run_start",
                    _start_info(recipe, problem, store, out),
                    f"; nothing was lost: `evofair run --resume {out}` continues",
                )
            engine.run()
        finally:
            _record_wire(store, executor)
    timings["evolution"] = time.perf_counter() - t
    if isinstance(problem, AfterRun):
        with step(f"after the run: {type(problem).__name__}'s own phase (baselines, extra evaluations)"):
            timings.update(problem.after_run(store, out, recipe) or {})
    log.debug("writing the report, tables and plots")
    write_report(store, problem, recipe, out, timings)
    last = store.last_generation()
    if last is not None:
        store.seal_front(last["generation"])  # front.csv now shows this generation's front
    if callbacks:
        front = final_front(store, problem, recipe.parsed_constraints)
        callbacks.call(
            "on_run_end",
            _end_info(front, store.generations(), problem, out, timings),
            f"; the run itself finished and {out} is complete",
        )


def _start_info(recipe: Recipe, problem, store: RunStore, out: Path) -> RunStartInfo:
    last = store.last_generation()
    return RunStartInfo(
        out=out,
        recipe=recipe.model_dump(mode="json", by_alias=True),
        problem=recipe.problem.name,
        objectives=tuple(problem.objective_names),
        start_generation=0 if last is None else last["generation"] + 1,
        generations=recipe.algorithm.generations,
    )


def _end_info(front, generations, problem, out: Path, timings: Mapping[str, float]) -> RunInfo:
    from evofair.tracking.callbacks import ModelInfo

    names = problem.objective_names
    models = tuple(
        ModelInfo(
            generation=ind.generation,
            id=ind.id,
            parents=tuple(ind.parents),
            metrics={split: dict(per) for split, per in ind.metrics.items()},
            objectives={n: ind.metrics.get("val", {}).get(n) for n in names},
        )
        for ind in front
    )
    history = tuple(
        {k: g[k] for k in ("generation", "hv_val", "n_front", "evaluations", "seconds")} for g in generations
    )
    plot, report = out / "plots" / "front.png", out / "report.md"
    return RunInfo(
        out=out,
        history=history,
        front=models,
        front_plot=plot if plot.is_file() else None,
        report=report if report.is_file() else None,
        timings=dict(timings),
    )


def _record_compute(store: RunStore, problem, executor) -> None:
    """The device and dtype the problem resolved (e.g. `device: auto` → cuda:0), for report.md and
    model cards. Workers in other processes (Ray actors, local processes) resolve `auto` there; this is
    the driver's."""
    info = problem.compute_info() if callable(getattr(problem, "compute_info", None)) else None
    if info:
        store.set_meta("compute", {**info, "resolved_by": "run" if executor.in_driver else "driver"})


def _record_wire(store: RunStore, executor) -> None:
    """What crossed between driver and workers (counted by the Ray executor): weight bytes and keys, as an
    `object_store` event."""
    wire = executor.wire.record()
    if not wire["offspring"]:
        return
    path = "shared store: workers read and write weights" if executor.shared_store else "weights via the driver"
    with contextlib.suppress(Exception):  # a full disk must not hide the run's own error
        store.log_event(
            "object_store",
            f"{path}; {wire['weight_bytes_out'] + wire['weight_bytes_in']} weight "
            f"bytes, {wire['keys']} keys for {wire['offspring']} offspring",
            data=wire,
        )


def problem_is_registered(recipe: Recipe) -> bool:
    return recipe.problem.name in registry("problem", recipe.paths)
