"""`splits.json`: which rows of the user's data each split holds, kept with the run and its exports.

A problem over a user's table writes it after the run (`write_splits`), so that the model card's
validation and test numbers can be reproduced from the data file alone, without rebuilding the
split. Rows are named by their 0-based position in the table as read (header excluded); `about`
says so in words, with whatever else identifies the data (its path and sha256).

Its sha256 is recorded in the run's index (meta key ``splits``), written by the run's one writer;
`read_splits` refuses a file that no longer hashes to it, as weights files are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evofair.errors import UserError

SPLITS_FILE = "splits.json"
SPLITS_META = "splits"


def splits_bytes(rows: Mapping[str, Sequence[int]], about: Mapping[str, Any]) -> bytes:
    """The file's bytes: {"about": {...}, "rows": {split: [row, ...]}} (one line per split)."""
    body = {"about": dict(about), "rows": {s: [int(r) for r in idx] for s, idx in rows.items()}}
    return json.dumps(body, indent=1, default=str).encode()


def write_splits(store, out: Path, rows: Mapping[str, Sequence[int]], about: Mapping[str, Any]) -> Path:
    """Write `out/splits.json` and record its sha256 in the run's index (`store` is the run's writer)."""
    data = splits_bytes(rows, about)
    path = Path(out) / SPLITS_FILE
    tmp = path.with_name(f".{SPLITS_FILE}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    store.set_meta(SPLITS_META, {"file": SPLITS_FILE, "sha256": hashlib.sha256(data).hexdigest()})
    return path


def read_splits(root: Path, recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parsed file of the run in `root`, checked against the sha256 the index recorded."""
    path = Path(root) / SPLITS_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (this run's problem records no splits, or the run has not finished)")
    data = path.read_bytes()
    expected = (recorded or {}).get("sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise UserError(f"{path}: does not match the sha256 the run recorded (edited or damaged)")
    return json.loads(data)
