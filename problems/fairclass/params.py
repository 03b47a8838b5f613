"""The arguments of `fair_classification` (recipe `problem.args`), validated before anything runs.

docs/fair-classification.md explains every key; `metric_names` is the list objectives are checked
against (evofair.analysis.metrics.METRIC_NAMES, plus per-attribute names with `groups: per_attribute`).
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evofair.analysis.metrics import METRIC_NAMES
from evofair.core.registry import Args, explain_validation_error
from evofair.errors import UserError
from evofair.problems.common.classification import HeadArgs
from evofair.problems.common.text_problem import LoraArgs
from evofair.problems.fairclass.baselines import FairBaselineArgs
from evofair.problems.fairclass.derive import DerivedColumn
from evofair.problems.fairclass.warm_start import WarmStartArgs

#: metrics that do not depend on the groups: no per-attribute copy
GROUP_FREE = ("error", "balanced_error")
IN_MEMORY = "in-memory DataFrame"


class DataArgs(Args):
    path: str | None = Field(
        None,
        description="the table: .csv, .csv.gz, .parquet, .jsonl, .json, or a "
        "datasets save_to_disk folder; relative to the recipe's folder",
    )
    format: Literal["csv", "parquet", "jsonl", "json", "datasets"] | None = Field(
        None, description="default: from the file name"
    )
    na_values: list[str] = Field(
        default_factory=lambda: ["?"], description="CSV cells read as missing (besides empty cells, NA, NaN...)"
    )
    frame: dict[str, Any] | None = Field(
        None, description="set by evofair: a DataFrame passed from Python (rows, columns, sha256 of its CSV bytes)"
    )
    derive: dict[str, DerivedColumn] = Field(
        default_factory=dict, description="columns derived before use: map codes, cut into bands, combine (derive.py)"
    )


class SplitArgs(Args):
    column: str | None = Field(None, description="a column naming each row's split (train/val/validate/test)")
    val: float = Field(0.2, gt=0, lt=1, description="validation share (random split)")
    test: float = Field(0.2, gt=0, lt=1, description="test share (random split)")
    seed: int = Field(0, ge=0, description="seed of the random split (fixed data, whatever the run seed)")
    stratify: list[Literal["target", "sensitive"]] = Field(default_factory=lambda: ["target", "sensitive"])

    @model_validator(mode="after")
    def _shares(self):
        if self.val + self.test >= 1:
            raise PydanticCustomError("shares", "val + test must leave rows to train on (sum < 1)")
        return self


class ModelArgs(Args):
    kind: Literal["logistic", "mlp", "head", "lora"] = Field(
        "mlp",
        description="logistic: no hidden layer; mlp: hidden layers; head: mlp over text embeddings; "
        "lora: LoRA adapters on the text encoder's top layers + the mlp head (`lora:` settings)",
    )
    hidden: list[int] = Field(default_factory=lambda: [64], description="hidden widths (mlp, head, lora)")


class EmbeddingArgs(Args):
    max_length: int = Field(256, ge=8, le=512, description="tokens per text")
    batch_size: int = Field(16, ge=1, description="texts per encoder batch")
    workers: int | None = Field(None, ge=1, description="embedding processes (None: one per usable CPU, max 8)")
    cache_dir: str | None = Field(None, description="feature cache (default $EVOFAIR_CACHE/features)")


class FairClassificationParams(HeadArgs):
    data: DataArgs | None = Field(None, description="the table (omitted only for a DataFrame passed from Python)")
    target: str = Field(..., min_length=1, description="the label column")
    positive: str | None = Field(None, description="the positive label (compared as text); omit for multi-class")
    sensitive: list[str] = Field(..., min_length=1, description="the sensitive columns")
    groups: Literal["intersectional", "per_attribute"] = Field(
        "intersectional", description="per_attribute adds <metric>_<column> for each fairness metric"
    )
    min_group_size: int = Field(0, ge=0, description="groups with fewer training rows are merged into 'other'")
    features: Literal["auto"] | list[str] = Field("auto", description="auto: every other column")
    include_sensitive: bool = Field(False, description="also use the sensitive columns as features")
    drop_missing: bool = Field(False, description="drop rows missing the target/sensitive/text (else an error)")
    text: str | None = Field(None, description="a text column, embedded by `encoder`")
    encoder: str | None = Field(None, description="Hugging Face model folder (default: the shipped MiniLM)")
    embedding: EmbeddingArgs = Field(default_factory=EmbeddingArgs)
    split: SplitArgs = Field(default_factory=SplitArgs)
    model: ModelArgs = Field(default_factory=ModelArgs)
    objectives: list[str] = Field(
        default_factory=lambda: ["error", "eod"],
        min_length=2,
        description="metrics minimised (evofair.analysis.metrics.METRIC_NAMES; "
        "<metric>_<column> with groups: per_attribute)",
    )
    lora: LoraArgs = Field(
        default_factory=LoraArgs,
        description="model.kind: lora — rank, alpha, top_layers, targets, storage (as biasbios' lora)",
    )
    baselines: FairBaselineArgs = Field(default_factory=FairBaselineArgs)
    warm_start: WarmStartArgs = Field(
        default_factory=WarmStartArgs, description="cross-entropy training of θ₀ before the first population"
    )

    @field_validator("positive", mode="before")
    @classmethod
    def _label_as_text(cls, value):
        """Labels are compared as text: `positive: 1` means "1"; YAML's `yes`/`true` arrive as
        booleans and are matched against yes/true/on/y in the column (`resolve_positive`)."""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, (int, float)):
            return str(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _hidden_lives_in_model(cls, data):
        if isinstance(data, dict) and "hidden" in data:
            raise PydanticCustomError(
                "hidden", "write the hidden widths as model.hidden (model: {kind: mlp, hidden: [64]})"
            )
        return data

    @model_validator(mode="after")
    def _check(self):
        allowed = metric_names(self.sensitive, self.groups)
        for name in self.objectives:
            if name not in allowed:
                if self.groups == "intersectional" and name in metric_names(self.sensitive, "per_attribute"):
                    raise PydanticCustomError(
                        "objective", f"objectives: {name!r} is a per-attribute metric: set groups: per_attribute"
                    )
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise PydanticCustomError(
                    "objective", f"objectives: {name!r} is not a metric ({hint}expected one of {', '.join(allowed)})"
                )
        if len(set(self.objectives)) != len(self.objectives):
            raise PydanticCustomError("objective", "objectives: a metric is listed twice")
        if self.model.kind in ("head", "lora") and not self.text:
            raise PydanticCustomError(
                "kind", f"model.kind: {self.model.kind} works on text embeddings: set text: COLUMN"
            )
        if self.model.kind == "lora" and self.features != []:
            raise PydanticCustomError(
                "kind",
                "model.kind: lora fine-tunes the text encoder and its head reads only "
                "the text embedding: set features: []",
            )
        return self

    @property
    def warm_steps(self) -> int:
        return self.warm_start.resolved_steps(self.model.kind, linear=not self.hidden_sizes)

    @property
    def hidden_sizes(self) -> list[int]:
        return [] if self.model.kind == "logistic" else list(self.model.hidden)


def metric_names(sensitive, groups: str) -> list[str]:
    """Every metric the problem stores: METRIC_NAMES on the intersectional groups, plus
    `<metric>_<column>` for each group-dependent metric and sensitive column (per_attribute)."""
    names = list(METRIC_NAMES)
    if groups == "per_attribute":
        names += [f"{m}_{a}" for a in sensitive for m in METRIC_NAMES if m not in GROUP_FREE]
    return names


def parse_params(kwargs: dict[str, Any]) -> FairClassificationParams:
    try:
        return FairClassificationParams.model_validate(kwargs)
    except ValidationError as exc:
        path, msg = explain_validation_error(exc, FairClassificationParams, kwargs)
        raise UserError(f"FairClassification: {path}: {msg}" if path else f"FairClassification: {msg}") from None
