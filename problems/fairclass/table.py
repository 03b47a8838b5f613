"""Reading the user's table and checking its columns: every failure is one line naming the file or field.

Formats: CSV (also gzip-compressed, `.csv.gz`), Parquet, JSON Lines, and a Hugging Face `datasets`
folder written by `save_to_disk` (all splits of a DatasetDict are concatenated, with their split
name in a `split` column unless the table already has one). pandas and `datasets` do the reading;
this module only turns their many exceptions into a message a user can act on.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from evofair.errors import UserError

FORMATS = ("csv", "parquet", "jsonl", "json", "datasets")
SHIPPED_PREFIX = "data/"


def infer_format(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        return "datasets"
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    raise UserError(
        f"problem.args.data.path: {path}: cannot tell the format from the name "
        f"(expected .csv, .csv.gz, .parquet, .jsonl, .json or a datasets folder; or set data.format)"
    )


def resolve_data_path(path: str, base_dir: str | None, data_root: str | None = None) -> Path:
    """Absolute paths as given; relative ones against the recipe's folder (else the working
    directory). A relative `data/...` path that is not there names the data shipped with evofair
    (the repository's data/ in a clone, the installed package otherwise), or under `data_root`."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    here = Path(base_dir) / p if base_dir else p
    if here.exists() or not path.startswith(SHIPPED_PREFIX):
        return here
    rest = path[len(SHIPPED_PREFIX) :]
    if data_root:
        candidate = Path(data_root) / rest
        if candidate.exists():
            return candidate
    from evofair.problems import shipped_data

    shipped = shipped_data(rest)
    return shipped if shipped.exists() else here


def read_table(path: Path, fmt: str | None = None, na_values: Sequence[str] = ()) -> pd.DataFrame:
    """The table at `path` as a DataFrame (strings stay strings; missing cells are NaN)."""
    if not path.exists():
        raise UserError(f"problem.args.data.path: {path}: file not found")
    fmt = fmt or infer_format(path)
    if fmt != "datasets" and path.is_dir():
        raise UserError(f"problem.args.data.path: {path}: a folder, expected a {fmt} file")
    try:
        if fmt == "csv":
            sep = "\t" if ".tsv" in path.name.lower() else ","
            frame = pd.read_csv(
                path, sep=sep, na_values=list(na_values), keep_default_na=True, skipinitialspace=True, low_memory=False
            )
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
            if not all(isinstance(c, str) for c in frame.columns):
                raise UserError(f"problem.args.data.path: {path}: not a table (expected one JSON object per line)")
        elif fmt == "json":
            frame = _read_json_records(path)
        else:
            frame = _read_datasets_folder(path)
    except UserError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for "this is not that format"
        detail = " ".join(str(exc).split())[:120]
        raise UserError(
            f"problem.args.data.path: {path}: not a readable {fmt} table ({exc.__class__.__name__}: {detail})"
        ) from None
    return check_frame(frame, str(path))


def _read_json_records(path: Path) -> pd.DataFrame:
    """A .json file holding an array of row objects (anything else is not a table)."""
    import json

    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"problem.args.data.path: {path}: not a table (expected a JSON array of row objects)")
    return pd.DataFrame.from_records(rows)


def _read_datasets_folder(path: Path) -> pd.DataFrame:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        parts = []
        for split, ds in loaded.items():
            part = ds.to_pandas()
            if "split" not in part.columns:
                part.insert(0, "split", split)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
    return loaded.to_pandas()


def check_frame(frame, where: str) -> pd.DataFrame:
    """A table has named columns and at least one row."""
    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"{where}: expected a table (pandas DataFrame), got {type(frame).__name__}")
    if frame.shape[1] < 2 or len(frame) == 0:
        raise UserError(
            f"{where}: not a table of rows (read {len(frame)} rows x {frame.shape[1]} columns; "
            "expected a header row and at least a target and a sensitive column)"
        )
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise UserError(f"{where}: column {duplicated[0]!r} appears more than once")
    return frame


def require_column(frame: pd.DataFrame, column: str, field: str) -> None:
    """A missing column is named with the closest existing one."""
    if column in frame.columns:
        return
    close = difflib.get_close_matches(column, list(frame.columns), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (columns: {', '.join(list(frame.columns)[:12])})"
    raise UserError(f"problem.args.{field}: no column {column!r} in the table{hint}")


def as_labels(column: pd.Series) -> np.ndarray:
    """Values as strings, with integral floats written as integers ("1", not "1.0": a CSV column of
    0/1 with a gap is read as floats), so `positive: 1` matches."""
    values = column.to_numpy()
    if pd.api.types.is_float_dtype(column.dtype):
        finite = column.dropna()
        if len(finite) and np.all(np.mod(finite.to_numpy(), 1) == 0):
            return np.array([str(int(v)) for v in values], dtype=object)
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.array([str(v).lower() for v in values], dtype=object)
    return np.array([str(v) for v in values], dtype=object)


def frame_fingerprint(frame: pd.DataFrame) -> dict[str, object]:
    """Shape and sha256 of the frame's CSV bytes (index left out): what identifies in-memory data."""
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return {"rows": int(frame.shape[0]), "columns": int(frame.shape[1]), "csv_sha256": digest}


def file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


YAML_BOOLEANS = {"true": ("true", "yes", "on", "y"), "false": ("false", "no", "off", "n")}


def resolve_positive(positive: str | None, distinct: list[str]) -> str | None:
    """The column's value that `positive` names: itself, or for a YAML boolean the one value
    of the column spelled as that boolean (`positive: yes` in YAML is `true`)."""
    if positive is None or positive in distinct or positive not in YAML_BOOLEANS:
        return positive
    spelled = [v for v in distinct if v.lower() in YAML_BOOLEANS[positive]]
    return spelled[0] if len(spelled) == 1 else positive


def class_order(values: np.ndarray, positive: str | None) -> tuple[str, ...]:
    """Binary with a positive label: (the other, positive); otherwise the values sorted (numerically
    when all are numbers, so label ids 0, 1, 2... keep their order)."""
    distinct = sorted(set(values.tolist()))
    if positive is not None and len(distinct) == 2:
        return (next(v for v in distinct if v != positive), positive)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(distinct)
