"""Tabular features with sklearn, fitted on the training split only.

numeric → median imputation + StandardScaler; anything else → most-frequent imputation +
OneHotEncoder(handle_unknown="ignore"), so a category first seen at test time is all zeros
rather than an error. Booleans count as categorical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from evofair.errors import UserError


def split_kinds(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """(numeric columns, categorical columns), in table order."""
    numeric, categorical = [], []
    for c in columns:
        dtype = frame[c].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            numeric.append(c)
        else:
            categorical.append(c)
    return numeric, categorical


def make_transformer(numeric: Sequence[str], categorical: Sequence[str]) -> ColumnTransformer:
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(numeric)))
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", sparse_output=False)
                ),
                list(categorical),
            )
        )
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def as_model_input(frame: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    """Categorical cells as strings (mixed int/str columns break the encoder), missing stays NaN."""
    out = frame.copy()
    for c in categorical:
        col = out[c]
        out[c] = col.astype(str).astype(object).where(col.notna(), np.nan)
    return out


class TabularFeatures:
    """The fitted transformer and what it did (for describe() and the report)."""

    def __init__(self, frame: pd.DataFrame, columns: Sequence[str], train_rows: np.ndarray):
        self.numeric, self.categorical = split_kinds(frame, columns)
        self.transformer = make_transformer(self.numeric, self.categorical)
        train = as_model_input(frame.iloc[train_rows][list(columns)], self.categorical)
        try:
            self.transformer.fit(train)
        except ValueError as exc:
            raise UserError(
                f"problem.args.features: cannot build features ({' '.join(str(exc).split())[:150]})"
            ) from None
        self.columns = list(columns)

    def transform(self, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        part = as_model_input(frame.iloc[rows][self.columns], self.categorical)
        return np.asarray(self.transformer.transform(part), dtype=np.float32)

    @property
    def n_outputs(self) -> int:
        return int(len(self.transformer.get_feature_names_out()))

    def describe(self) -> dict[str, object]:
        return {"numeric": self.numeric, "categorical": self.categorical, "dims": self.n_outputs}
