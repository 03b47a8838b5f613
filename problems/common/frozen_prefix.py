"""Pre-tokenised splits and the frozen-prefix cache of the LoRA genome.

Why: LoRA adapts only the top `top_layers` blocks, so the embeddings and every block below the
lowest adapted one are frozen and identical for every offspring. Their output (the hidden states
that enter the lowest adapted block) is computed once per (model files, texts, layer, max length,
precision), stored as safetensors beside the feature cache, and each offspring runs only the
adapted blocks + pooling + head, for local learning and for evaluation alike. On all-MiniLM-L6-v2
with `top_layers: 2` that skips 4 of 6 blocks in every forward pass.

Exactness: a block's output at a real token does not depend on padded positions (their attention
weight is exactly 0 after the additive mask), so the cached states, stored without padding, give
the same outputs as the full model up to float32 reassociation from different batch shapes
(measured in tests/problems/common/test_frozen_prefix.py). The frozen part always runs in eval
mode (no dropout), in the cache and in the full-model path alike: it is the same for everyone.

Generic over Hugging Face encoders: the prefix is captured by a forward pre-hook on the lowest
adapted block, and the suffix is the model itself with its input embedding module replaced by a
pass-through and its block list holding only the adapted blocks (under their original indices, so
module names and LoRA targets do not change), fed with `inputs_embeds=` the cached states.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evofair.problems.common.text_encoder import FeatureCache, length_sorted_batches
from evofair.tracking.progress import progress_bar, step

log = logging.getLogger("evofair.progress")

PREFIX_FORMAT = "frozen-prefix-v1"


@dataclass
class Tokens:
    """One split tokenised once: ids and mask padded to the split's longest text (on the device),
    and the lengths on the host, so slicing a batch to its own longest text needs no device sync."""

    ids: torch.Tensor
    mask: torch.Tensor
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[idx].max()) if len(idx) else 0
        rows = torch.as_tensor(idx, device=self.ids.device)
        return self.ids[rows, :width], self.mask[rows, :width]


def tokenize(tokenizer, texts: Sequence[str], *, max_length: int, device: torch.device) -> Tokens:
    """Right-padded ids and mask of every text, tokenised in one call (never `tokenizer.pad` per batch)."""
    tokenizer.padding_side = "right"  # cached states and batch slicing assume real tokens come first
    with step(f"tokenising {len(texts)} texts (at most {max_length} tokens each)"):
        enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    mask = enc["attention_mask"]
    lengths = mask.sum(1).numpy().astype(np.int64)
    if not torch.equal(mask, (torch.arange(mask.shape[1])[None] < torch.as_tensor(lengths)[:, None]).to(mask.dtype)):
        raise ValueError("tokenizer: expected right padding (real tokens first)")
    return Tokens(enc["input_ids"].to(device), mask.to(device), lengths)


def block_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The `nn.ModuleList` of transformer blocks: the outermost one whose blocks hold an attention
    module (found from the structure, as `lora_model.attention_linears` finds the targets)."""
    for name, mod in model.named_modules():  # pre-order: outer lists come first
        if (
            isinstance(mod, torch.nn.ModuleList)
            and len(mod)
            and any("Attention" in type(m).__name__ for m in mod[0].modules())
        ):
            return name, mod
    raise ValueError("no list of transformer blocks with attention modules found")


def _input_embedding_owner(model: torch.nn.Module) -> str:
    """Name of the top-level child holding the input embeddings (BERT: `embeddings`, Llama: `embed_tokens`)."""
    emb = model.get_input_embeddings()
    for name, child in model.named_children():
        if child is emb or any(m is emb for m in child.modules()):
            return name
    raise ValueError("no top-level module holds the input embeddings")


class _Captured(Exception):
    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden


