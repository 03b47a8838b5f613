"""Ray cluster jobs: `evofair submit`, `evofair status`, `evofair logs` (Ray Jobs SDK; the client and
its one-line errors are in `ray_client`).

Why a job rather than `evofair run --address ray://…`: a job's driver runs *on the cluster*, so a
long run survives the user's laptop going to sleep, and its logs stay readable afterwards.

What a job carries: the recipe, resolved and validated here first (a bad recipe exits 2 before
anything is sent), and the project's code and shipped data as the job's `working_dir`. We stage
that directory ourselves from an explicit list (`SHIPPED`) rather than handing Ray the repository
root: an installed evofair has no repository root, and a checkout holds a virtual environment,
feature caches and run directories that must not be uploaded. On the cluster the job runs
`python -m evofair.cli run <recipe> --executor ray --address auto --out DIR`: its driver writes
the run directory (store, report; weights too unless every actor sees DIR, then they write them),
so DIR must be a path the head node can write (storage every node sees, if you want to read it
from elsewhere or want the actors to write weights there).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from json import JSONDecodeError
from pathlib import Path

from evofair.errors import UserError, require_new_dir
from evofair.executors.ray_client import (
    TERMINAL,
    client,
    describe,
    job_info,
    logs,
    one_line,
    ray_errors,
    wait,
    wait_terminal,
)

# The packages a job needs, laid out as the wheel installs them (in a checkout, evofair.problems
# lives in problems/, evofair.datasets in data/ ...); caches, venvs and run directories stay home.
SHIPPED = ("evofair", "evofair.operators", "evofair.problems", "evofair.recipes", "evofair.datasets")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".cache", ".pytest_cache", "*.egg-info")
JOB_RECIPE = "evofair_job_recipe.yaml"
PREFLIGHT_TIMEOUT_S = 180.0
PREFLIGHT_MARK = "EVOFAIR_PREFLIGHT "
# Run on the cluster by the interpreter the job will use: which of evofair's dependencies it cannot
# find. find_spec locates a module without running it, so the check takes a second, not torch's import.
PREFLIGHT_SCRIPT = (
    "import importlib.util, json, sys; "
    "missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]; "
    f"print({PREFLIGHT_MARK!r} + json.dumps({{'missing': missing, 'python': sys.executable, "
    "'version': sys.version.split()[0]}))"
)


# -- submit -----------------------------------------------------------------------------------


def resolve_recipe(recipe_path: str, overrides: list[str], seed: int | None):
    """Read, override and fully validate a recipe here, as `evofair run` would."""
    from evofair.lifecycle.executor_section import switch_executor
    from evofair.lifecycle.rebuild import prepare
    from evofair.lifecycle.recipe import apply_overrides, parse_recipe, read_recipe_file

    overrides = list(overrides) + ["executor.name=ray"] + ([f"seed={seed}"] if seed is not None else [])
    raw = switch_executor(read_recipe_file(recipe_path), "ray")  # the recipe's other executor's fields go
    recipe = parse_recipe(apply_overrides(raw, overrides), recipe_path)
    prepare(recipe)  # problem arguments, data files, hv_ref: all checked before submitting
    return recipe


def run_directory(out: str | None, recipe_name: str) -> str:
    """An absolute run directory: the job's driver starts in a temporary working_dir, so a
    relative path would land in a directory Ray deletes."""
    path = Path(out) if out else Path("out") / f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = path.expanduser().absolute()
    require_new_dir(path, "--out")
    return str(path)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates without importing the package's code
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"cannot ship package {name!r}: not found (is evofair installed?)")
    return Path(list(spec.submodule_search_locations)[0])


def user_modules(recipe) -> list[Path]:
    """Top-level modules or packages of the recipe's `module:attr` components that are not installed
    (a file next to the recipe, or on PYTHONPATH): the job must carry them to the cluster."""
    from evofair.core.plugins import is_reference

    ops = recipe.operators
    names = [recipe.problem.name, recipe.executor.name] + [c.name for c in ops.crossovers]
    names += [c.name for c in (ops.mutation, ops.refine, ops.initial_refine) if c is not None]
    found: list[Path] = []
    sys.path.extend(p for p in recipe.paths if p not in sys.path)
    for ref in filter(is_reference, names):
        top = ref.partition(":")[0].split(".")[0]
        if top in {name.split(".")[0] for name in SHIPPED}:
            continue  # `evofair.problems....:X` travels with evofair itself
        spec = importlib.util.find_spec(top)
        if spec is None:
            continue
        if spec.has_location and spec.origin:
            path = Path(spec.origin)
            path = path.parent if path.name == "__init__.py" else path
        elif spec.submodule_search_locations:  # a namespace package (a folder without __init__.py)
            path = Path(list(spec.submodule_search_locations)[0])
        else:
            continue  # built into the interpreter
        if not _installed(path) and path not in found:
            found.append(path)
    return found


def _installed(path: Path) -> bool:
    """Part of an installation (site-packages, the standard library): the cluster's Python has it."""
    if "site-packages" in path.parts or "dist-packages" in path.parts:
        return True
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return any(path.resolve().is_relative_to(Path(p).resolve()) for p in prefixes)


