"""`fair_classification`: the accuracy–fairness front of a classifier on the user's own table.

The recipe names a table (`data.path`), the `target`, its `positive` label and the `sensitive`
columns; this problem reads and checks the table (table.py), splits it (splits.py), forms the
protected groups (groups.py), builds features (features.py, plus text embeddings from the cached
MiniLM encoder when `text` is set) and then is a `TextClassificationProblem`: the genome is an
MLP head (`model.kind: logistic` = no hidden layer) evaluated for a whole population at once, or
with `model.kind: lora` LoRA adapters on the text encoder plus the head (problems/common/text_problem.py).

From Python, the same problem over a DataFrame already in memory:
`FairClassification(df, target="income", positive=">50K", sensitive=["sex"])`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from evofair.analysis.metrics import fairness_metrics
from evofair.core.registry import component
from evofair.errors import UserError
from evofair.problems.common.classification import SplitData
from evofair.problems.common.text_problem import LoraArgs, TextClassificationProblem
from evofair.problems.fairclass import groups as grp
from evofair.problems.fairclass.derive import derive_columns
from evofair.problems.fairclass.features import TabularFeatures
from evofair.problems.fairclass.params import (  # noqa: F401
    GROUP_FREE,
    IN_MEMORY,
    DataArgs,
    EmbeddingArgs,
    FairClassificationParams,
    ModelArgs,
    SplitArgs,
    metric_names,
    parse_params,
)
from evofair.problems.fairclass.run_hooks import FairRunHooks
from evofair.problems.fairclass.splits import random_split, split_from_column
from evofair.problems.fairclass.table import (
    as_labels,
    check_frame,
    class_order,
    file_sha256,
    frame_fingerprint,
    read_table,
    require_column,
    resolve_data_path,
    resolve_positive,
)


@component("problem", "fair_classification", FairClassificationParams)
class FairClassification(FairRunHooks, TextClassificationProblem):
    """Error vs group fairness of classifiers on your own table, target and sensitive columns."""

    name = "fair_classification"
    Params = FairClassificationParams

    def __init__(self, params=None, *, data_root=None, **kwargs):
        frame = None
        if isinstance(params, pd.DataFrame):
            frame, params = params, None
        if kwargs:
            if params is not None:
                raise TypeError("FairClassification: pass either a Params object or keyword arguments")
            params = parse_params(kwargs)
        super().__init__(params, data_root=data_root)
        self.frame = check_frame(frame, IN_MEMORY) if frame is not None else None
        self.base_dir: str | None = None  # the recipe's folder (evofair.api sets it): relative paths
        self.class_names: tuple[str, ...] = ()
        self.pos_label: int | None = None
        self.sensitive: dict[str, dict[str, np.ndarray]] = {}
        self.rows: dict[str, np.ndarray] = {}  # each split's row positions in the checked table
        self.table_rows = np.zeros(0, dtype=np.int64)  # checked row → its row in the table as read
        self.info: dict[str, Any] = {}
        self.raw: dict[str, dict[str, list]] = {}  # {split: {"text": [...]}} when `text` is set
        self._anchor: dict[str, torch.Tensor] | None = None  # the warm-started θ₀ (warm_start.py)
        self._warm_examples = 0  # the training examples it took
        self.tabular: TabularFeatures | None = None  # the fitted preprocessing of the table's columns

    # -- inputs ------------------------------------------------------------------------------
    @property
    def lora_args(self) -> LoraArgs | None:
        """`model.kind: lora`: LoRA adapters on the text encoder's top layers + the head."""
        return self.params.lora if self.params.model.kind == "lora" else None

    @property
    def model_dir(self) -> Path:  # the text encoder (`encoder:`, default the shipped MiniLM)
        return self.encoder_dir

    @property
    def text_max_length(self) -> int:
        return self.params.embedding.max_length

    @property
    def cache_dir(self) -> Path | None:  # the LoRA genome's frozen-prefix cache goes beside the features
        return Path(self.params.embedding.cache_dir) if self.params.embedding.cache_dir else None

    @property
    def data_path(self) -> Path | None:
        data = self.params.data
        if data is None or data.path is None:
            return None
        return resolve_data_path(data.path, self.base_dir, self.data_root)

    def check_inputs(self) -> None:
        if self.frame is not None:
            return
        data = self.params.data
        if data is None or data.path is None:
            if data is not None and data.frame is not None:
                raise UserError(
                    f"problem.args.data: this run's data was an {IN_MEMORY} ({data.frame}); "
                    "pass it again from Python: evofair.run(recipe, out, problem=FairClassification(df, ...))"
                )
            raise UserError("problem.args.data.path: expected the table's file (data: {path: FILE})")
        path = self.data_path
        if not path.exists():
            raise UserError(f"problem.args.data.path: {path}: file not found")
        if self.params.text:
            from evofair.problems.common.text_encoder import check_model_dir

            check_model_dir(self.encoder_dir)

    @property
    def encoder_dir(self) -> Path:
        from evofair.problems.common.text_encoder import default_model_dir

        if not self.params.encoder:
            return default_model_dir()
        local = resolve_data_path(self.params.encoder, self.base_dir)
        if local.is_dir():
            return local
        try:  # a hub id: only when online (HF_HUB_OFFLINE unset)
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.params.encoder))
        except Exception as exc:
            raise UserError(
                f"problem.args.encoder: {self.params.encoder!r} is not a model folder and could not "
                f"be downloaded ({exc.__class__.__name__})"
            ) from None

    def recipe_args(self) -> dict[str, Any]:
        """The arguments config.yaml records for a problem built in Python: with a DataFrame, its
        shape and the sha256 of its CSV bytes stand in for `data.path`."""
        args = self.params.model_dump(mode="json", exclude={"hidden"}, by_alias=True)
        if self.frame is not None:
            derive = (args.get("data") or {}).get("derive") or {}
            args["data"] = {"path": None, "frame": {"source": IN_MEMORY, **frame_fingerprint(self.frame)}}
            args["data"].update({"derive": derive} if derive else {})
        return args

    def rebuild_blocker(self) -> str | None:
        """Why config.yaml cannot rebuild this object (evofair/lifecycle/rebuild.py): data held only in memory."""
        if self.frame is None:
            return None
        return (
            f"its data was an {IN_MEMORY} of {self.frame.shape[0]} rows x {self.frame.shape[1]} columns, "
            "recorded by shape and sha256 only"
        )

    # -- data --------------------------------------------------------------------------------
    def read_frame(self) -> pd.DataFrame:
        """The table as given, plus the columns `data.derive` adds."""
        steps = self.params.data.derive if self.params.data is not None else {}
        if self.frame is not None:
            self.info["data"] = {"source": IN_MEMORY, **frame_fingerprint(self.frame)}
            return derive_columns(self.frame, steps)
        path = self.data_path
        frame = read_table(path, self.params.data.format, self.params.data.na_values)
        self.info["data"] = {
            "path": str(path.resolve()),
            "rows": int(frame.shape[0]),
            "columns": int(frame.shape[1]),
            "sha256": file_sha256(path),
        }
        if steps:
            self.info["derived"] = list(steps)
        return derive_columns(frame, steps)

    def checked_frame(self) -> pd.DataFrame:
        """The table with every named column present and no missing target/sensitive/text cells."""
        p = self.params
        frame = self.read_frame().reset_index(drop=True)
        require_column(frame, p.target, "target")
        for c in p.sensitive:
            require_column(frame, c, "sensitive")
        if p.features != "auto":
            for c in p.features:
                require_column(frame, c, "features")
                if c == p.target:
                    raise UserError(f"problem.args.features: {c!r} is the target; it cannot be a feature")
                if c in p.sensitive and not p.include_sensitive:
                    raise UserError(
                        f"problem.args.features: {c!r} is a sensitive column; set include_sensitive: "
                        "true to use it as a feature too"
                    )
        if p.text:
            require_column(frame, p.text, "text")
        if p.split.column:
            require_column(frame, p.split.column, "split.column")
        needed = (
            [(p.target, "target")] + [(c, "sensitive") for c in p.sensitive] + ([(p.text, "text")] if p.text else [])
        )
        missing = frame[[c for c, _ in needed]].isna()
        if missing.to_numpy().any():
            if not p.drop_missing:
                col, field = next((c, f) for c, f in needed if missing[c].any())
                raise UserError(
                    f"problem.args.{field}: column {col!r} has {int(missing[col].sum())} rows with "
                    f"missing values ({int(missing.any(axis=1).sum())} rows in all); set drop_missing: "
                    "true to drop them"
                )
            self.info["dropped_missing"] = int(missing.any(axis=1).sum())
            frame = frame.loc[~missing.any(axis=1)]
        self.table_rows = frame.index.to_numpy()  # frame.index: positions in the table as read
        return frame.reset_index(drop=True)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.params
        values = as_labels(frame[p.target])
        distinct = sorted(set(values.tolist()))
        if len(distinct) < 2:
            raise UserError(
                f"problem.args.target: column {p.target!r} has one class ({distinct[0]!r}); "
                "a classifier needs at least two"
            )
        positive = resolve_positive(p.positive, distinct)
        if positive is not None and positive not in distinct:
            close = difflib.get_close_matches(positive, distinct, n=1, cutoff=0.3)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"problem.args.positive: {positive!r} is not a value of {p.target!r} "
                f"({hint}values: {', '.join(distinct[:10])})"
            )
        self.class_names = class_order(values, positive)
        self.pos_label = self.class_names.index(positive) if positive is not None else None
        return np.array([self.class_names.index(v) for v in values], dtype=np.int64)

    def sensitive_values(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {}
        for c in self.params.sensitive:
            values = as_labels(frame[c])
            distinct = sorted(set(values.tolist()))
            if len(distinct) < 2:
                raise UserError(
                    f"problem.args.sensitive: column {c!r} has one value ({distinct[0]!r}): no groups to compare"
                )
            out[c] = values
        return out

    def feature_columns(self, frame: pd.DataFrame) -> list[str]:
        p = self.params
        if p.features != "auto":
            return list(p.features)
        excluded = {p.target, p.text, p.split.column} | (set() if p.include_sensitive else set(p.sensitive))
        return [c for c in frame.columns if c not in excluded]

    def load_splits(self) -> dict[str, SplitData]:
        p = self.params
        frame = self.checked_frame()
        y = self.labels(frame)
        attrs = self.sensitive_values(frame)
        raw_groups = grp.intersect(attrs)
        if p.split.column:
            rows = split_from_column(frame[p.split.column], p.split.column)
            self.info["split"] = f"column {p.split.column!r}"
        else:
            rows, strat = random_split(
                y, raw_groups, val=p.split.val, test=p.split.test, seed=p.split.seed, stratify=list(p.split.stratify)
            )
            self.info["split"] = f"random (seed {p.split.seed}, stratified on {strat})"
        self.rows = rows
        g, merged = grp.merge_small({s: raw_groups[r] for s, r in rows.items()}, p.min_group_size)
        grp.check_groups_in_every_split(g, "sensitive", merged=p.min_group_size > 0)
        self.info["merged_groups"] = merged
        self.info["groups"] = grp.group_counts(g)
        for c, values in attrs.items():
            self.sensitive[c], merged_c = grp.merge_small({s: values[r] for s, r in rows.items()}, p.min_group_size)
            if p.groups == "per_attribute":
                grp.check_groups_in_every_split(self.sensitive[c], "sensitive", merged=p.min_group_size > 0)
            if merged_c:
                self.info.setdefault("merged_values", {})[c] = merged_c
        X = self.features(frame, rows)
        return {s: SplitData(torch.from_numpy(np.ascontiguousarray(X[s])), y[r], g[s]) for s, r in rows.items()}

    def features(self, frame: pd.DataFrame, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Tabular features (fitted on train) and text embeddings, concatenated in that order."""
        parts: dict[str, list[np.ndarray]] = {s: [] for s in rows}
        columns = self.feature_columns(frame)
        if columns:
            tab = self.tabular = TabularFeatures(frame, columns, rows["train"])
            for s, r in rows.items():
                parts[s].append(tab.transform(frame, r))
            self.info["features"] = tab.describe()
        if self.params.text:
            for s, emb in self.embeddings(frame, rows).items():
                parts[s].append(emb)
        if not parts["train"]:
            raise UserError("problem.args.features: no feature columns (list some, or set text: COLUMN)")
        return {s: np.concatenate(v, axis=1) if len(v) > 1 else v[0] for s, v in parts.items()}

    def embeddings(self, frame: pd.DataFrame, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from evofair.problems.common.text_encoder import cached_features, default_cache_dir

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        e = self.params.embedding
        texts = {s: frame[self.params.text].astype(str).iloc[r].tolist() for s, r in rows.items()}
        self.raw = {s: {"text": t} for s, t in texts.items()}  # the LoRA genome tokenises these
        feats, info = cached_features(
            texts,
            model_dir=self.encoder_dir,
            max_length=e.max_length,
            batch_size=e.batch_size,
            cache_dir=Path(e.cache_dir) if e.cache_dir else default_cache_dir(),
            progress=True,
            workers=e.workers,
            device=self.device,
            precision=self.params.precision,
        )
        self.info["text"] = {"column": self.params.text, **info}
        return feats

    # -- the head ----------------------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        return [int(self.splits["train"].X.shape[1]), *self.params.hidden_sizes, self.n_classes]

    def head_init_weights(self, seed: int):
        """An initial head: an anchor around the warm-started θ₀ for a share of the seeds
        (problems/fairclass/warm_start.py says why), else drawn around the random θ₀ as before."""
        drawn = super().head_init_weights(seed)
        if self.params.warm_steps == 0:
            return drawn
        from evofair.problems.fairclass.warm_start import anchor_or_none

        anchor = anchor_or_none(self._warm_base(), self.params.warm_start, seed)
        return drawn if anchor is None else {**drawn, **anchor}  # keeps the drawn fairness weight

    def warm_start_examples(self) -> int:
        """Training examples the warm start of θ₀ took (0 without one): the run's budget counts
        them. Trains θ₀ when this process has not (seeded, so the same count as the run's)."""
        if self.params.warm_steps == 0:
            return 0
        self._warm_base()
        return self._warm_examples

    def _warm_base(self) -> dict[str, torch.Tensor]:
        from evofair.problems.fairclass.warm_start import train_base

        if self._anchor is None:
            base = self.head_base_weights()
            self._anchor, self._warm_examples = train_base(self, base, self.params.warm_start, self.params.warm_steps)
        return self._anchor

    # -- metrics -----------------------------------------------------------------------------
    def metrics_of_predictions(self, P: np.ndarray, split: str) -> dict[str, np.ndarray]:
        data = self.splits[split]
        classes = np.arange(self.n_classes)
        out = fairness_metrics(P, data.y, data.g, classes=classes, pos_label=self.pos_label)
        if self.params.groups == "per_attribute":
            for attr, by_split in self.sensitive.items():
                per = fairness_metrics(P, data.y, by_split[split], classes=classes, pos_label=self.pos_label)
                out.update({f"{m}_{attr}": v for m, v in per.items() if m not in GROUP_FREE})
        return out

    @property
    def metric_names(self) -> list[str]:
        return metric_names(self.params.sensitive, self.params.groups)

    def example_outputs(self, genomes, split) -> dict[str, Any]:
        """The base's per-example outputs plus each sensitive column (per-attribute metrics)."""
        out = super().example_outputs(genomes, split)
        if self.params.groups == "per_attribute":
            out["groups_by"] = {attr: by_split[split] for attr, by_split in self.sensitive.items()}
        return out

    def describe(self) -> dict[str, Any]:
        p = self.params
        return {
            **super().describe(),
            "target": p.target,
            "positive": p.positive,
            "sensitive": list(p.sensitive),
            "groups": p.groups,
            "min_group_size": p.min_group_size,
            "model": p.model.kind,
            **self.info,
        }
