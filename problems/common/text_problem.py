"""Classification over a text encoder, with the MLP head or LoRA adapters on the encoder as genome.

Why one class serves both genomes: a recipe picks the genome with an argument (biasbios
`genome: lora`, fair_classification `model.kind: lora`), and the engine builds the registered
problem class from its arguments. So the choice is made once, at construction, from those
arguments (`lora_args`): it sets the problem's `genome` (what the engine varies and stores:
`LoraDeltaGenome` or `LoraFactorGenome`), and `setup` builds the `LoraAdapterModel` (`self.lora`)
that then answers the genome methods (initial and base weights, predictions, scores, the training
contract, the export). With the head genome those methods are `FeatureClassificationProblem`'s own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from pydantic import Field

from evofair.core.genome import Genome
from evofair.core.individual import Weights
from evofair.core.registry import Args
from evofair.problems.common.classification import FeatureClassificationProblem
from evofair.problems.common.lora_factors import LORA_FACTORS, LoraFactorAdapterModel
from evofair.problems.common.lora_model import LORA_DELTA, LoraAdapterModel

P = ParamSpec("P")
R = TypeVar("R")


class LoraArgs(Args):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha (scaling = alpha / r)")
    top_layers: int = Field(2, ge=1, description="adapt this many of the encoder's top layers")
    targets: list[str] = Field(
        default_factory=lambda: ["query", "value"],
        min_length=1,
        description="names of the nn.Linear to adapt inside the attention blocks "
        "(e.g. [q_proj, v_proj] for Llama), or [attention] for all of them",
    )
    storage: Literal["dense", "factors"] = Field(
        "dense", description="dense: ΔW per matrix; factors: LoRA's B, A per matrix (problems/common/lora_factors.py)"
    )
    max_rank: int | None = Field(None, ge=1, description="factors: rank cap after merges and local learning (None: 2r)")
    svd: Literal["exact", "randomized"] = Field(
        "exact", description="factors: SVD used to re-factorise TIES/DARE/SLERP/element-wise merges"
    )
    prefix_cache: bool = Field(
        True,
        description="run the frozen blocks below the lowest adapted one once per run "
        "and cache their output (problems/common/frozen_prefix.py)",
    )
    eval_batch_size: int = Field(
        64,
        ge=1,
        description="texts per batch when evaluating offspring and computing the frozen prefix (length-sorted)",
    )
    dropout: bool = Field(
        True,
        description="train the adapted blocks with the encoder's own dropout; false: without "
        "(what `stack_offspring` needs when the encoder has dropout)",
    )
    stack_offspring: int | None = Field(
        None,
        ge=1,
        description="offspring whose `sft` local learning shares one forward of the frozen encoder "
        "when a worker realises several (stacked adapters, problems/common/stacked_sft.py; only with "
        "dropout-free training; None: 8 on a GPU, 1 on the CPU, where stacking does not pay)",
    )


#: `lora.storage` → (the genome the engine varies and stores, the adapter model that computes with it)
LORA_STORAGE: dict[str, tuple[Genome, type[LoraAdapterModel]]] = {
    "dense": (LORA_DELTA, LoraAdapterModel),
    "factors": (LORA_FACTORS, LoraFactorAdapterModel),
}


def _lora_or_head(head_method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """The problem method `head_method` for the head genome; for a LoRA genome, the method of the
    same name of the problem's `LoraAdapterModel`."""
    name = head_method.__name__

    @functools.wraps(head_method)
    def method(self: TextClassificationProblem, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.lora_args is None:
            return head_method(self, *args, **kwargs)
        return getattr(self.lora, name)(*args, **kwargs)

    return method


class TextClassificationProblem(FeatureClassificationProblem):
    """A `FeatureClassificationProblem` whose features come from a Hugging Face text encoder.

    A subclass gives `lora_args` (from its own arguments), `model_dir`, `text_max_length` and
    `cache_dir`, and fills `raw` ({split: {"text": [...]}}) in `load_splits`: the LoRA adapter
    model tokenises those texts."""

    raw: dict[str, dict[str, list]]
    lora: LoraAdapterModel  # built by `setup`, only when the genome is LoRA adapters

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        if self.lora_args is not None:
            self.genome = LORA_STORAGE[self.lora_args.storage][0]

    @property
    def lora_args(self) -> LoraArgs | None:
        """The LoRA settings when the genome is LoRA adapters on the encoder; None for the head genome."""
        raise NotImplementedError

    @property
    def model_dir(self) -> Path:
        """The Hugging Face encoder folder."""
        raise NotImplementedError

    @property
    def text_max_length(self) -> int:
        """Tokens per text, for the features and the LoRA genome alike."""
        raise NotImplementedError

    @property
    def cache_dir(self) -> Path | None:
        """The feature cache; the LoRA genome's frozen-prefix cache goes beside it (None: the default)."""
        return None

    def setup(self) -> None:
        super().setup()
        if self.lora_args is not None:
            self.lora = LORA_STORAGE[self.lora_args.storage][1](self)

    # -- the genome methods: the adapter model's for a LoRA genome, the head genome's otherwise ------
    base_weights = _lora_or_head(FeatureClassificationProblem.base_weights)
    init_weights = _lora_or_head(FeatureClassificationProblem.init_weights)
    predictions = _lora_or_head(FeatureClassificationProblem.predictions)
    scores = _lora_or_head(FeatureClassificationProblem.scores)
    build_model = _lora_or_head(FeatureClassificationProblem.build_model)
    extract_weights = _lora_or_head(FeatureClassificationProblem.extract_weights)
    train_batches = _lora_or_head(FeatureClassificationProblem.train_batches)
    loss = _lora_or_head(FeatureClassificationProblem.loss)

    # -- several offspring's local learning at once (evofair.engine.pipeline.realise_all) -----------
    def refine_stack(self, spec, args) -> int:
        """Offspring of refine `spec` trained through one forward: the LoRA genome's stack, else 1."""
        return 1 if self.lora_args is None else self.lora.refine_stack(spec, args)

    def refine_together(self, spec, args, items):
        """`spec.fn(weights, args, seed=seed)` of every (weights, seed) in `items` (LoRA genome only)."""
        return self.lora.refine_together(spec, args, items)

    def export_model(self, weights: Weights, path: Path) -> dict[str, Any] | None:
        """`evofair export`'s hook: for a LoRA genome a PEFT adapter, the merged encoder and the head
        (hf_export.py); for the head genome whatever `export_head` writes."""
        if self.lora_args is None:
            return self.export_head(weights, path)
        from evofair.problems.common.hf_export import export_lora

        return export_lora(self, weights, path)

    def export_head(self, weights: Weights, path: Path) -> dict[str, Any] | None:
        """A head genome's export; None (nothing beyond the genome file) unless a problem writes one."""
        return None