@torch.no_grad()
def run_prefix(encoder: torch.nn.Module, layer: int, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden states entering block `layer` (the embeddings' output when `layer` is 0), computed by
    the encoder's own forward and stopped there. `encoder` must be in eval mode."""
    _, blocks = block_list(encoder)

    def grab(module, args, kwargs):
        raise _Captured(args[0] if args else kwargs["hidden_states"])

    handle = blocks[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        encoder(input_ids=ids, attention_mask=mask)
    except _Captured as stop:
        return stop.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"block {layer} was never called")


class _PassThrough(torch.nn.Module):
    """Stands in for the input embedding module: returns the `inputs_embeds` it is given."""

    def forward(self, *args, inputs_embeds=None, **kwargs):
        return inputs_embeds


def suffix_view(encoder: torch.nn.Module, layer: int) -> torch.nn.Module:
    """A module that shares every parameter and buffer with `encoder` but runs only blocks
    `layer`.. on `inputs_embeds=` (hidden states entering block `layer`)."""
    shared = {id(t): t for t in [*encoder.parameters(), *encoder.buffers()]}
    view = copy.deepcopy(encoder, memo=shared)
    path, blocks = block_list(view)
    kept = torch.nn.ModuleList()
    for i in range(layer, len(blocks)):
        kept.add_module(str(i), blocks[i])  # original indices: names (and LoRA targets) unchanged
    parent, _, attr = path.rpartition(".")
    setattr(view.get_submodule(parent) if parent else view, attr, kept)
    setattr(view, _input_embedding_owner(view), _PassThrough())
    return view


class PrefixStates:
    """The cached hidden states of one split without padding: `flat` (total tokens, hidden) and each
    text's `offset`/`length`. `batch(idx)` rebuilds the padded (len(idx), longest, hidden) block with
    one gather on the device (zeros at padded positions, which the attention mask ignores)."""

    def __init__(self, flat: torch.Tensor, lengths: np.ndarray):
        self.flat, self.lengths = flat, np.asarray(lengths, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self._offsets = torch.as_tensor(offsets, device=flat.device)
        self._lengths = torch.as_tensor(self.lengths, device=flat.device)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[idx].max()) if len(idx) else 0
        rows = torch.as_tensor(idx, device=self.flat.device)
        pos = torch.arange(width, device=self.flat.device)
        mask = pos[None] < self._lengths[rows, None]
        where = (self._offsets[rows, None] + pos[None]).clamp(max=max(len(self.flat) - 1, 0))
        hidden = self.flat[where] * mask[..., None].to(self.flat.dtype)
        return hidden, mask.to(torch.long)


def prefix_key(model_hash: str, data_hash: str, layer: int, max_length: int, precision: str) -> str:
    payload = json.dumps(
        {
            "format": PREFIX_FORMAT,
            "model": model_hash,
            "data": data_hash,
            "layer": int(layer),
            "max_length": int(max_length),
            "precision": precision,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def compute_prefix_states(
    encoder, layer: int, tokens: Tokens, *, batch_size: int, bar=None
) -> tuple[torch.Tensor, np.ndarray]:
    """(flat states on the host, lengths) of one split, in length-sorted batches (`bar` counts texts)."""
    parts: list[torch.Tensor | None] = [None] * len(tokens)
    for idx in length_sorted_batches(tokens.lengths, batch_size):
        ids, mask = tokens.batch(idx)
        hidden = run_prefix(encoder, layer, ids, mask).float().cpu()
        for row, j in enumerate(idx):
            parts[j] = hidden[row, : tokens.lengths[j]]
        if bar is not None:
            bar.update(len(idx))
    flat = torch.cat(parts) if parts else torch.zeros((0, encoder.config.hidden_size))
    return flat, tokens.lengths


def cached_prefix_states(
    encoder,
    layer: int,
    tokens_by_split: dict[str, Tokens],
    *,
    cache: FeatureCache,
    key: str,
    batch_size: int,
    autocast,
    meta: dict,
) -> tuple[dict[str, PrefixStates], dict]:
    """Every split's `PrefixStates`, read from `cache` under `key` or computed (then stored)."""
    device = next(iter(tokens_by_split.values())).ids.device
    found = cache.load(key)
    info = {"prefix_key": key, "prefix_layer": int(layer), "prefix_hit": found is not None}
    if found is not None:
        arrays = found[0]
    else:
        arrays = {}
        total = sum(len(t) for t in tokens_by_split.values())
        log.info("frozen prefix: running layers below %d over %d texts once (cached after this run)", layer, total)
        bar = progress_bar(total, f"frozen prefix (layers below {layer})", unit="texts", heartbeat=True)
        try:
            with autocast:
                for split, tokens in tokens_by_split.items():
                    flat, lengths = compute_prefix_states(encoder, layer, tokens, batch_size=batch_size, bar=bar)
                    arrays[f"{split}.states"], arrays[f"{split}.lengths"] = flat.numpy(), lengths
        finally:
            bar.close()
        cache.save(key, arrays, {**meta, "layer": int(layer), "format": PREFIX_FORMAT})
    states = {
        s: PrefixStates(
            torch.from_numpy(np.ascontiguousarray(arrays[f"{s}.states"])).to(device), arrays[f"{s}.lengths"]
        )
        for s in tokens_by_split
    }
    info["prefix_mb"] = round(sum(a.nbytes for a in arrays.values()) / 2**20, 1)
    return states, info
