"""Staged runs: one recipe that asks for several ordinary runs in sequence, each seeded by the one before.

Why: a problem family may need a schedule of runs — the `merge` family's hybrid schedule searches
merge recipes, fine-tunes the front merges that add most hypervolume into new anchors and searches
again — and a user should get it from a recipe key, the CLI and `--resume` like any run. The core
must not know any family, so the problem's class says whether its arguments ask for stages (the
`Staged` protocol: a `stages` classmethod, asked through the plugin registry), and this module only
lays the stages out and resumes them:

- OUT/<label>0, OUT/<label>1, …: each an ordinary run folder (`evofair verify`, `report`, `export`,
  `--resume` work on it). Its config.yaml states exactly what that stage ran; the key that asked for
  stages is not in it, so a stage never starts stages of its own.
- OUT/recipe.yaml: the recipe as given (with that key), which `--resume OUT` continues under.
- OUT/stages.json: the stages, those finished, and the final one with its front (`final`, `front`).

Stages differ in their `problem:` section only (the schedule derives it from the stage before);
every other key is the recipe's own. `--resume OUT` reuses each finished stage whose folder verifies
(its config.yaml is sealed in its store, so it states what ran) and continues the first unfinished
one, resuming it where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from evofair.errors import UserError, require_new_dir
from evofair.lifecycle.recipe_file import read_recipe_file
from evofair.lifecycle.resume import STAGED_RECIPE, STAGES_FILE, check_resume
from evofair.store.safe_io import atomic_write_text

log = logging.getLogger("evofair.run")


Tree = dict[str, Any]  # a recipe as `Recipe.model_dump(mode="json", by_alias=True)` gives it


@dataclass(frozen=True)
class Stages:
    """What a problem's `stages` hook returns when its arguments ask for several runs.

    `first`: stage 0's recipe (the recipe without the key that asked for stages); `next_problem`:
    the `problem:` section of stage k+1, from stage k's recipe and its `Result`; `may_change`: dotted
    recipe keys `--resume` may change besides the usual ones (e.g. more rounds)."""

    count: int
    first: Tree
    next_problem: Callable[[Tree, Any], dict[str, Any]]
    label: str = "stage"
    what: str = "staged run"
    may_change: tuple[str, ...] = ()

    def folder(self, out: Path, k: int) -> Path:
        return out / f"{self.label}{k}"


@runtime_checkable
class Staged(Protocol):
    """A problem whose arguments may ask for a schedule of runs: `stages(params, recipe)` gets its
    validated arguments and the resolved recipe, and returns `Stages`, or None for one ordinary run."""

    @classmethod
    def stages(cls, params: Any, recipe: Tree) -> Stages | None: ...


def stages_of(recipe, problem=None) -> Stages | None:
    """The stages a recipe's problem asks for, or None. A problem object passed from Python that asks
    for stages is refused: each stage builds its problem from its own recipe, which the object is not."""
    from evofair.core.plugins import registry

    if problem is not None:
        hook, params = getattr(type(problem), "stages", None), getattr(problem, "params", None)
    else:
        spec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
        hook = getattr(spec.fn, "stages", None)
        params = spec.parse_args(recipe.problem.args, "problem.args") if callable(hook) else None
    plan = hook(params, recipe.model_dump(mode="json", by_alias=True)) if callable(hook) else None
    if not isinstance(plan, Stages):
        return None
    if problem is not None:
        raise UserError(
            f"problem: {type(problem).__name__}'s arguments ask for a {plan.what}, whose stages build their "
            "problem from the recipe: run the recipe naming the problem, without problem="
        )
    return plan


def is_staged(folder: str | Path) -> bool:
    try:
        return (Path(folder) / STAGES_FILE).is_file()
    except OSError:  # e.g. a name longer than the file system takes: refused later, in one line
        return False


def recipe_file_of(folder: str | Path) -> Path:
    """The recipe a run folder continues under: config.yaml, or a staged run's recipe.yaml."""
    folder = Path(folder)
    return folder / (STAGED_RECIPE if is_staged(folder) else "config.yaml")


