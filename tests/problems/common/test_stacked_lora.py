"""Stacked adapters (problems/common/stacked_lora.py) against separate peft forwards, on a tiny BERT
and a tiny Llama built here, dropout-free, float32 on CPU: the oracle is each offspring's own peft
model run alone on its own batch. Losses, the gradients of every A and B, and the adapters'
deltas after a few AdamW steps must agree to 1e-6."""

from __future__ import annotations

import copy

import pytest
import torch

from evofair.problems.common.stacked_lora import (
    StackedLoraLinear,
    dropout_free,
    from_peft,
    stack_batches,
    stacked_adapters,
)
from evofair.problems.common.text_encoder import mean_pool

S, ROWS, STEPS, TOL = 3, 4, 3, 1e-6


def _tiny(kind: str) -> tuple[torch.nn.Module, list[str]]:
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    if kind == "bert":
        cfg = BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model, names = BertModel(cfg), ("query", "value")
        targets = [f"encoder.layer.{i}.attention.self.{n}" for i in range(2) for n in names]
    else:
        cfg = LlamaConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        model, names = LlamaModel(cfg), ("q_proj", "v_proj")
        targets = [f"layers.{i}.self_attn.{n}" for i in range(2) for n in names]
    return model.eval(), targets


def _offspring(base, targets: list[str], s: int, shared_start: bool):
    """Offspring s: its own start ΔW (unless `shared_start`), a peft adapter with a non-zero B."""
    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(100 + s)
    with torch.no_grad():
        if not shared_start:
            for t in targets:
                w = model.get_submodule(t).weight
                w.add_(0.05 * torch.randn(w.shape, generator=gen))
        torch.manual_seed(s)
        peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=targets, lora_dropout=0.0))
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return peft


def _batches(s: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Offspring s's own (ids, mask, target) per step, right-padded, widths differing by offspring."""
    gen = torch.Generator().manual_seed(1000 + s)
    out = []
    for step in range(STEPS):
        width = 5 + s + step
        lengths = torch.randint(2, width + 1, (ROWS,), generator=gen)
        lengths[0] = width
        mask = (torch.arange(width)[None] < lengths[:, None]).long()
        ids = torch.randint(1, 100, (ROWS, width), generator=gen) * mask
        out.append((ids, mask, torch.randn(ROWS, 32, generator=gen)))
    return out


def _loss(hidden: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((mean_pool(hidden, mask) - target) ** 2).mean()


def _factors(peft) -> list[torch.Tensor]:
    return [p for n, p in peft.named_parameters() if "lora_" in n]


def _deltas(peft) -> list[torch.Tensor]:
    from peft.tuners.lora import LoraLayer

    return [m.get_delta_weight("default").detach() for m in peft.modules() if isinstance(m, LoraLayer)]


def _train_separately(models) -> tuple[list[list[float]], list[list[torch.Tensor]]]:
    losses, grads = [], []
    for s, peft in enumerate(models):
        opt = torch.optim.AdamW(_factors(peft), lr=1e-2)
        per, first = [], None
        for ids, mask, target in _batches(s):
            opt.zero_grad()
            loss = _loss(peft(input_ids=ids, attention_mask=mask).last_hidden_state, mask, target)
            loss.backward()
            first = first or [p.grad.clone() for p in _factors(peft)]
            per.append(float(loss.detach()))
            opt.step()
        losses.append(per)
        grads.append(first)
    return losses, grads


def _train_stacked(base, targets, models) -> tuple[list[list[float]], list[list[torch.Tensor]]]:
    from peft.tuners.lora import LoraLayer

    adapters = {}
    for t in targets:
        layers = [peft.base_model.model.get_submodule(t) for peft in models]
        assert all(isinstance(layer, LoraLayer) for layer in layers)
        adapters[t] = [from_peft(layer) for layer in layers]
    opts = [torch.optim.AdamW(_factors(peft), lr=1e-2) for peft in models]
    losses: list[list[float]] = [[] for _ in models]
    grads: list[list[torch.Tensor]] = []
    with stacked_adapters(base, adapters) as stacked:
        for step_batches in zip(*[_batches(s) for s in range(S)]):
            for opt in opts:
                opt.zero_grad()
            ids, mask = stack_batches([b[0][..., None] for b in step_batches], [b[1] for b in step_batches])
            hidden = stacked(input_ids=ids[..., 0], attention_mask=mask).last_hidden_state
            per = [_loss(h, m, b[2]) for h, m, b in zip(hidden.chunk(S), mask.chunk(S), step_batches)]
            torch.stack(per).sum().backward()
            grads = grads or [[p.grad.clone() for p in _factors(peft)] for peft in models]
            for s, (opt, loss) in enumerate(zip(opts, per)):
                losses[s].append(float(loss.detach()))
                opt.step()
    return losses, grads


@pytest.mark.parametrize("kind", ["bert", "llama"])
@pytest.mark.parametrize("shared_start", [False, True])
def test_stacked_matches_separate_forwards(kind, shared_start):
    base, targets = _tiny(kind)
    assert dropout_free(base)
    separate = [_offspring(base, targets, s, shared_start) for s in range(S)]
    stacked = [_offspring(base, targets, s, shared_start) for s in range(S)]
    want_losses, want_grads = _train_separately(separate)
    got_losses, got_grads = _train_stacked(base, targets, stacked)
    assert max(abs(a - b) for x, y in zip(want_losses, got_losses) for a, b in zip(x, y)) <= TOL
    assert len(want_grads[0]) == 2 * len(targets)
    for want, got in zip(want_grads, got_grads):
        assert max(float((a - b).abs().max()) for a, b in zip(want, got)) <= TOL
        assert min(float(g.abs().max()) for g in want) > 10 * TOL  # every factor really gets a gradient
    for a, b in zip(separate, stacked):
        for da, db in zip(_deltas(a), _deltas(b)):
            assert float(da.abs().max()) > 1e-4 and float((da - db).abs().max()) <= TOL
    # the context restored the shared base
    assert all(type(base.get_submodule(t)) is torch.nn.Linear for t in targets)


def test_slices_are_independent_adapters():
    """Each slice uses only its own adapter: a hand-computed oracle per slice."""
    torch.manual_seed(0)
    W, b = torch.randn(5, 4), torch.randn(5)
    A = [torch.randn(2, 4) for _ in range(2)]
    B = [torch.randn(5, 2) for _ in range(2)]
    from evofair.problems.common.stacked_lora import SliceAdapter

    layer = StackedLoraLinear([SliceAdapter(W + k, b, A[k], B[k], 0.5) for k in range(2)])
    x = torch.randn(2 * 3, 7, 4)
    y = layer(x)
    for k in range(2):
        xs = x[3 * k : 3 * (k + 1)]
        want = xs @ (W + k).T + b + 0.5 * xs @ (B[k] @ A[k]).T
        assert torch.allclose(y[3 * k : 3 * (k + 1)], want, atol=1e-5)
    with pytest.raises(ValueError, match="does not split"):
        layer(torch.randn(5, 4))


def test_dropout_free_sees_module_and_float_rates():
    assert not dropout_free(torch.nn.Sequential(torch.nn.Dropout(0.1)))
    assert dropout_free(torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(2, 2)))
    module = torch.nn.Linear(2, 2)
    module.attention_dropout = 0.1
    assert not dropout_free(module)
