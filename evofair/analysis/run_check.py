"""Everything `evofair verify` checks, and what `--resume` requires before continuing a run: the
store's own checks (`RunStore.verify`: SQLite integrity, per-generation checksums, the seal, weights,
dangling rows) and front.csv against the front recomputed from the store (here, where fronts are
computed: the store does not know them)."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from evofair.analysis.run_reader import RunReader, objective_direction
from evofair.core.problem import Objective
from evofair.errors import UserError
from evofair.store.run_store import RunStore
from evofair.store.seal import SEAL_META


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
        last = store.last_generation()
    finally:
        store.close()
    if isinstance(seal, dict) and last is not None:
        result.problems += _front_problems(root, seal, last["generation"], result.notes)
    return result


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