def stage_project(dest: Path, recipe_yaml: str, extra: Sequence[Path] = ()) -> Path:
    """Copy what a job needs into `dest` (the job's working_dir) and write the recipe there:
    evofair's packages in their installed layout, plus the user's own modules (`extra`)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:  # parents first, so each subpackage lands inside its copied parent
        shutil.copytree(_package_dir(name), dest.joinpath(*name.split(".")), ignore=SKIPPED, dirs_exist_ok=True)
    for path in extra:
        if path.is_dir():
            shutil.copytree(path, dest / path.name, ignore=SKIPPED)
        else:
            shutil.copy2(path, dest / path.name)
    _stage_metadata(dest)
    (dest / JOB_RECIPE).write_text(recipe_yaml)
    return dest


def _stage_metadata(dest: Path) -> None:
    """evofair's distribution metadata, so that its entry points (how every problem and operator is
    found) exist on a cluster where evofair is not installed; the working_dir comes first on the
    job's path, so these win over an older installed copy."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("evofair")
    except PackageNotFoundError:
        raise UserError("cannot ship evofair: it is not installed in this interpreter (pip install -e .)") from None
    info = dest / f"evofair-{dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: evofair\nVersion: {dist.version}\n")
    (info / "entry_points.txt").write_text(dist.read_text("entry_points.txt") or "")


def entrypoint(out: str, python: str = "python") -> str:
    return shlex.join(
        [python, "-m", "evofair.cli", "run", JOB_RECIPE, "--executor", "ray", "--address", "auto", "--out", out]
    )


def _env_vars(pairs: list[str]) -> dict[str, str]:
    env = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--env {item}: expected KEY=VALUE")
        env[key] = value
    return env


def submit(
    recipe_path: str,
    *,
    address: str | None,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    out: str | None = None,
    python: str = "python",
    env: Sequence[str] = (),
) -> tuple[str, str]:
    """Submit a recipe as a Ray job; returns (job id, run directory on the cluster)."""
    from evofair.lifecycle.recipe import resolved_yaml

    recipe = resolve_recipe(recipe_path, list(overrides), seed)
    out_dir = run_directory(out, recipe.name)
    env_vars = _env_vars(list(env))
    url, jobs = client(address)
    preflight(url, jobs, python, env_vars)
    with tempfile.TemporaryDirectory(prefix="evofair-job-") as tmp:
        workdir = stage_project(Path(tmp) / "project", resolved_yaml(recipe), user_modules(recipe))
        with ray_errors(url):
            try:
                job = jobs.submit_job(
                    entrypoint=entrypoint(out_dir, python),
                    runtime_env={"working_dir": str(workdir), **({"env_vars": env_vars} if env_vars else {})},
                    metadata={"evofair_out": out_dir, "evofair_recipe": recipe.name, "evofair_seed": str(recipe.seed)},
                )
            except ValueError as exc:  # e.g. the package is over Ray's upload limit
                if isinstance(exc, JSONDecodeError):
                    raise
                raise UserError(f"{recipe_path}: cannot ship the project to the cluster ({one_line(exc)})") from None
    return job, out_dir


# -- preflight: can the job's interpreter import evofair's dependencies? ---------------------


def dependency_modules() -> list[str]:
    """Top-level module names of evofair's required dependencies, as installed here."""
    from importlib.metadata import distribution, packages_distributions

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    needed = set()
    for line in distribution("evofair").requires or ():
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needed.add(canonicalize_name(req.name))
    return sorted(
        m
        for m, dists in packages_distributions().items()
        if m.isidentifier() and not m.startswith("_") and any(canonicalize_name(d) in needed for d in dists)
    )


