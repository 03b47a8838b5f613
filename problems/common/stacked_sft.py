"""The `sft` local search of several LoRA offspring at once, through stacked adapters.

Why: a generation holds many offspring whose local learning is the same operator with the same
arguments; `lora.stack_offspring` of them train through one forward and backward of the shared
frozen blocks (stacked_lora.py) instead of one after another. Which ones is decided once, from the
plans, by `evofair.engine.pipeline.stack_groups`, and every executor hands a worker those groups,
so `refine_together` gets at most one stack per call whichever executor runs.

Each offspring is trained exactly as `operators.refine.sft` trains it alone: its own model from
`build_model` (its own start, peft adapter and head, seeded from its genome), its own batches
from `training_batches` with its own seed, its own optimiser and gradient clipping, its own loss,
and `extract_weights` to fold it back. Only the forward is shared, so the refined genomes equal
the one-at-a-time ones up to float reassociation (tests/problems/common/test_stacked_sft.py). That
needs dropout-free training (`lora.dropout: false`, or an encoder without dropout): otherwise
`stack_size` is 1 and offspring train one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from evofair.core.individual import Weights
from evofair.core.operator import Refined, training_batches
from evofair.problems.common.devices import autocast
from evofair.problems.common.stacked_lora import dropout_free, from_peft, stack_batches, stacked_adapters
from evofair.problems.common.text_encoder import mean_pool

#: `lora.stack_offspring: null` on a GPU. On the CPU it is 1: there the matmuls of one offspring's
#: batch already keep the cores busy, and stacked was 0.86-0.92x one at a time on all-MiniLM-L6-v2
#: (benchmarks/README.md, `stacked_lora.py`); a GPU is latency-bound at one offspring's batch.
GPU_STACK = 8


def stack_size(lora, spec, args) -> int:
    """How many offspring of refine `spec` (with `args`) `lora` (a `LoraAdapterModel`) trains per
    forward: `lora.stack_offspring` for the plain `sft` operator on dropout-free training, else 1."""
    from evofair.operators.refine import sft

    size = lora.args.stack_offspring
    if size is None:
        size = 1 if lora.device.type == "cpu" else GPU_STACK
    if spec.fn is not sft or size < 2:
        return 1
    if lora.args.dropout and not dropout_free(lora.suffix):
        return 1
    return size


def _peft_layer(model, target: str):
    from peft.tuners.lora import LoraLayer

    layer = model.encoder.base_model.model.get_submodule(target)
    if not isinstance(layer, LoraLayer):
        raise RuntimeError(f"peft did not adapt {target}")
    return layer


def _inputs(lora, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states entering the lowest adapted block, mask) of one offspring's batch, as
    `_LoraClassifier.forward` gets them (cached states, or the frozen prefix of its token ids)."""
    mask = batch["attention_mask"].to(lora.device)
    hidden = batch.get("hidden")
    if hidden is None:
        hidden = lora.prefix(batch["input_ids"], mask)
    return hidden, mask


def _step(lora, encoder, models, opts, batches, grad_clip: float | None) -> list[torch.Tensor]:
    """One optimiser step of every offspring on its own batch, through one stacked forward."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    hidden, mask = stack_batches(*zip(*[_inputs(lora, b) for b in batches]))
    with autocast(hidden.device, lora.precision):
        out = encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
    pooled = mean_pool(out.float(), mask).chunk(len(models))
    losses = [lora.loss_of_logits(m, m.head(x), b) for m, x, b in zip(models, pooled, batches)]
    torch.stack(losses).sum().backward()
    for model, opt in zip(models, opts):
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
    return [loss.detach() for loss in losses]


def sft_stacked(lora, items: Sequence[tuple[Weights, int]], args) -> list[Refined]:
    """`sft(weights, args, seed=seed)` of every (weights, seed) in `items`, all in one stack."""
    from evofair.operators.refine import make_optimizer

    models = [lora.build_model(w) for w, _ in items]
    for model in models:
        model.train()
    opts = [make_optimizer([p for p in m.parameters() if p.requires_grad], args) for m in models]
    streams = [
        iter(training_batches(lora.p, seed=seed, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size))
        for _, seed in items
    ]
    adapters = {t: [from_peft(_peft_layer(m, t)) for m in models] for t in lora.targets}
    losses: list[list[torch.Tensor]] = [[] for _ in models]
    lora.suffix.eval()  # drops nothing, as each offspring alone trains (stack_size allows only that)
    with stacked_adapters(lora.suffix, adapters) as encoder:
        while True:
            batches = [next(s, None) for s in streams]
            if all(b is None for b in batches):
                break
            if any(b is None for b in batches):
                raise RuntimeError("stacked sft: offspring ran out of batches at different steps")
            for per, loss in zip(losses, _step(lora, encoder, models, opts, batches, args.grad_clip)):
                per.append(loss)
    out = []
    for model, per in zip(models, losses):
        model.eval()
        values = [float(x) for x in torch.stack(per).cpu().tolist()] if per else []
        out.append(Refined(lora.extract_weights(model), {"loss": values, "steps": len(values)}))
    return out


def refine_together(lora, spec, args, items: Sequence[tuple[Weights, int]]) -> list[Refined]:
    """Every offspring's refine, in stacks of `stack_size` (the last one smaller)."""
    size = stack_size(lora, spec, args)
    if size < 2:  # not stackable: exactly the operator, one offspring after another
        return [spec.fn(w, args, seed=seed, problem=lora.p) for w, seed in items]
    out: list[Refined] = []
    for i in range(0, len(items), size):
        out.extend(sft_stacked(lora, items[i : i + size], args))
    return out
