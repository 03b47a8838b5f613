"""What `--resume` may change in a run's recipe, and what it must refuse.

A run's generations were made by one recipe; continuing it under another would put individuals
from two experiments on one front (a changed validation set, a relabelled seed, a different
operator). So the rule is default-deny: only keys that cannot change any stored result may
differ from the run's `config.yaml` — more generations, where and how the work is computed
(`executor.*`), where data and modules are found (`data_root`, `paths`). Any other difference is
refused in one line naming the keys, before a file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evofair.errors import UserError
from evofair.store.run_store import DB_NAME

# dotted keys (or prefixes ending in ".") that resume may change: none alters a stored result
RESUME_MAY_CHANGE = (
    "algorithm.generations",
    "executor.",
    "data_root",
    "base_dir",
    "paths",
    "intervals",
    "callbacks",
    "sized_for",  # what the recipe was sized for: a start-up note, never a result
)
_MISSING = object()
# a staged run's folder (evofair/lifecycle/stages.py): its index, and the recipe --resume continues under
STAGES_FILE = "stages.json"
STAGED_RECIPE = "recipe.yaml"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two resolved recipes (as `model_dump(mode="json")`)."""
    a, b = _flatten(old), _flatten(new)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))
    return changed


def _allowed(key: str, also: tuple[str, ...] = ()) -> bool:
    return any(
        key == p or (p.endswith(".") and key.startswith(p)) or key.startswith(p + ".")
        for p in (*RESUME_MAY_CHANGE, *also)
    )


def check_resume(
    out: Path, recipe, *, config: str = "config.yaml", may_change: tuple[str, ...] = ()
) -> dict[str, list[Any]]:
    """Compare `recipe` with the run's config.yaml (a staged run's recipe.yaml: `config`): refuse
    result-changing differences, those in `may_change` aside; return the allowed ones as
    {key: [old, new]} (recorded as a `resume_recipe_changed` event)."""
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    path = out / config
    if not path.exists():
        raise UserError(
            f"--resume {out}: no config.yaml (the run was stopped before it started; nothing "
            f"was computed: delete the folder and run again)"
        )
    raw = read_recipe_file(path)
    try:
        old = Recipe.model_validate(raw).model_dump(mode="json", by_alias=True)
    except Exception as exc:  # pydantic's ValidationError: an edited config.yaml
        raise UserError(f"{path}: not a valid resolved recipe ({exc.__class__.__name__}); was it edited?") from None
    new = recipe.model_dump(mode="json", by_alias=True)
    old_flat, new_flat = _flatten(old), _flatten(new)
    changed = recipe_changes(old, new)
    refused = [k for k in changed if not _allowed(k, may_change)]
    if "problem.name" in refused:  # the commonest contradiction, said plainly: another recipe altogether
        raise UserError(
            f"--resume {out}: problem.name {new_flat.get('problem.name')!r} differs from the run's problem "
            f"{old_flat.get('problem.name')!r}; a run continues only under its own recipe (start a new "
            "run with --out, or give --resume DIR without a recipe)"
        )
    if refused:
        shown = ", ".join(refused[:8]) + (f" (+{len(refused) - 8} more)" if len(refused) > 8 else "")
        raise UserError(
            f"--resume {out}: the recipe differs from the run's {config} in {shown}; these "
            "change results, so the run cannot continue under them (start a new run with "
            "--out; resume may change only algorithm.generations, executor.*, data_root, paths, intervals.*, "
            f"callbacks{''.join(', ' + k for k in may_change)})"
        )
    return {k: [old_flat.get(k), new_flat.get(k)] for k in changed}


# what a run folder holds after a crash in the moment between taking the lock and writing config.yaml
_LEFTOVERS = {".lock", DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", "run.log"}


def check_resumable(out: Path) -> None:
    """Refuse `--resume` on a folder that holds no run to continue, saying why in one line."""
    db = out / DB_NAME
    if (out / STAGES_FILE).is_file():  # a staged run continues under the recipe that asked for stages
        raise UserError(
            f"--resume {out}: a staged run's folder (its stages are run folders inside it); resume it "
            f"under its own {STAGED_RECIPE} (`evofair run --resume {out}`), or one stage alone"
        )
    if never_started(out):
        raise UserError(
            f"--resume {out}: the run stopped before it started (no config.yaml, no generation "
            f"committed): nothing to resume; `evofair run RECIPE --out {out}` starts it there"
        )
    if not db.exists():
        raise UserError(f"--resume {out}: not an evofair run directory (no {DB_NAME})")
    if db.stat().st_size == 0 and not Path(f"{db}-wal").exists():  # SQLite would start over silently
        raise UserError(f"{out}: run database damaged ({DB_NAME} is empty: 0 bytes); it cannot be resumed")


def never_started(out: Path) -> bool:
    """True for a folder that holds only what a run leaves when killed (or out of disk) before
    config.yaml was written: a lock and a database with no committed generation. Such a folder
    holds nothing of value, so `run --out` may reuse it."""
    import sqlite3

    try:
        names = {p.name for p in out.iterdir()}
    except OSError:
        return False
    names = {n for n in names if not (n.startswith(".config.yaml.tmp-"))}
    if not names or not names <= _LEFTOVERS or "config.yaml" in names:
        return False
    db = out / DB_NAME
    if not db.exists() or db.stat().st_size == 0:
        return True
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return "generations" not in tables or con.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False