def run_to_read(folder: str | Path) -> Path:
    """The run a command reading `folder` reads: the folder, or a staged run's final stage (once
    every stage finished: a front of an earlier stage is not the schedule's result)."""
    folder = Path(folder)
    if not is_staged(folder):
        return folder
    try:
        final = json.loads((folder / STAGES_FILE).read_text()).get("final")
    except (OSError, ValueError, AttributeError):
        final = None
    if _plain_name(final):
        return folder / final
    raise UserError(
        f"{folder}: a staged run whose stages have not all finished ({STAGES_FILE}); "
        f"`evofair run --resume {folder}` continues it, or read one finished stage folder inside it"
    )


def _plain_name(name: Any) -> bool:
    """A folder name stages.json may give: one path component, so reading it never leaves OUT."""
    return isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..")


def stage_folders(folder: str | Path) -> list[Path]:
    """A staged run's finished stage folders, in order ([] for an ordinary run folder), for the
    commands that check every stage (`evofair verify`)."""
    if not is_staged(folder):
        return []
    try:
        finished = json.loads((Path(folder) / STAGES_FILE).read_text())["finished"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{folder}: {STAGES_FILE} unreadable; was it edited?") from None
    names = [n for n in finished if _plain_name(n)]
    return [Path(folder) / n for n in names]


def run_stages(
    recipe,
    out: Path,
    plan: Stages,
    *,
    resume: bool,
    write_recipe: Callable[[Path], None],
    run_one: Callable[[Tree, Path, bool], Any],
    reuse: Callable[[Tree, Path], Any],
):
    """Run (or continue) every stage in `out`; returns the final stage's `Result`.

    `write_recipe(path)` writes the resolved recipe; `run_one(tree, folder, resume)` runs one stage;
    `reuse(tree, folder)` checks a finished stage's folder against its recipe and reads it."""
    index = _open(out, recipe, plan, resume, write_recipe)
    tree: Tree = copy.deepcopy(plan.first)
    result = None
    for k in range(plan.count):
        folder = plan.folder(out, k)
        if folder.name in index["finished"]:
            if k > 0:  # the problem this stage ran, as its sealed config.yaml states it
                tree = {**tree, "problem": read_recipe_file(folder / "config.yaml")["problem"]}
            result = reuse(tree, folder)
        else:
            log.info("%s: %s (%d of %d) -> %s", plan.what, folder.name, k + 1, plan.count, folder)
            result = run_one(tree, folder, (folder / "config.yaml").exists())
            index["finished"].append(folder.name)
            _write_index(out, index)
        if k + 1 < plan.count:
            tree = {**tree, "problem": plan.next_problem(tree, result)}
    index.update(final=plan.folder(out, plan.count - 1).name, front=f"{plan.label}{plan.count - 1}/front.csv")
    _write_index(out, index)
    return result


def _open(out: Path, recipe, plan: Stages, resume: bool, write_recipe: Callable[[Path], None]) -> dict[str, Any]:
    """The index of a new staged run, or of the one `--resume` continues (its recipe checked first)."""
    stages = [plan.folder(out, k).name for k in range(plan.count)]
    if resume:
        if not is_staged(out):
            raise UserError(
                f"--resume {out}: not a staged run's folder (no {STAGES_FILE}), but the recipe asks for a "
                f"{plan.what}: resume it with the recipe it ran, or start the {plan.what} with --out"
            )
        check_resume(out, recipe, config=STAGED_RECIPE, may_change=plan.may_change)
        try:
            done = set(json.loads((out / STAGES_FILE).read_text())["finished"])
            finished = stages[: next((k for k, s in enumerate(stages) if s not in done), len(stages))]  # in order
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"--resume {out}: {STAGES_FILE} unreadable ({type(exc).__name__}); was it edited?"
            ) from None
    else:
        require_new_dir(out, "--out", "choose a new directory, or --resume it")
        out.mkdir(parents=True, exist_ok=True)
        finished = []
    write_recipe(out / STAGED_RECIPE)
    index = {"schedule": plan.what, "stages": stages, "finished": finished, "final": None, "front": None}
    _write_index(out, index)
    return index


def _write_index(out: Path, index: Mapping[str, Any]) -> None:
    atomic_write_text(out / STAGES_FILE, json.dumps(index, indent=2) + "\n", within=out)
