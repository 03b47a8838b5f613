"""`evofair` command line. Bad input exits with code 2 and one line; nothing half-written."""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

from evofair.errors import UserError

DEFAULT_RECIPE = "fapareto_biasbios"


def packaged_recipes() -> dict[str, Path]:
    """The recipes shipped with evofair (runs/ in a checkout, `evofair.recipes` when installed)."""
    from importlib import resources

    try:
        folder = resources.files("evofair.recipes")
    except ModuleNotFoundError:
        return {}
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def recipe_path(arg: str | None) -> Path:
    """A recipe file, or the name of a packaged recipe (`evofair run zdt1`); none: the main job.
    (`lexists`, not `Path.exists`: that raises on a name too long for the file system.)"""
    if arg is not None and (os.path.lexists(arg) or arg.endswith((".yaml", ".yml")) or "/" in arg):
        return Path(arg)
    name = arg or DEFAULT_RECIPE
    packaged = packaged_recipes()
    if name not in packaged:
        raise UserError(
            f"{name}: no such recipe file, and no packaged recipe of that name "
            f"(packaged: {', '.join(sorted(packaged)) or 'none'})"
        )
    return packaged[name]


def _cmd_run(args) -> int:
    """A recipe run, or `--resume DIR`: DIR's config.yaml came with the folder, so a component it
    names by `module:Name` (problem, operator, callback, executor) is imported only with --trust-code.
    A recipe given with --resume is the user's own (and must match the run: lifecycle/resume.py)."""
    from evofair.core.plugins import code_trust
    from evofair.lifecycle.stages import recipe_file_of

    if args.resume:
        _check_resume_arguments(args)
    source = recipe_file_of(args.resume) if args.resume and args.recipe is None else None
    with code_trust(source is None or args.trust_code, source or ""):
        return _run_command(args)


def _check_resume_arguments(args) -> None:
    """`--resume DIR` continues DIR where it is: an `--out` elsewhere contradicts it (refused
    before anything is read or written, rather than one of the two silently ignored)."""
    if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise UserError(
            f"--out {args.out}: differs from --resume {args.resume} (a resumed run stays in its own "
            "folder: give only --resume DIR; to start a new run elsewhere, give --out without --resume)"
        )


