"""The `fair_classification` problem (skeleton: data loading lands in the next commits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from evofair.registry import Args, component
from evofair.problems.fapareto.classification import FeatureClassificationProblem, HeadArgs, SplitData

try:  # the baselines engineer's module; a placeholder until it lands
    from evofair.problems.fairclass.baselines import FairBaselineArgs
except ImportError:  # pragma: no cover - removed once baselines.py exists
    class FairBaselineArgs(Args):
        enabled: bool = True


class DataArgs(Args):
    path: str = Field(..., description="the table: .csv, .csv.gz, .parquet, .jsonl, or a datasets save_to_disk folder")
    format: Literal["csv", "parquet", "jsonl", "datasets"] | None = Field(None, description="default: from the suffix")
    na_values: list[str] = Field(default_factory=lambda: ["?", ""], description="cells read as missing (CSV)")


class SplitArgs(Args):
    column: str | None = Field(None, description="a column naming each row's split (train/val/validate/test)")
    val: float = Field(0.2, gt=0, lt=1, description="validation share (no split column)")
    test: float = Field(0.2, gt=0, lt=1, description="test share (no split column)")
    seed: int = Field(0, ge=0, description="seed of the random split")
    stratify: list[Literal["target", "sensitive"]] = Field(default_factory=lambda: ["target", "sensitive"])


class ModelArgs(Args):
    kind: Literal["logistic", "mlp", "head", "lora"] = Field("mlp", description="logistic = no hidden layer")
    hidden: list[int] = Field(default_factory=lambda: [64], description="hidden widths (mlp, head)")


class FairClassificationParams(HeadArgs):
    data: DataArgs | None = Field(None, description="the table (None only for a DataFrame passed from Python)")
    target: str = Field(..., description="the label column")
    positive: str | None = Field(None, description="the positive label (binary); omit for multi-class")
    sensitive: list[str] = Field(..., min_length=1, description="sensitive columns")
    groups: Literal["intersectional", "per_attribute"] = "intersectional"
    min_group_size: int = Field(0, ge=0, description="smaller intersections (train counts) are merged into 'other'")
    features: Literal["auto"] | list[str] = "auto"
    include_sensitive: bool = False
    drop_missing: bool = False
    text: str | None = None
    encoder: str | None = None
    split: SplitArgs = Field(default_factory=SplitArgs)
    model: ModelArgs = Field(default_factory=ModelArgs)
    objectives: list[str] = Field(default_factory=lambda: ["error", "eod"], min_length=2)
    baselines: FairBaselineArgs = Field(default_factory=FairBaselineArgs)


@component("problem", "fair_classification", FairClassificationParams)
class FairClassification(FeatureClassificationProblem):
    """Error vs group fairness of MLP heads over the features of the user's table."""

    name = "fair_classification"
    Params = FairClassificationParams

    def __init__(self, params=None, *, data_root=None, **kwargs):
        super().__init__(params, data_root=data_root)
        self.sensitive: dict[str, dict[str, np.ndarray]] = {}
        self.base_dir: str | None = None

    def load_splits(self) -> dict[str, SplitData]:
        raise NotImplementedError("fair_classification: data loading lands next")

    def metrics_of_predictions(self, P: np.ndarray, split: str) -> dict[str, np.ndarray]:
        return super().metrics_of_predictions(P, split)

    @property
    def metric_names(self) -> list[str]:
        return list(self.params.objectives)

    def after_run(self, store, out, recipe) -> dict[str, float]:
        from evofair.problems.fairclass.baselines import run_fair_baselines

        return run_fair_baselines(self, store, Path(out), recipe, self.params.baselines)

    def report_sections(self, store, out, recipe) -> dict[str, Any]:
        from evofair.problems.fairclass.report import fair_report_sections

        return fair_report_sections(self, store, Path(out), recipe)
