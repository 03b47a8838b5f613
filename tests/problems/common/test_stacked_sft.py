"""Stacked local learning wired into the `lora` genome (problems/common/stacked_sft.py): a worker
that realises several offspring (`pipeline.realise_all`, the serial executor) trains them through
one forward, and every offspring, its refine log and its metrics equal the one-at-a-time path
(`pipeline.realise`, `lora.stack_offspring: 1`), the oracle, to 1e-6."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from stacking_parts import stackable_params

from evofair.api import run as run_recipe
from evofair.core.plugins import registry
from evofair.engine.pipeline import GenomeRef, OpCall, Operators, Plan, realise, realise_all
from evofair.problems.common import stacked_sft
from evofair.problems.common.text_encoder import default_model_dir
from evofair.problems.fapareto.biasbios import BiasBios
from evofair.store.run_store import RunStore

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SFT = {"steps": 3, "optimizer": "adamw", "lr": 2e-2, "batch_size": 4, "grad_clip": 1.0}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    root = tmp_path_factory.mktemp("bases")
    small = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, intermediate_size=64)
    torch.manual_seed(0)  # BERT keeps its dropout (0.1): `lora.dropout: false` turns it off
    models = {
        "bert": BertModel(BertConfig(**small, num_attention_heads=2, max_position_embeddings=128)),
        "llama": LlamaModel(LlamaConfig(**small, num_attention_heads=4, num_key_value_heads=2)),
    }
    for name, model in models.items():
        model.save_pretrained(root / name)
        for f in TOKENIZER_FILES:
            shutil.copy(default_model_dir() / f, root / name / f)
    return {name: root / name for name in models}


def _problem(tmp_path, model_dir, stack: int | None, **lora) -> BiasBios:
    return BiasBios(stackable_params(model_dir, tmp_path / "cache", stack, **lora)).ensure_setup()


def _plans() -> list[Plan]:
    """One generation: two fresh offspring and three children of two parents (merge, noise)."""
    refine = [OpCall("sft", SFT, seed=10 + i) for i in range(5)]
    parents = (GenomeRef("p1", "k1"), GenomeRef("p2", "k2"))
    noise = OpCall("gaussian", {"sigma": 0.05, "relative": True}, seed=3)
    return [
        Plan(init=OpCall("init", seed=1), refine=refine[0]),
        Plan(init=OpCall("init", seed=2), refine=refine[1]),
        Plan(parents, crossover=OpCall("uniform", {}, seed=4, child=0), mutation=noise, refine=refine[2]),
        Plan(parents, crossover=OpCall("uniform", {}, seed=4, child=1), refine=refine[3]),
        Plan(parents[:1], mutation=noise, refine=refine[4]),
    ]


@pytest.mark.parametrize(
    "arch,lora", [("bert", {}), ("llama", {"storage": "factors", "prefix_cache": False, "targets": ["attention"]})]
)
def test_stacked_generation_equals_one_at_a_time(tmp_path, tiny_models, arch, lora, monkeypatch):
    stacked = _problem(tmp_path, tiny_models[arch], 3, **lora)
    single = _problem(tmp_path, tiny_models[arch], 1, **lora)
    sft = registry("refine").get("sft")
    parents = {
        "k1": sft.fn(single.init_weights(7), sft.args(**SFT), seed=7, problem=single).weights,
        "k2": sft.fn(single.init_weights(8), sft.args(**SFT), seed=8, problem=single).weights,
    }
    stacks: list[int] = []
    inner = stacked_sft.sft_stacked
    monkeypatch.setattr(
        stacked_sft, "sft_stacked", lambda lora, items, args: stacks.append(len(items)) or inner(lora, items, args)
    )
    ops, plans = Operators.load(), _plans()
    got = realise_all(plans, lambda p: [parents[r.key] for r in p.parents], stacked, ops)
    want = [realise(p, [parents[r.key] for r in p.parents], single, ops) for p in plans]
    assert stacks == [3, 2]  # five offspring: one stack of three, one of two
    for g, w in zip(got, want):
        assert g.log.keys() == w.log.keys() and g.log["refine"]["steps"] == 3
        np.testing.assert_allclose(g.log["refine"]["loss"], w.log["refine"]["loss"], atol=1e-6, rtol=0)
        assert set(g.weights) == set(w.weights)
        assert max(float((g.weights[k] - w.weights[k]).abs().max()) for k in w.weights) <= 1e-6
    assert len({tuple(r.log["refine"]["loss"]) for r in got}) == len(got)  # each trained on its own data
    for split in ("val", "test"):
        a, b = stacked.evaluate([r.weights for r in got], split), single.evaluate([r.weights for r in want], split)
        for name in b:
            np.testing.assert_allclose(a[name], b[name], atol=1e-6, rtol=0)
        np.testing.assert_allclose(
            stacked.scores([r.weights for r in got], split), single.scores([r.weights for r in want], split), atol=1e-6
        )


def test_stacking_only_where_it_is_exact(tmp_path, tiny_models):
    sft = registry("refine").get("sft")
    other = SimpleNamespace(fn=lambda *a, **k: None, args=sft.args)  # any refine but `sft` itself
    args = sft.args(**SFT)
    assert _problem(tmp_path, tiny_models["bert"], 4).refine_stack(sft, args) == 4
    assert _problem(tmp_path, tiny_models["bert"], None).refine_stack(sft, args) == 1  # default on the CPU
    llama = _problem(tmp_path, tiny_models["llama"], 4, dropout=True, targets=["attention"])
    assert llama.refine_stack(sft, args) == 4  # Llama has no dropout: stacked even with `dropout: true`
    with_dropout = _problem(tmp_path, tiny_models["bert"], 4, dropout=True)
    assert with_dropout.refine_stack(sft, args) == 1  # BERT's dropout would differ: one at a time
    assert with_dropout.refine_stack(other, other.args()) == 1
    w = with_dropout.init_weights(1)
    (alone,) = with_dropout.refine_together(sft, args, [(w, 5)])
    ref = sft.fn(w, args, seed=5, problem=with_dropout)
    assert alone.log == ref.log and all(torch.equal(alone.weights[k], ref.weights[k]) for k in w)


def test_serial_run_front_is_the_same_stacked_or_not(tmp_path, tiny_models, monkeypatch):
    """A whole run through the serial executor: the same individuals, the same metrics."""
    stacks: list[int] = []
    inner = stacked_sft.sft_stacked
    monkeypatch.setattr(
        stacked_sft, "sft_stacked", lambda lora, items, args: stacks.append(len(items)) or inner(lora, items, args)
    )
    fronts = []
    for stack in (1, 4):
        params = _problem(tmp_path, tiny_models["bert"], stack).params.model_dump()
        recipe = {
            "name": f"stacked-{stack}",
            "problem": {"name": "biasbios", "args": {**params, "baselines": {"enabled": False}}},
            "algorithm": {"name": "nsga2", "pop_size": 4, "generations": 2, "n_offsprings": 4},
            "operators": {
                "crossover": [{"name": "uniform", "args": {"scalar": True}}],
                "crossover_prob": 1.0,
                "mutation": {"name": "gaussian", "args": {"sigma": 0.05, "relative": True}},
                "refine": {"name": "sft", "args": {**SFT, "steps": 2}},
            },
            "seed": 1,
            "hv_ref": [0.6, 0.6],
        }
        run_recipe(recipe, tmp_path / f"run{stack}", progress=False)
        store = RunStore(tmp_path / f"run{stack}", readonly=True)
        fronts.append({ind.id: ind.metrics for ind in store.individuals()})
        store.close()
    assert stacks == [4, 4]  # the stacked run: each generation's four offspring in one stack
    assert fronts[0].keys() == fronts[1].keys() and len(fronts[0]) >= 4
    for iid, metrics in fronts[0].items():
        for split, per in metrics.items():
            for name, value in per.items():
                assert abs(value - fronts[1][iid][split][name]) <= 1e-6, (iid, split, name)
