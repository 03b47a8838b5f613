"""Parts of test_stacked_executors.py that worker processes import: the tiny LoRA problem with a
spy on `refine_together`, which appends "pid size" for each call to a file (worker processes
cannot report a monkeypatched counter back)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from evofair.problems.common.text_encoder import default_model_dir
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_bert(root: Path) -> Path:
    """A two-layer BERT with the default tokenizer, saved under `root`."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    small = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, intermediate_size=64)
    BertModel(BertConfig(**small, num_attention_heads=2, max_position_embeddings=128)).save_pretrained(root)
    for f in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / f, root / f)
    return root


class SpyBiasBios(BiasBios):
    """BiasBios, its `refine_together` calls logged to `self.spy` as "pid size" lines."""

    spy: str = ""

    def refine_together(self, spec, args, items):
        with open(self.spy, "a") as f:
            f.write(f"{os.getpid()} {len(items)}\n")
        return super().refine_together(spec, args, items)


def stackable_params(model_dir: Path, cache_dir: Path, stack: int | None, **lora) -> BiasBiosParams:
    """The LoRA genome on a tiny BERT, dropout off (what stacking needs), `stack_offspring` = `stack`."""
    return BiasBiosParams(
        genome="lora",
        model_dir=str(model_dir),
        cache_dir=str(cache_dir),
        limit=10,
        max_length=24,
        hidden=[8],
        embed_workers=1,
        local_loss="ce+tpr_gap",
        fair_weight_init=[0.5, 2.0],
        lora={"r": 2, "alpha": 4, "top_layers": 1, "dropout": False, "stack_offspring": stack, **lora},
    )


def spy_problem(model_dir: Path, cache: Path, spy: Path, stack: int) -> SpyBiasBios:
    """`stackable_params`' problem with the spy, not set up (a worker does that)."""
    problem = SpyBiasBios(stackable_params(model_dir, cache, stack))
    problem.spy = str(spy)
    return problem


def spied(spy: Path) -> list[tuple[int, int]]:
    """(pid, number of offspring) of every `refine_together` call so far."""
    if not spy.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in spy.read_text().splitlines())]
