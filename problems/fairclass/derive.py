"""Columns derived from the table before anything else reads it (`data.derive:` in a recipe).

Sensitive attributes rarely arrive ready: sex hides in a coded personal-status column, age is a
number where the groups are bands. Three declarative steps cover those cases without pandas:

    derive:
      sex: {from: personal_status, map: {A91: male, A92: female, A93: male, A94: male}}
      age_band: {from: age, cut: [25, 40, 60]}          # <25, 25-40, 40-60, >=60
      group: {combine: [sex, age_band], sep: "/"}        # "male/25-40"

Steps run in the order written, so a later one may use an earlier one's column. A derived name
may not replace a column of the table (that would silently change what the file says); a code
without an entry is an error unless `default:` names its value. Missing cells stay missing, so
the problem's missing-value check (and `drop_missing`) treats them like the table's own.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import AliasChoices, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from evofair.core.registry import Args
from evofair.errors import UserError
from evofair.problems.fairclass.table import as_labels, require_column

FIELD = "data.derive"


class DerivedColumn(Args):
    """One derived column: exactly one of `map` (with `from`), `cut` (with `from`) or `combine`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True, coerce_numbers_to_str=True
    )

    from_: str | None = Field(
        None,
        validation_alias=AliasChoices("from", "from_"),
        serialization_alias="from",
        description="the source column (map, cut)",
    )
    map: dict[str, str] | None = Field(None, description="code → value; codes compared as text (1 matches 1.0)")
    default: str | None = Field(None, description="value of codes `map` does not list (default: an error)")
    cut: list[float] | None = Field(
        None, min_length=1, description="increasing band edges; a band includes its lower edge"
    )
    labels: list[str] | None = Field(None, description="band names, one more than the edges (default <a, a-b, >=b)")
    combine: list[str] | None = Field(None, min_length=2, description="columns joined into one group label")
    sep: str = Field("/", description="separator of `combine`")

    @model_validator(mode="after")
    def _one_step(self):
        steps = [k for k in ("map", "cut", "combine") if getattr(self, k) is not None]
        if len(steps) != 1:
            raise PydanticCustomError("derive", "expected exactly one of map, cut or combine")
        if steps[0] != "combine" and not self.from_:
            raise PydanticCustomError("derive", f"{steps[0]}: name the source column with from: COLUMN")
        if steps[0] == "combine" and self.from_:
            raise PydanticCustomError("derive", "combine: lists its columns itself; remove from:")
        if self.cut is not None:
            if any(b <= a for a, b in zip(self.cut[:-1], self.cut[1:])):
                raise PydanticCustomError("derive", "cut: edges must be strictly increasing")
            if self.labels is not None and len(self.labels) != len(self.cut) + 1:
                raise PydanticCustomError(
                    "derive",
                    f"labels: {len(self.cut)} edges make {len(self.cut) + 1} bands, got {len(self.labels)} labels",
                )
        elif self.labels is not None:
            raise PydanticCustomError("derive", "labels: only with cut")
        if self.default is not None and self.map is None:
            raise PydanticCustomError("derive", "default: only with map")
        return self


def derive_columns(frame: pd.DataFrame, steps: dict[str, DerivedColumn]) -> pd.DataFrame:
    """The table with each derived column appended, in the order the steps are written."""
    if not steps:
        return frame
    out = frame.copy()
    for name, step in steps.items():
        where = f"{FIELD}.{name}"
        if name in frame.columns:
            raise UserError(f"problem.args.{where}: the table already has a column {name!r}; choose another name")
        for source in [step.from_] if step.from_ else list(step.combine or []):
            require_column(out, source, f"{where}.{'from' if step.from_ else 'combine'}")
        if step.map is not None:
            out[name] = _mapped(out[step.from_], step, where)
        elif step.cut is not None:
            out[name] = _banded(out[step.from_], step, where)
        else:
            out[name] = _combined(out, list(step.combine or []), step.sep)
    return out


def _mapped(column: pd.Series, step: DerivedColumn, where: str) -> pd.Series:
    present = column.notna().to_numpy()
    codes = as_labels(column)
    table = dict(step.map or {})
    unknown = sorted({c for c, p in zip(codes, present) if p and c not in table})
    if unknown and step.default is None:
        raise UserError(
            f"problem.args.{where}.map: value {unknown[0]!r} of column {column.name!r} has no entry "
            f"({len(unknown)} unmapped value(s); add them or set default:)"
        )
    values = [table.get(c, step.default) if p else np.nan for c, p in zip(codes, present)]
    return pd.Series(values, index=column.index, dtype=object)


def _banded(column: pd.Series, step: DerivedColumn, where: str) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if bad.any():
        raise UserError(
            f"problem.args.{where}.cut: column {column.name!r} is not numeric (value {column[bad].iloc[0]!r})"
        )
    edges = list(step.cut or [])
    labels = list(step.labels) if step.labels else band_labels(edges)
    bands = pd.cut(numbers, [-math.inf, *edges, math.inf], right=False, labels=labels)
    return bands.astype(object).where(numbers.notna(), np.nan)


def band_labels(edges: list[float]) -> list[str]:
    """<a, a-b, ..., >=z: the default names of the bands (edges written as `%g`)."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}", *[f"{a}-{b}" for a, b in zip(e[:-1], e[1:])], f">={e[-1]}"]


def _combined(frame: pd.DataFrame, columns: list[str], sep: str) -> pd.Series:
    present = frame[columns].notna().all(axis=1).to_numpy()
    parts = [as_labels(frame[c]) for c in columns]
    joined = [sep.join(values) if p else np.nan for p, *values in zip(present, *parts)]
    return pd.Series(joined, index=frame.index, dtype=object)