def _run_command(args) -> int:
    from evofair import api
    from evofair.lifecycle.experiments import is_experiment
    from evofair.lifecycle.recipe import apply_overrides, parse_recipe, read_recipe_file
    from evofair.lifecycle.recipe_file import look_next_to
    from evofair.lifecycle.stages import recipe_file_of

    if args.resume:
        from evofair.lifecycle.resume import check_resumable

        out = Path(args.resume)
        if not recipe_file_of(out).exists():
            check_resumable(out)  # explains a run stopped before it wrote config.yaml
            raise UserError(f"--resume {out}: no config.yaml (not an evofair run directory)")
    # with --resume, a recipe given is checked against the run's config.yaml (lifecycle/resume.py)
    own_config = bool(args.resume) and args.recipe is None
    source = recipe_file_of(args.resume) if own_config else recipe_path(args.recipe)
    file_raw = read_recipe_file(source)
    if own_config:
        from evofair.lifecycle.executor_section import recorded_executor

        file_raw = recorded_executor(file_raw)
    if is_experiment(file_raw):
        if args.resume:
            raise UserError(
                f"--resume {args.resume}: an experiment's output, not an evolutionary run (an "
                "experiment is not resumed: run `evofair experiment` again into a new --out)"
            )
        raise UserError(
            f"{args.recipe}: an experiment recipe (it has `experiment:`), not an evolutionary run: "
            f"use `evofair experiment {args.recipe}`"
        )
    overrides = list(args.set or [])
    if args.executor:  # the recipe's executor fields belong to the executor it named: only eval_chunk stays
        from evofair.lifecycle.executor_section import switch_executor

        file_raw = switch_executor(file_raw, args.executor)
        overrides.append(f"executor.name={args.executor}")  # wins over a --set of the name
    if args.address:
        overrides.append(f"executor.address={args.address}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    raw = look_next_to(apply_overrides(file_raw, overrides), source)  # a `--set` module:Name too
    if not args.resume:  # a run on other data is named after it (evofair/lifecycle/run_name.py)
        from evofair.lifecycle.run_name import name_from_overrides

        raw = name_from_overrides(raw, overrides)
    recipe = parse_recipe(raw, str(source))
    if args.resume:
        out = Path(args.resume)
    elif args.out is not None:
        out = api.check_out_path(args.out)
    else:
        out = _default_out(recipe.name)
    result = api.run(recipe, out, resume=bool(args.resume), progress=not args.quiet)
    hv = result.history["hv_val"].iloc[-1] if len(result.history) else float("nan")
    final = Path(result.out)  # a staged run (lifecycle/stages.py): its final stage's folder
    print(
        f"evofair: wrote {out} ({len(result.ids)} models on the front"
        + (f" of {final}, in {final / 'front.csv'}" if final != out else "")
        + (f", hv_val {hv:.6f}" if hv == hv else "")
        + ")"
    )
    return 0


def _default_out(name: str) -> Path:
    return Path("out") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _cmd_experiment(args) -> int:
    from evofair.lifecycle.experiments import is_experiment, parse_experiment, run_experiment
    from evofair.lifecycle.recipe import apply_overrides, read_recipe_file
    from evofair.lifecycle.recipe_file import look_next_to

    if args.list:
        return _cmd_experiments(args)
    if args.recipe is None:
        raise UserError(
            "RECIPE: expected an experiment recipe file or a packaged recipe's name "
            "(`evofair recipes` lists them; `evofair experiment --list` the installed experiments)"
        )
    source = recipe_path(args.recipe)
    file_raw = read_recipe_file(source)
    if not is_experiment(file_raw):
        raise UserError(
            f"{args.recipe}: an evolutionary recipe (no `experiment:` key), not an experiment: "
            f"use `evofair run {args.recipe}`"
        )
    overrides = list(args.set or []) + ([f"seed={args.seed}"] if args.seed is not None else [])
    recipe = parse_experiment(look_next_to(apply_overrides(file_raw, overrides), source), str(source))
    from evofair.api import check_out_path

    out = check_out_path(args.out) if args.out is not None else _default_out(recipe.name)
    result = run_experiment(recipe, out, progress=not args.quiet)
    print(f"evofair: wrote {out} (experiment {recipe.experiment.name}, {sum(result.timings.values()):.1f} s)")
    return 0


def _cmd_experiments(args) -> int:
    from evofair.core.plugins import registry

    print("experiments (`evofair experiment RECIPE`; recipe key `experiment: {name, args}`):")
    for spec in registry("experiment"):
        print(_describe(spec))
        methods = _experiment_methods(spec)
        if methods:
            print("      methods: " + ", ".join(k if k == v else f"{k} ({v})" for k, v in methods.items()))
    packaged = [name for name, path in sorted(packaged_recipes().items()) if _is_experiment_file(path)]
    if packaged:
        print("packaged experiment recipes:")
        for name in packaged:
            print(f"  {name}")
    return 0


def _experiment_methods(spec) -> dict[str, str]:
    """{name: label} of the methods an experiment compares: its `methods` tag (a mapping, a list, or
    a function giving one), else the default of its `methods` argument; {} when it names none."""
    tagged = spec.tags.get("methods")
    if callable(tagged):
        tagged = tagged()
    if tagged is None:
        field = spec.args.model_fields.get("methods")
        tagged = field.get_default(call_default_factory=True) if field is not None and not field.is_required() else None
    if isinstance(tagged, dict):
        return {str(k): str(v) for k, v in tagged.items()}
    return {str(m): str(m) for m in tagged or ()}


def _is_experiment_file(path: Path) -> bool:
    """A packaged recipe with a top-level `experiment:` key (a cheap look, no YAML parse)."""
    return any(line.startswith("experiment:") for line in path.read_text().splitlines())


def _cmd_recipes(args) -> int:
    for name, path in sorted(packaged_recipes().items()):
        first = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        tag = "[experiment] " if _is_experiment_file(path) else ""
        print(f"  {name:26s} {tag}{first}")
    return 0


def _cmd_problems(args) -> int:
    from evofair.core.plugins import OPERATOR_KINDS, registry

    print("problems:")
    for spec in registry("problem"):
        print(_describe(spec))
    for kind in OPERATOR_KINDS:
        print(f"{kind} operators:")
        for spec in registry(kind):
            print(_describe(spec))
    print("callbacks:")  # recipe `callbacks:` (docs/operations.md#following-a-run)
    for spec in registry("callback"):
        print(_describe(spec))
    print("executors:")  # recipe `executor: {name, ...its fields}` (docs/operations.md)
    for spec in registry("executor"):
        print(_describe(spec))
    print("genomes:")  # what a problem's `genome` may name (docs/architecture.md#genomes)
    for spec in registry("genome"):
        print(_describe(spec))
    return 0


def _describe(spec) -> str:
    """One line per component: name, first docstring line, its `args` as a recipe spells them."""
    from pydantic import BaseModel

    def default(f):
        if f.is_required():
            return "<required>"
        value = f.get_default(call_default_factory=True)
        return repr(value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value)

    fields = ", ".join(f"{f.alias or n}={default(f)}" for n, f in spec.args.model_fields.items())
    return f"  {spec.name:18s} {spec.doc}" + (f"  [{fields}]" if fields else "")


def _cmd_verify(args) -> int:
    """Check a run folder, or every finished stage of a staged run's folder."""
    from evofair.analysis.run_check import check_run
    from evofair.lifecycle.recipe_file import named_code_note
    from evofair.lifecycle.stages import stage_folders

    found = 0
    for folder in stage_folders(args.dir) or [Path(args.dir)]:
        check = check_run(folder)
        for line in [*check.notes, *named_code_note(folder)]:
            print(f"evofair: note: {line}", file=sys.stderr)
        for line in check.problems:
            print(f"evofair: {line}", file=sys.stderr)
        if check.problems:
            print(f"evofair: {folder}: {len(check.problems)} problem(s) found", file=sys.stderr)
        else:
            print(f"evofair: {folder}: ok ({check.individuals} individuals, every weights file matches its hash)")
        found += len(check.problems)
    return 1 if found else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evofair", description="Evolve the Pareto front of model checkpoints.")
    parser.add_argument("--version", action="version", version=f"evofair {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe (default: the FaPareto BiasBios recipe)")
    run.add_argument(
        "recipe",
        nargs="?",
        help=f"recipe YAML, or a packaged recipe's name (default {DEFAULT_RECIPE}; `evofair recipes` lists them)",
    )
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (dotted)")
    run.add_argument("--out", help="run directory to create (must be new or empty)")
    run.add_argument("--resume", metavar="DIR", help="continue an interrupted run directory")
    run.add_argument(
        "--executor",
        metavar="NAME",
        help="run with this executor (serial, processes, ray, or an "
        "installed one) and its defaults; the recipe's `eval_chunk` is kept",
    )
    run.add_argument("--address", help="Ray cluster address for --executor ray (executor.address)")
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--trust-code",
        action="store_true",
        help="with --resume: import the `module:Name` components (problem, operators, callbacks, "
        "executor) the run's config.yaml names; only for folders you trust",
    )
    _verbosity_options(run, "no progress bar and no progress lines, warnings and errors only")
    run.set_defaults(fn=_cmd_run)
    exp = sub.add_parser(
        "experiment", help="run an experiment recipe (a study without the evolutionary loop, e.g. a paper's table)"
    )
    exp.add_argument("recipe", nargs="?", help="experiment recipe YAML, or a packaged recipe's name")
    exp.add_argument("--list", action="store_true", help="list the installed experiments and their args")
    exp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (dotted)")
    exp.add_argument("--out", help="output directory to create (must be new or empty)")
    exp.add_argument("--seed", type=int)
    _verbosity_options(exp, "no progress output, warnings and errors only")
    exp.set_defaults(fn=_cmd_experiment)
    exps = sub.add_parser("experiments", help="list the installed experiments (same as `evofair experiment --list`)")
    exps.set_defaults(fn=_cmd_experiments)
    recipes = sub.add_parser(
        "recipes", help="list the packaged recipes (`evofair run NAME` or `evofair experiment NAME` runs one)"
    )
    recipes.set_defaults(fn=_cmd_recipes)
    probs = sub.add_parser("problems", help="list problems and operators (experiments: `evofair experiments`)")
    probs.set_defaults(fn=_cmd_problems)
    verify = sub.add_parser("verify", help="check a run directory: weights hashes, index consistency")
    verify.add_argument("dir")
    verify.set_defaults(fn=_cmd_verify)
    from evofair.executors.ray_jobs import add_job_commands  # submit / status / logs on a Ray cluster

    add_job_commands(sub)
    from evofair.explorer.commands import add_commands as add_explorer_commands  # explore / export / report

    add_explorer_commands(sub)
    return parser


