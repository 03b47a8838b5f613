"""LoRA (peft) on a text encoder's top layers plus an MLP head: the model a `lora` genome computes with.

What the genome stores, and why: for every adapted weight matrix W₀ (e.g. the query and value
projections of the top layers) the genome holds the dense *delta* ΔW = W − W₀, not LoRA's factors
B and A. Merges must act on what the adapters change: averaging the factors of two adapters,
(B₁+B₂)(A₁+A₂)/4, is not the average of their deltas (B₁A₁+B₂A₂)/2, while merging dense deltas
is exactly task arithmetic / TIES / DARE relative to the pretrained base (whose delta is zero).
Local learning then trains a *fresh* peft LoRA adapter on top of W₀ + ΔW and folds it back with
peft's own `get_delta_weight`: ΔW ← ΔW + (α/r)·B·A. The stored genome never includes the
frozen encoder, only deltas of the adapted matrices and the head.

`LoraAdapterModel` is not the genome (that is `LoraDeltaGenome`, what the engine varies and
stores): it is the encoder, tokenised texts and cached states a problem computes with, turning
genomes into predictions, trainable modules and back (text_problem.py routes the problem's genome
methods to it). `lora_factors.py` stores the same adapters as factors.

Speed: each split is tokenised once into tensors on the problem's device, and the frozen blocks
below the lowest adapted one run once per run (frozen_prefix.py, cached on disk); every offspring
then trains and is evaluated through the adapted blocks only. A worker realising several offspring
trains up to `lora.stack_offspring` of them through one forward (stacked_sft.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from evofair.core.genome import WeightsGenome
from evofair.core.individual import Weights
from evofair.core.seeding import torch_seeded
from evofair.problems.common.classification import population_logits, stack_heads
from evofair.problems.common.devices import autocast
from evofair.problems.common.frozen_prefix import (
    PrefixStates,
    Tokens,
    cached_prefix_states,
    prefix_key,
    run_prefix,
    suffix_view,
    tokenize,
)
from evofair.problems.common.text_encoder import (
    FeatureCache,
    length_sorted_batches,
    load_encoder,
    mean_pool,
    model_files_hash,
    texts_hash,
)
from evofair.store.weights_files import weights_hash

PEFT_PREFIX = "base_model.model."


def attention_linears(model: torch.nn.Module) -> tuple[list[tuple[int, str]], int]:
    """[(layer index, name)] of every `nn.Linear` inside an attention block, and the number of blocks.

    Found from the model's own structure, not from one architecture's names: an attention block is
    an outermost module whose class name contains "Attention" (BertAttention, LlamaAttention,
    ...), and its layer index is its position in the enclosing `nn.ModuleList` of blocks."""
    lists = {name: len(mod) for name, mod in model.named_modules() if isinstance(mod, torch.nn.ModuleList)}
    blocks = []
    for name, mod in model.named_modules():
        if "Attention" in type(mod).__name__ and not any(name.startswith(b + ".") for b in blocks):
            blocks.append(name)
    found, n_layers = [], 0
    for block in blocks:
        parent = max((p for p in lists if block.startswith(p + ".")), key=len, default=None)
        if parent is None:
            continue
        index = block[len(parent) + 1 :].split(".")[0]
        if not index.isdigit():
            continue
        n_layers = max(n_layers, lists[parent])
        for name, mod in model.get_submodule(block).named_modules():
            if isinstance(mod, torch.nn.Linear):
                found.append((int(index), f"{block}.{name}"))
    return found, n_layers


class _LoraClassifier(torch.nn.Module):
    """peft-wrapped adapted blocks → mean pooling → head; remembers the deltas it started from.

    A batch brings either the cached hidden states entering the lowest adapted block (`hidden`) or
    token ids, whose frozen prefix `prefix(ids, mask)` then computes (outside autograd: nothing
    below the adapted blocks trains)."""

    def __init__(
        self,
        encoder,
        head: torch.nn.Module,
        start: dict[str, torch.Tensor],
        prefix,
        precision: str,
        dropout: bool = True,
    ):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.start = start
        self._prefix, self._precision, self._dropout = prefix, precision, dropout

    def train(self, mode: bool = True):
        """Train mode; without `lora.dropout` the adapted blocks stay in eval mode (nothing dropped)."""
        super().train(mode)
        if not self._dropout:
            self.encoder.eval()
        return self

    def forward(self, input_ids=None, attention_mask=None, hidden=None):
        if hidden is None:
            hidden = self._prefix(input_ids, attention_mask)
        with autocast(hidden.device, self._precision):
            out = self.encoder(inputs_embeds=hidden, attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(out.float(), attention_mask))


class LoraAdapterModel:
    """The adapted encoder of one problem: evaluates, builds and folds back dense-delta genomes.

    Its problem (a `TextClassificationProblem`, text_problem.py) provides `lora_args`, `model_dir`,
    `raw` ({split: {"text": [...]}}), `text_max_length`, `cache_dir`, its splits and groups, and the
    head methods of `FeatureClassificationProblem` (`head_base_weights`, `head_init_weights`,
    `head_model`)."""

    def __init__(self, problem):
        self.p = problem
        self.args = problem.lora_args
        self.device = getattr(problem, "device", None) or torch.device("cpu")
        self.precision = getattr(problem.params, "precision", "fp32")
        self.tokenizer, encoder = load_encoder(problem.model_dir)
        self.encoder = encoder.to(self.device).requires_grad_(False)
        from evofair.errors import UserError

        linears, n = attention_linears(encoder)
        if n == 0:
            raise UserError(
                f"problem.args.model_dir: {problem.model_dir}: no attention blocks with nn.Linear "
                "projections found (LoRA needs them)"
            )
        if self.args.top_layers > n:
            raise UserError(f"problem.args.lora.top_layers: the encoder has only {n} layers")
        self.layers = list(range(n - self.args.top_layers, n))
        every = self.args.targets == ["attention"]
        self.targets = [
            name
            for layer, name in linears
            if layer in self.layers and (every or name.split(".")[-1] in self.args.targets)
        ]
        if not self.targets:
            raise UserError(
                f"problem.args.lora.targets: no Linear named {self.args.targets} in the top "
                "layers' attention blocks (or give [attention] for all of them)"
            )
        modules = dict(encoder.named_modules())
        self.W0 = {t: modules[t].weight.detach().clone() for t in self.targets}
        self.texts = {s: d["text"] for s, d in problem.raw.items()}
        self.lowest = min(self.layers)
        self.suffix = suffix_view(self.encoder, self.lowest)  # shares every tensor with self.encoder
        self.tokens: dict[str, Tokens] = {
            s: tokenize(self.tokenizer, t, max_length=problem.text_max_length, device=self.device)
            for s, t in self.texts.items()
        }
        self.states: dict[str, PrefixStates] | None = None
        self.info: dict[str, Any] = {"prefix_cache": bool(self.args.prefix_cache)}
        if self.args.prefix_cache:
            self.states, info = self._prefix_states()
            self.info.update(info)
        train = problem.splits["train"]
        self._y = torch.as_tensor(train.y, device=self.device)
        self._g = torch.as_tensor(np.searchsorted(np.asarray(problem.group_values), train.g), device=self.device)

    def _prefix_states(self) -> tuple[dict[str, PrefixStates], dict]:
        import time

        from evofair.problems.common.text_encoder import default_cache_dir

        t = time.perf_counter()
        cache_dir = getattr(self.p, "cache_dir", None) or default_cache_dir()
        model_hash, data_hash = model_files_hash(self.p.model_dir), texts_hash(self.texts)
        key = prefix_key(model_hash, data_hash, self.lowest, self.p.text_max_length, self.precision)
        cache = FeatureCache(cache_dir.parent / "prefix" if cache_dir.name == "features" else cache_dir / "prefix")
        states, info = cached_prefix_states(
            self.encoder,
            self.lowest,
            self.tokens,
            cache=cache,
            key=key,
            batch_size=self.args.eval_batch_size,
            autocast=autocast(self.device, self.precision),
            meta={
                "model_dir": str(self.p.model_dir),
                "model_hash": model_hash,
                "data_hash": data_hash,
                "max_length": self.p.text_max_length,
                "precision": self.precision,
            },
        )
        info["prefix_seconds"] = round(time.perf_counter() - t, 3)
        return states, info

    def prefix(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the lowest adapted block, computed from token ids (frozen, eval)."""
        with torch.no_grad(), autocast(ids.device, self.precision):
            return run_prefix(self.encoder, self.lowest, ids.to(self.device), mask.to(self.device)).float()

    def _inputs(self, split: str, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states entering the lowest adapted block, attention mask) of rows `idx`."""
        if self.states is not None:
            return self.states[split].batch(idx)
        ids, mask = self.tokens[split].batch(idx)
        return self.prefix(ids, mask), mask

    # -- genome layout -----------------------------------------------------------------------
    @staticmethod
    def _dkey(target: str) -> str:
        return f"delta.{target}.weight"

    @staticmethod
    def _head(weights: Weights) -> Weights:
        return {k[len("head.") :]: v for k, v in weights.items() if k.startswith("head.")}

    def _adapters(self, weights: Weights) -> dict[str, Any]:
        """The stored form of each adapted matrix (here its dense delta; factor layouts override)."""
        return {t: weights[self._dkey(t)] for t in self.targets}

    def _deltas(self, adapters: dict[str, Any]) -> Iterator[tuple[str, torch.Tensor]]:
        """ΔW of each matrix, one at a time (a factor layout materialises B·A only here)."""
        yield from adapters.items()

    def _join(self, adapters: dict[str, Any], head: Weights) -> Weights:
        return {**{self._dkey(t): d for t, d in adapters.items()}, **{f"head.{k}": v for k, v in head.items()}}

    def _zero_adapters(self) -> dict[str, Any]:
        return {t: torch.zeros_like(w, device="cpu") for t, w in self.W0.items()}

    def _fold(self, target: str, start: Any, mod) -> Any:
        """The stored form after local learning: the start plus the trained peft adapter."""
        return (start.to(self.device) + mod.get_delta_weight("default").detach()).cpu()

    def base_weights(self) -> Weights:
        """Zero deltas (the pretrained encoder) and the shared base head θ₀."""
        return self._join(self._zero_adapters(), self.p.head_base_weights())

    def init_weights(self, seed: int) -> Weights:
        return self._join(self._zero_adapters(), self.p.head_init_weights(seed))

    # -- evaluation (one pass of the adapted blocks per genome; heads then batched per genome) --
    @torch.no_grad()
    def _features(self, adapters: dict[str, Any], split: str) -> torch.Tensor:
        modules = dict(self.encoder.named_modules())
        try:
            for t, d in self._deltas(adapters):
                modules[t].weight.copy_(self.W0[t] + d.to(self.device, self.W0[t].dtype))
            tokens = self.tokens[split]
            X = torch.zeros((len(tokens), self.encoder.config.hidden_size), device=self.device)
            for idx in length_sorted_batches(tokens.lengths, self.args.eval_batch_size):
                hidden, mask = self._inputs(split, idx)
                with autocast(self.device, self.precision):
                    out = self.suffix(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
                X[torch.as_tensor(idx, device=self.device)] = mean_pool(out.float(), mask)
        finally:
            for t in adapters:
                modules[t].weight.copy_(self.W0[t])
        return X.cpu()

    def _logits(self, weights: Weights, split: str) -> torch.Tensor:
        X = self._features(self._adapters(weights), split)
        return population_logits(stack_heads([self._head(weights)], len(self.p.sizes) - 1), X)[0]

    def predictions(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        with torch.no_grad():
            return (
                np.stack([self._logits(w, split).argmax(-1).numpy() for w in genomes])
                if genomes
                else np.zeros((0, len(self.texts[split])), dtype=np.int64)
            )

    def scores(self, genomes: Sequence[Weights], split: str) -> np.ndarray:
        with torch.no_grad():
            return np.stack([torch.softmax(self._logits(w, split), -1).numpy() for w in genomes])

    # -- training contract ---------------------------------------------------------------------
    def build_model(self, weights: Weights) -> torch.nn.Module:
        from peft import LoraConfig, get_peft_model

        adapters = self._adapters(weights)
        # Copy only the adapted matrices: every other (frozen) parameter is shared with the worker's
        # one base model through deepcopy's memo, so a refine costs the adapters, not the model.
        targets = set(self.targets)
        shared = {id(p): p for n, p in self.suffix.named_parameters() if n.rsplit(".", 1)[0] not in targets}
        shared.update({id(b): b for b in self.suffix.buffers()})
        encoder = copy.deepcopy(self.suffix, memo=shared)
        modules = dict(encoder.named_modules())
        with torch.no_grad():
            for t, d in self._deltas(adapters):
                modules[t].weight.copy_(self.W0[t] + d.to(self.device, self.W0[t].dtype))
        # The exact module names found by `attention_linears` (peft matches them as name suffixes):
        # the same modules, in the same order, as the former `targets` + `layers_to_transform`.
        config = LoraConfig(
            r=self.args.r, lora_alpha=self.args.alpha, target_modules=list(self.targets), lora_dropout=0.0, bias="none"
        )
        # LoRA's A matrices are drawn from torch's global RNG: seed it from the genome's content.
        with torch_seeded(int(weights_hash(weights)[:15], 16)):
            peft_encoder = get_peft_model(encoder, config)
        head = self.p.head_model(self._head(weights))
        return _LoraClassifier(
            peft_encoder, head.to(self.device), adapters, self.prefix, self.precision, self.args.dropout
        )

    def extract_weights(self, model: _LoraClassifier) -> Weights:
        from peft.tuners.lora import LoraLayer

        adapters = {}
        for name, mod in model.encoder.named_modules():
            if isinstance(mod, LoraLayer):
                target = name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name
                adapters[target] = self._fold(target, model.start[target], mod)
        missing = set(self.targets) - set(adapters)
        if missing:
            raise RuntimeError(f"peft adapted other modules than expected (missing {sorted(missing)})")
        head = {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()}
        return self._join({t: adapters[t] for t in self.targets}, head)

    def refine_stack(self, spec, args) -> int:
        """How many offspring of this refine train through one forward (stacked_sft.py)."""
        from evofair.problems.common.stacked_sft import stack_size

        return stack_size(self, spec, args)

    def refine_together(self, spec, args, items: Sequence[tuple[Weights, int]]) -> list:
        """The refined (`Refined`) of every (weights, seed), in stacks of `refine_stack` offspring."""
        from evofair.problems.common.stacked_sft import refine_together

        return refine_together(self, spec, args, items)

    def train_batches(self, seed: int, batch_size: int) -> Iterable[dict[str, Any]]:
        """One shuffled epoch; batches are slices of tensors already on the device (cached states,
        or pre-tokenised ids), cut to the batch's longest text."""
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        order = torch.randperm(len(self.texts["train"]), generator=gen).numpy()
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            rows = torch.as_tensor(idx, device=self.device)
            if self.states is not None:
                hidden, mask = self.states["train"].batch(idx)
                batch = {"hidden": hidden, "attention_mask": mask}
            else:
                ids, mask = self.tokens["train"].batch(idx)
                batch = {"input_ids": ids, "attention_mask": mask}
            yield {**batch, "y": self._y[rows], "g": self._g[rows]}

    def loss(self, model: _LoraClassifier, batch: dict[str, Any]) -> torch.Tensor:
        """Cross-entropy, plus the individual's fairness weight times the soft TPR gap when it
        carries one (`local_loss: ce+tpr_gap`), exactly as for head genomes."""
        logits = model(batch.get("input_ids"), batch["attention_mask"].to(self.device), hidden=batch.get("hidden"))
        return self.loss_of_logits(model, logits, batch)

    def loss_of_logits(self, model: _LoraClassifier, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """`loss` from the logits `model` computed for `batch` (the stacked path computes them
        for several models in one forward: stacked_sft.py)."""
        y = batch["y"].to(self.device)
        ce = torch.nn.functional.cross_entropy(logits, y)
        w = getattr(model.head, "fair_weight", None)
        if w is None:
            return ce
        from evofair.problems.common.losses import soft_tpr_gap

        gap = soft_tpr_gap(
            torch.softmax(logits, -1)[None], y[None], batch["g"].to(self.device)[None], len(self.p.group_values)
        )[0]
        return ce + torch.relu(w[0]) * gap


class LoraDeltaGenome(WeightsGenome):
    """A weights genome whose tensors are dense LoRA deltas ΔW of the adapted encoder matrices plus
    the classifier head (see the module docstring): the engine varies, stores and deduplicates it
    exactly as any checkpoint, and merges act on the deltas relative to the pretrained encoder."""

    name = "lora_delta"


LORA_DELTA = LoraDeltaGenome()