def preflight(url: str, jobs, python: str, env_vars: dict[str, str], timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """A tiny job with the interpreter the real job will use: a missing dependency is one line here,
    naming the module, instead of a bare `ModuleNotFoundError` in a job log later."""
    entry = shlex.join([python, "-c", PREFLIGHT_SCRIPT, *dependency_modules()])
    with ray_errors(url):
        job = jobs.submit_job(
            entrypoint=entry,
            runtime_env={"env_vars": env_vars} if env_vars else None,
            metadata={"evofair_preflight": "1"},
        )
        info = wait_terminal(jobs, job, timeout)
        status = str(getattr(info.status, "value", info.status))
        if status not in TERMINAL:
            with contextlib.suppress(Exception):
                jobs.stop_job(job)
            raise UserError(
                f"--address {url}: the dependency check job {job} did not finish within {timeout:g} s "
                "(is the cluster busy?)"
            )
        text = jobs.get_job_logs(job)
        with contextlib.suppress(Exception):
            jobs.delete_job(job)
    found = [line[len(PREFLIGHT_MARK) :] for line in text.splitlines() if line.startswith(PREFLIGHT_MARK)]
    if not found:
        last = next((line for line in reversed(text.splitlines()) if line.strip()), info.message or status)
        raise UserError(
            f"--python {python}: the dependency check could not run on the cluster ({one_line(last, 200)}); "
            "give --python the path of a Python that has evofair's dependencies on every node"
        )
    import json

    report = json.loads(found[-1])
    if report["missing"]:
        raise UserError(
            f"--python {python}: on the cluster, {report['python']} (Python {report['version']}) cannot "
            f"import {', '.join(report['missing'])}, which evofair needs; pass --python /path/to/venv/bin/"
            "python of an environment with evofair's dependencies, or start Ray (`ray start`) from the "
            "project's venv"
        )


# -- command line -----------------------------------------------------------------------------


def _cmd_submit(args) -> int:
    job, out = submit(
        args.recipe,
        address=args.address,
        overrides=args.set or [],
        seed=args.seed,
        out=args.out,
        python=args.python,
        env=args.env or [],
    )
    print(job)
    hint = f" --address {args.address}" if args.address else ""
    print(
        f"evofair: submitted {job}; the job writes {out} on the cluster's head node. "
        f"Follow it with `evofair logs {job}{hint} --follow`",
        file=sys.stderr,
    )
    return 0


def _status_code(info) -> int:
    status = str(getattr(info.status, "value", info.status))
    return 1 if status in ("FAILED", "STOPPED") else 0


def _cmd_status(args) -> int:
    info = wait(args.address, args.job, args.timeout) if args.wait else job_info(args.address, args.job)
    print(describe(info))
    if args.wait and str(getattr(info.status, "value", info.status)) not in TERMINAL:
        print(f"evofair: {args.job} still not finished after {args.timeout:g} s", file=sys.stderr)
        return 1
    return _status_code(info)


def _cmd_logs(args) -> int:
    logs(args.address, args.job, follow=args.follow)
    return 0


def add_job_commands(sub: argparse._SubParsersAction) -> None:
    """Register `submit`, `status` and `logs` on the `evofair` parser."""
    address_help = "Ray dashboard address, e.g. http://HEAD:8265 (default $RAY_API_SERVER_ADDRESS)"
    p = sub.add_parser("submit", help="submit a recipe as a job to a Ray cluster; prints the job id")
    p.add_argument("recipe", help="recipe YAML (validated here before anything is sent)")
    p.add_argument("--address", help=address_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (dotted)")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--out",
        help="run directory on the cluster's head node (absolute; a relative path is "
        "made absolute here). Default out/<name>-<time> under the current directory",
    )
    p.add_argument(
        "--python",
        default="python",
        help="Python on the cluster nodes that has evofair's dependencies (default: `python` on their PATH)",
    )
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment variable for the job")
    p.set_defaults(fn=_cmd_submit)
    s = sub.add_parser("status", help="status of a submitted job (exit 1 if it FAILED or was STOPPED)")
    s.add_argument("job")
    s.add_argument("--address", help=address_help)
    s.add_argument("--wait", action="store_true", help="block until the job finishes")
    s.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    s.set_defaults(fn=_cmd_status)
    lg = sub.add_parser("logs", help="the driver log of a submitted job")
    lg.add_argument("job")
    lg.add_argument("--address", help=address_help)
    lg.add_argument("--follow", action="store_true", help="keep printing until the job finishes")
    lg.set_defaults(fn=_cmd_logs)