def _version() -> str:
    """The installed distribution's version (a checkout that is not installed: the package's own)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evofair")
    except PackageNotFoundError:
        from evofair import __version__

        return __version__


def _verbosity_options(sub: argparse.ArgumentParser, quiet_help: str) -> None:
    """-q/--quiet and -v/--verbose: the console's logging level (run.log always keeps INFO and above)."""
    sub.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    sub.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail (debug lines: each generation's HV, front size and time)",
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    with _console_logging(args):
        return _dispatch(args)


@contextlib.contextmanager
def _console_logging(args):
    """The `evofair` loggers on stderr for this command, at the level -q/-v ask for; removed after, so
    an in-process caller's logging is left as it was."""
    from evofair.tracking.logs import console, level_for

    with console(level_for(getattr(args, "verbose", 0), getattr(args, "quiet", False))):
        yield


def _dispatch(args) -> int:
    try:
        return args.fn(args)
    except UserError as exc:
        message = " ".join(str(exc).split())  # one line, whatever a message embeds
        print(f"evofair: error: {message}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # a damaged (or not-SQLite) evofair.sqlite, whichever command read it
        where = getattr(args, "dir", None) or getattr(args, "resume", None) or "run directory"
        message = " ".join(str(exc).split())
        print(f"evofair: error: {where}: run database damaged ({message})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evofair: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
