"""Everything `evofair verify` checks, and what `--resume` requires before continuing a run: the
store's own checks (`RunStore.verify`: SQLite integrity, per-generation checksums, the seal, weights,
dangling rows) and front.csv against the front recomputed from the store (here, where fronts are
computed: the store does not know them)."""

from __future__ import annotations

import csv
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from evofair.analysis.run_reader import RunReader, objective_direction
from evofair.analysis.splits_file import SPLITS_META, read_splits
from evofair.core.problem import Objective
from evofair.errors import UserError
from evofair.store.run_store import DB_NAME, RunStore
from evofair.store.seal import OBJECTIVES_META, SEAL_META


@dataclass
class RunCheck:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    individuals: int = 0


def check_run(root: str | Path, *, hash_weights: bool = True) -> RunCheck:
    """The run directory's problems and notes (`hash_weights=False`: weights files must exist, their
    bytes are not re-hashed: what `--resume` asks, so a large run resumes without reading every file)."""
    root = Path(root)
    result = RunCheck()
    store = RunStore(root, readonly=True)
    try:
        result.problems = store.verify(hash_weights=hash_weights)
        result.notes = store.notes
        result.individuals = len(store.individuals()) if hash_weights and not result.problems else 0
        seal = store.get_meta(SEAL_META)
        splits = store.get_meta(SPLITS_META)
        last = store.last_generation()
        if not result.problems:
            result.problems = population_problems(store)
    finally:
        store.close()
    if isinstance(seal, dict) and last is not None:
        result.problems += _front_problems(root, seal, last["generation"], result.notes)
    if isinstance(splits, dict):
        result.problems += _splits_problems(root, splits)
    return result


def _splits_problems(root: Path, recorded: dict) -> list[str]:
    """splits.json against the sha256 the index recorded (the rows a card's numbers were measured on)."""
    try:
        read_splits(root, recorded)
    except UserError as exc:
        return [str(exc)]
    return []


def refuse_damaged(root: str | os.PathLike, command: str) -> None:
    """Refuse, in one line, to read on from a run `verify` would not accept (weights checked for
    presence, not re-hashed): a report, an export or a resumed run of an edited or damaged run
    would present its damage as a result."""
    root = Path(root)
    problems = check_run(root, hash_weights=False).problems
    if not problems:
        return
    first = problems[0]
    in_files = first.startswith(str(root)) and not first.startswith(str(root / DB_NAME))
    what = "run directory damaged or edited" if in_files else "run database damaged"
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    raise UserError(f"{command}{root}: {what}: {first}{more}; `evofair verify {root}` lists what is wrong")


def population_problems(store: RunStore) -> list[str]:
    """The last population as `--resume` and the front read it back: every member's row and its
    validation objectives, and as many generations as the seal counts. Checksums catch deleted rows
    in sealed runs, but an older run has none, and a missing row would otherwise surface as a
    KeyError deep inside the resumed backend (or as a silently smaller front)."""
    seal = store.get_meta(SEAL_META)
    last = store.last_generation()
    count = 0 if last is None else last["generation"] + 1  # numbered from 0 (verify counts the rows)
    if isinstance(seal, dict) and isinstance(seal.get("generations"), int) and seal["generations"] != count:
        return [f"generations: the last is number {count - 1}, the seal counts {seal['generations']} (deleted?)"]
    if last is None:
        return []
    where = f"generation {last['generation']}"
    try:
        names = [str(n) for n, _ in store.get_meta(OBJECTIVES_META) or []]
        inds = store.individuals(list(last["population"]))
    except KeyError as exc:
        return [f"{where}: population member {exc.args[0]} has no row in the index"]
    except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
        return [f"{where}: population unreadable ({exc})"]
    for ind in inds:
        val = ind.metrics.get("val") or {}
        missing = [n for n in names if n not in val] if names else ([] if val else ["val"])
        if missing:
            return [f"{where}: {ind.id} has no validation {', '.join(missing)} (rows deleted?)"]
    return []


def _front_problems(root: Path, seal: dict, last: int, notes: list[str]) -> list[str]:
    """front.csv's ids against the sealed run's front, when front.csv shows the last generation."""
    path = root / "front.csv"
    if not path.is_file():
        return []
    written = seal.get("front_generation")
    if written != last:
        notes.append(f"{path}: written for generation {written}, the store has {last}: not compared (interrupted?)")
        return []
    try:
        with path.open(newline="") as f:
            ids = sorted(str(row.get("id")) for row in csv.DictReader(f))
        objectives = [Objective(str(n), objective_direction(d)) for n, d in seal.get("objectives") or []]
        reader = RunReader(root, problem=SimpleNamespace(objectives=objectives))
        expected = sorted(ind.id for ind in reader.read_front())
    except (OSError, UnicodeDecodeError, csv.Error, UserError, sqlite3.DatabaseError, KeyError, ValueError) as exc:
        return [f"{path}: cannot be compared with the store's front ({exc.__class__.__name__}: {exc})"]
    if ids != expected:
        extra, missing = sorted(set(ids) - set(expected)), sorted(set(expected) - set(ids))
        return [
            f"{path}: disagrees with the front recomputed from the store (not on it: {extra[:3]}; "
            f"missing: {missing[:3]}; edited?)"
        ]
    return []
