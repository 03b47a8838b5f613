"""What `evofair verify` checks beyond SQLite's own integrity check: every committed generation
against its commit-time checksum, and every reference between rows and files."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from evofair.store.columns import batch_members, has_batches
from evofair.store.digests import generation_digest
from evofair.store.weights_files import DIGEST, weights_file


def dangling_references(
    db: sqlite3.Connection, root: Path, generations: list[dict[str, Any]], *, hash_weights: bool = True
) -> list[str]:
    """Weights the index names that are missing or corrupted (`hash_weights=False`: missing only),
    populations naming unknown individuals, lineage naming unknown parents."""
    problems = []
    hashes = {r[0] for r in db.execute("SELECT DISTINCT weights_hash FROM individuals WHERE weights_hash IS NOT NULL")}
    for digest in sorted(hashes, key=str):
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            problems.append(f"index: {digest!r} is not a sha256 weights digest")
            continue
        path = weights_file(root, digest)
        if not path.exists():
            problems.append(f"{path}: missing (referenced by the index)")
            continue
        if not path.is_file():  # e.g. replaced by a directory: no bytes to hash, nothing to load
            problems.append(f"{path}: not a regular file (referenced by the index as weights)")
            continue
        if not hash_weights:
            continue
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            problems.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        if actual != digest:
            problems.append(f"{path}: content hash {actual[:12]}… does not match its name")
    known = {r[0] for r in db.execute("SELECT id FROM individuals")}
    if has_batches(db):
        known |= set(batch_members(db))
    for gen in generations:
        missing = [i for i in gen["population"] if i not in known]
        if missing:
            problems.append(f"generation {gen['generation']}: population names unknown individuals {missing[:3]}")
    for (parent,) in db.execute("SELECT DISTINCT parent FROM lineage"):
        if parent not in known:
            problems.append(f"lineage: parent {parent} is not in the index")
    return problems


def checksum_mismatches(db: sqlite3.Connection, notes: list[str]) -> list[str]:
    """Each committed generation's rows against the checksum stored when it was committed:
    SQLite's integrity check sees broken pages, not a flipped bit inside a stored value."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checksums'").fetchone():
        notes.append("no per-generation checksums (run written by an older evofair): stored values not checked")
        return []
    stored = dict(db.execute("SELECT generation, digest FROM checksums").fetchall())
    gens = [r[0] for r in db.execute("SELECT generation FROM generations ORDER BY generation")]
    problems = [
        f"generation {g}: its rows no longer match the checksum stored at commit (database damaged or edited)"
        for g in gens
        if g in stored and stored[g] != generation_digest(db, g)
    ]
    problems += [
        f"checksums: generation {g} has a checksum but no committed row (database damaged or edited)"
        for g in sorted(set(stored) - set(gens))
    ]
    unchecked = [g for g in gens if g not in stored]
    if unchecked:
        notes.append(f"{len(unchecked)} generation(s) without a checksum (committed by an older evofair): not checked")
    return problems
