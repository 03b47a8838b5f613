"""The CSV tables written after a run: front.csv, archive.csv and history.csv.

`Result` computes the same front.csv and archive.csv text from the store (`csv_text`,
`individual_rows`), so a run directory's tables can be checked against its index.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.report_constraints import violation
from evofair.analysis.run_reader import archive, sorted_front
from evofair.core import constraints as cons
from evofair.core.individual import Individual
from evofair.core.problem import SPLITS
from evofair.store.run_store import RunStore
from evofair.store.safe_io import atomic_write_text


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    """A table as front.csv and archive.csv hold it (the csv module's dialect, CRLF)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def objective_columns(problem) -> list[tuple[str, str]]:
    return [(name, split) for name in problem.objective_names for split in SPLITS]


def interval_columns(problem, constraints: Sequence[cons.Constraint] = ()) -> list[str]:
    """The metrics whose test intervals front.csv and report.md show: objectives, then constrained ones."""
    return list(dict.fromkeys(problem.objective_names + [c.metric for c in constraints]))


def _fmt(v: float | None) -> Any:
    """A number as the CSVs write it: every digit (repr), or empty when missing or not finite."""
    return "" if v is None or not np.isfinite(v) else repr(float(v))


def individual_rows(
    problem,
    inds: Sequence[Individual],
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """CSV rows; with constraints also `feasible` (on validation, as selected), `cv_val`, `cv_test`;
    with `intervals` (intervals.json's document) `<metric>_test_lo/_hi` of the objectives and
    constrained metrics."""
    cols = objective_columns(problem)
    header = ["id", "generation"] + [f"{n}_{s}" for n, s in cols]
    rows = [[i.id, i.generation] + [_fmt(i.metrics.get(s, {}).get(n)) for n, s in cols] for i in inds]
    if constraints:
        cv_val, cv_test = violation(constraints, inds, "val"), violation(constraints, inds, "test")
        header += ["feasible", "cv_val", "cv_test"]
        for k, row in enumerate(rows):
            row += ["true" if cv_val[k] <= 0 else "false", repr(float(cv_val[k])), repr(float(cv_test[k]))]
    if intervals is not None:
        names = interval_columns(problem, constraints)
        header += [f"{n}_test_{end}" for n in names for end in ("lo", "hi")]
        for ind, row in zip(inds, rows):
            mine = intervals["models"].get(ind.id, {})
            row += [_fmt(mine[n][k]) if n in mine else "" for n in names for k in (0, 1)]
    return header, rows


def write_tables(
    store: RunStore,
    problem,
    out: Path,
    everyone: Sequence[Individual],
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write front.csv, archive.csv and history.csv; return what the report goes on to use
    (`front`, `archive`, `generations`)."""
    front = sorted_front(store, problem, constraints)
    header, rows = individual_rows(problem, front, constraints, intervals)
    _write_csv(out / "front.csv", header, rows)
    arch = archive(store, problem, everyone, constraints)
    header, rows = individual_rows(problem, arch, constraints)
    _write_csv(out / "archive.csv", header, rows)
    gens = store.generation_stats()
    _write_csv(
        out / "history.csv",
        ["generation", "hv_val", "n_front", "evaluations", "seconds"],
        [[g["generation"], _fmt(g["hv_val"]), g["n_front"], g["evaluations"], _fmt(g["seconds"])] for g in gens],
    )
    return {"front": front, "archive": arch, "generations": gens}
