"""A run named after its data: `evofair run adult --set problem.args.data.path=loans.csv` is a run on
loans.csv, so its folder and report title say `loans`, not `adult`.

The rule is about the recipe's words only: when a `--set` gives a `...data.path` and no `--set`
names the run, the file's stem (compression and format suffixes dropped) becomes the name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

DATA_PATH_KEY = "data.path"
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")


def data_stem(path: str) -> str:
    """`data/loans.csv.gz` → `loans`; a folder (`datasets` save_to_disk) → its name."""
    name = PurePath(path.rstrip("/")).name
    for suffix in COMPRESSED:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem = PurePath(name).stem if "." in name.lstrip(".") else name
    return stem or name


def name_from_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """`raw` with `name` set to the overridden data file's stem (unchanged if none, or a `--set name=`)."""
    keys = {item.split("=", 1)[0].strip(): item.split("=", 1)[1] for item in overrides if "=" in item}
    if "name" in keys:
        return raw
    paths = [value.strip().strip("'\"") for key, value in keys.items() if key.endswith(DATA_PATH_KEY)]
    stem = data_stem(paths[-1]) if paths and paths[-1] else ""
    if not stem or "/" in stem:
        return raw
    return {**raw, "name": stem}
