"""The LoRA genome's frozen-prefix cache and pre-tokenised tensors against
independent oracles, on a tiny BERT (2 blocks, dropout on):

- the adapted blocks fed with cached states give the full transformers model's hidden states;
- evaluation equals plain transformers (the adapted weights W₀ + ΔW loaded into a fresh
  `AutoModel`, `text_encoder.embed`, the head) for dense and factor storage;
- local learning equals a bare transformers + peft loop on the full model (frozen part in eval
  mode), and the cache-free path; whole runs give the same front with and without the cache.

Measured differences (tiny BERT, CPU, torch 2.13): exactly 0.0 on hidden states, scores and trained
weights (3 AdamW steps, steps of ~0.05): padded positions get exactly zero attention weight, so only
float32 reassociation from other batch shapes could differ; the tolerances below allow for that
on other BLAS builds and devices."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from conftest import biasbios_subset, tiny_bert

import evofair
from evofair.core.plugins import registry
from evofair.core.seeding import torch_seeded
from evofair.problems.common.classification import MLPHead, population_logits, stack_heads
from evofair.problems.common.frozen_prefix import run_prefix, suffix_view, tokenize
from evofair.problems.common.low_rank import to_dense
from evofair.problems.common.text_encoder import embed, load_encoder, mean_pool
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
from evofair.store.weights_files import weights_hash

SCORE_ATOL = 1e-6  # measured 0.0
WEIGHT_ATOL = 1e-5  # measured 0.0 after 3 AdamW steps


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefix")
    return {
        "model": tiny_bert(root / "model"),
        "data": biasbios_subset(root / "bios.jsonl", per_split=10),
        "root": root,
    }


def _problem(setting, name, **lora):
    params = BiasBiosParams(
        genome="lora",
        model_dir=str(setting["model"]),
        data_file=str(setting["data"]),
        cache_dir=str(setting["root"] / name),
        limit=10,
        max_length=32,
        hidden=[8],
        torch_threads=None,
        baselines={"enabled": False},
        lora={"r": 2, "alpha": 4, "top_layers": 1, "targets": ["query", "value"], **lora},
    )
    return BiasBios(params).ensure_setup()


@pytest.mark.parametrize("layer", [0, 1])
def test_adapted_blocks_on_cached_states_give_the_full_model(setting, layer):
    tokenizer, encoder = load_encoder(setting["model"])
    texts = ["a short one", "x", "the surgeon operated on the patient for many long hours today"]
    tok = tokenize(tokenizer, texts, max_length=32, device=torch.device("cpu"))
    with torch.no_grad():
        full = encoder(input_ids=tok.ids, attention_mask=tok.mask).last_hidden_state
        hidden = run_prefix(encoder, layer, tok.ids, tok.mask) * tok.mask[..., None]  # padding zeroed, as cached
        out = suffix_view(encoder, layer)(inputs_embeds=hidden, attention_mask=tok.mask).last_hidden_state
    real = tok.mask.bool()
    assert float((out - full)[real].abs().max()) <= SCORE_ATOL


def _trained(problem, seed=1):
    sft = registry("refine").get("sft")
    return sft.fn(
        problem.init_weights(seed),
        sft.args(steps=3, lr=2e-2, optimizer="adamw", batch_size=4),
        seed=seed,
        problem=problem,
    ).weights


def _oracle_scores(setting, problem, weights, split):
    """Plain transformers: W₀ + ΔW loaded into a fresh AutoModel, features by the full model."""
    tokenizer, encoder = load_encoder(setting["model"])
    dense = to_dense(weights) if any(k.startswith("lora_B.") for k in weights) else weights
    with torch.no_grad():
        for name, mod in encoder.named_modules():
            key = f"delta.{name}.weight"
            if key in dense:
                mod.weight += dense[key]
    X = torch.from_numpy(embed(problem.raw[split]["text"], tokenizer, encoder, max_length=32, batch_size=3))
    head = {k[len("head.") :]: v for k, v in weights.items() if k.startswith("head.")}
    return torch.softmax(population_logits(stack_heads([head], 2), X), -1)[0].numpy()


@pytest.mark.parametrize("storage", ["dense", "factors"])
def test_evaluation_equals_plain_transformers(setting, storage):
    problem = _problem(setting, f"eval-{storage}", storage=storage)
    assert problem.lora.info["prefix_cache"] and problem.lora.states is not None
    w = _trained(problem)
    for split in ("val", "test"):
        np.testing.assert_allclose(
            problem.scores([w], split)[0], _oracle_scores(setting, problem, w, split), atol=SCORE_ATOL, rtol=0
        )


def _bare_sft(setting, problem, weights, *, seed, steps, batch_size, lr):
    """The same fine-tune as `sft` written with transformers + peft only, on the full model."""
    from peft import LoraConfig, get_peft_model

    tokenizer, encoder = load_encoder(setting["model"])
    targets = problem.lora.targets
    with torch.no_grad():
        for t in targets:
            encoder.get_submodule(t).weight += weights[f"delta.{t}.weight"]
    with torch_seeded(int(weights_hash(weights)[:15], 16)):
        model = get_peft_model(encoder, LoraConfig(r=2, lora_alpha=4, target_modules=targets, lora_dropout=0.0))
    head = MLPHead(problem.sizes)
    head.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("head.")})
    model.train()
    base = model.base_model.model
    base.embeddings.eval()
    for i in range(problem.lora.lowest):  # the frozen part runs in eval mode
        base.encoder.layer[i].eval()
    opt = torch.optim.AdamW(
        [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad], lr=lr, weight_decay=0.01
    )
    texts, y = problem.raw["train"]["text"], torch.as_tensor(problem.splits["train"].y)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    with torch_seeded(seed):
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            enc = tokenizer([texts[j] for j in idx], truncation=True, max_length=32, padding=True, return_tensors="pt")
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            loss = torch.nn.functional.cross_entropy(head(mean_pool(out, enc["attention_mask"])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    deltas = {
        f"delta.{t}.weight": weights[f"delta.{t}.weight"]
        + model.base_model.model.get_submodule(t).get_delta_weight("default").detach()
        for t in targets
    }
    return {**deltas, **{f"head.{k}": v.detach() for k, v in head.state_dict().items()}}


@pytest.mark.parametrize("top_layers", [1, 2])  # 2: the lowest adapted block is 0, the cache is the embeddings
def test_local_learning_equals_a_bare_peft_loop(setting, top_layers):
    cached = _problem(setting, f"train-{top_layers}", top_layers=top_layers)
    plain = _problem(setting, f"train-{top_layers}", top_layers=top_layers, prefix_cache=False)
    assert plain.lora.states is None and cached.lora.lowest == 2 - top_layers
    start = cached.init_weights(3)
    sft = registry("refine").get("sft")
    args = sft.args(steps=3, lr=2e-2, optimizer="adamw", batch_size=4)
    got = sft.fn(start, args, seed=5, problem=cached).weights
    without = sft.fn(start, args, seed=5, problem=plain).weights
    oracle = _bare_sft(setting, cached, start, seed=5, steps=3, batch_size=4, lr=2e-2)
    assert set(got) == set(oracle)
    for k in oracle:
        assert float((got[k] - start[k]).abs().max()) > 0 or k.endswith("bias")
        np.testing.assert_allclose(got[k].numpy(), oracle[k].numpy(), atol=WEIGHT_ATOL, rtol=0, err_msg=k)
        np.testing.assert_allclose(got[k].numpy(), without[k].numpy(), atol=WEIGHT_ATOL, rtol=0, err_msg=k)


def test_prefix_cache_is_content_addressed(setting):
    first = _problem(setting, "hits")
    assert first.lora.info["prefix_hit"] is False
    again = _problem(setting, "hits")
    assert again.lora.info["prefix_hit"] is True
    for split in ("train", "val", "test"):
        assert torch.equal(first.lora.states[split].flat, again.lora.states[split].flat)
    lower = _problem(setting, "hits", top_layers=2)  # another layer index: another entry
    assert lower.lora.info["prefix_hit"] is False and lower.lora.info["prefix_key"] != first.lora.info["prefix_key"]
    assert not list((setting["root"] / "hits").rglob("*.pkl"))


def _front(out):
    with open(out / "front.csv") as fh:
        return [{k: v for k, v in row.items() if k != "id"} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("storage", ["dense", "factors"])
def test_run_front_equals_the_full_model_path(setting, tmp_path, storage):
    fronts = []
    for cache in (True, False):
        recipe = {
            "name": "prefix",
            "seed": 2,
            "hv_ref": [0.6, 0.6],
            "problem": {
                "name": "biasbios",
                "args": {
                    "genome": "lora",
                    "model_dir": str(setting["model"]),
                    "data_file": str(setting["data"]),
                    "cache_dir": str(tmp_path / "cache"),
                    "limit": 10,
                    "max_length": 32,
                    "hidden": [8],
                    "torch_threads": None,
                    "baselines": {"enabled": False},
                    "lora": {"r": 2, "alpha": 4, "top_layers": 1, "storage": storage, "prefix_cache": cache},
                },
            },
            "algorithm": {"name": "nsga2", "pop_size": 4, "generations": 2, "n_offsprings": 4},
            "operators": {
                "crossover": {"name": "uniform", "args": {"scalar": True}},
                "crossover_prob": 1.0,
                "mutation": {"name": "gaussian", "args": {"sigma": 0.05, "relative": True}},
                "refine": {"name": "sft", "args": {"steps": 2, "optimizer": "adamw", "lr": 1e-2, "batch_size": 4}},
            },
        }
        out = tmp_path / f"run-{cache}"
        evofair.run(recipe, out, progress=False)
        fronts.append(_front(out))
    assert fronts[0] == fronts[1]
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
