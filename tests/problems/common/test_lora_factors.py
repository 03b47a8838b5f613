"""The `lora` genome on any Hugging Face base (a tiny BERT and a tiny Llama built here) in both
storages: targets found from the model's structure, and init → merge → mutate → refine → evaluate
end to end on CPU. The factor genome's merges are checked against the dense merges in
test_low_rank.py; here the oracle is the model itself (the folded genome predicts what the trained
peft model predicts) and the dense genome (same adapters, same predictions)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import evofair
from evofair.core.plugins import registry
from evofair.problems.common.lora_factors import LoraFactorAdapterModel
from evofair.problems.common.lora_model import attention_linears
from evofair.problems.common.low_rank import a_key, b_key, dense_key, to_dense
from evofair.problems.common.text_encoder import default_model_dir
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
from evofair.store.run_store import RunStore

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _save_with_minilm_tokenizer(model, folder):
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    root = tmp_path_factory.mktemp("bases")
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    )
    torch.manual_seed(0)
    llama = LlamaModel(
        LlamaConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    )
    return {
        "bert": _save_with_minilm_tokenizer(bert, root / "bert"),
        "llama": _save_with_minilm_tokenizer(llama, root / "llama"),
    }


def test_attention_linears_found_from_structure(tiny_models):
    from transformers import AutoModel

    found, n = attention_linears(AutoModel.from_pretrained(tiny_models["llama"]))
    assert n == 2
    assert found == [
        (i, f"layers.{i}.self_attn.{p}") for i in range(2) for p in ("q_proj", "k_proj", "v_proj", "o_proj")
    ]
    found, n = attention_linears(AutoModel.from_pretrained(tiny_models["bert"]))
    assert n == 2 and [name for i, name in found if i == 1] == [
        "encoder.layer.1.attention.self.query",
        "encoder.layer.1.attention.self.key",
        "encoder.layer.1.attention.self.value",
        "encoder.layer.1.attention.output.dense",
    ]


def _params(tmp_path, model_dir, **lora):
    return BiasBiosParams(
        genome="lora",
        model_dir=str(model_dir),
        cache_dir=str(tmp_path / "cache"),
        limit=8,
        max_length=24,
        hidden=[8],
        embed_workers=1,
        local_loss="ce+tpr_gap",
        lora={"r": 2, "alpha": 4, "top_layers": 1, **lora},
    )


@pytest.mark.parametrize("arch,targets", [("bert", ["attention"]), ("llama", ["q_proj", "v_proj"])])
def test_factor_genome_cycle_on_any_base(tmp_path, tiny_models, arch, targets):
    problem = BiasBios(_params(tmp_path, tiny_models[arch], storage="factors", targets=targets)).ensure_setup()
    assert problem.genome.name == "lora_factors" and isinstance(problem.lora, LoraFactorAdapterModel)
    want = {"bert": 4, "llama": 2}[arch]
    assert len(problem.lora.targets) == want and all(".1." in t for t in problem.lora.targets)
    sft = registry("refine").get("sft")
    args = sft.args(steps=2, lr=2e-2, optimizer="adamw", batch_size=4)
    a = sft.fn(problem.init_weights(1), args, seed=1, problem=problem).weights
    b = sft.fn(problem.init_weights(2), args, seed=2, problem=problem).weights
    t = problem.lora.targets[0]
    assert a[b_key(t)].shape[1] == 2 and float((a[b_key(t)] @ a[a_key(t)]).abs().max()) > 0  # rank r, trained
    # merge (exact stacked), mutate (on the factors), refine again (stack + cap at 2r), evaluate
    ta = registry("crossover").get("task_arithmetic")
    kids, log = problem.genome.crossover(problem, ta, [a, b], ta.args(weight=0.5), seed=3, base=problem.base_weights())
    assert kids[0][b_key(t)].shape[1] == 4 and log == {}
    torch.testing.assert_close(
        to_dense(kids[0])[dense_key(t)],
        0.5 * (to_dense(a)[dense_key(t)] + to_dense(b)[dense_key(t)]),
        atol=1e-6,
        rtol=1e-5,
    )
    ties = registry("crossover").get("ties")
    kids_t, log_t = problem.genome.crossover(
        problem, ties, [a, b], ties.args(density=0.5), seed=3, base=problem.base_weights()
    )
    assert kids_t[0][b_key(t)].shape[1] == 4 and 0 < log_t["refactor_max_rel_error"] < 1
    gauss = registry("mutation").get("gaussian")
    mutated = gauss.fn(kids[0], gauss.args(sigma=0.05, relative=True), seed=4)
    refined = sft.fn(mutated, args, seed=5, problem=problem).weights
    assert refined[b_key(t)].shape[1] == 4  # 4 + 2 stacked, truncated back to max_rank = 2r
    metrics = problem.evaluate([a, kids[0], refined], "val")
    assert metrics["error"].shape == (3,) and np.isfinite(metrics["dtpr"]).all()

    # the folded genome predicts what the trained peft model predicts
    model = problem.build_model(refined)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    problem.loss(model, next(iter(problem.train_batches(0, 4)))).backward()
    opt.step()
    model.eval()
    folded = problem.extract_weights(model)
    texts = problem.raw["test"]["text"]
    enc = problem.lora.tokenizer(texts, truncation=True, max_length=24, padding=True, return_tensors="pt")
    with torch.no_grad():
        direct = model(enc["input_ids"], enc["attention_mask"]).argmax(-1).numpy()
    np.testing.assert_array_equal(problem.predictions([folded], "test")[0], direct)
    fresh = problem.extract_weights(problem.build_model(refined))  # an untrained adapter adds nothing
    assert set(fresh) == set(refined) and all(torch.equal(fresh[k], refined[k]) for k in refined)


def test_factor_and_dense_storage_evaluate_the_same_adapters(tmp_path, tiny_models):
    factors = BiasBios(_params(tmp_path, tiny_models["llama"], storage="factors", targets=["attention"])).ensure_setup()
    dense = BiasBios(_params(tmp_path, tiny_models["llama"], targets=["attention"])).ensure_setup()
    sft = registry("refine").get("sft")
    w = sft.fn(
        factors.init_weights(1), sft.args(steps=2, lr=2e-2, optimizer="adamw", batch_size=4), seed=1, problem=factors
    ).weights
    as_dense = to_dense(w)
    for split in ("val", "test"):
        np.testing.assert_array_equal(factors.scores([w], split), dense.scores([as_dense], split))


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_factor_genome_run_end_to_end(tmp_path, tiny_models, arch):
    """A whole memetic run (NSGA-II, TIES + scalar uniform merges, Gaussian noise, SFT) on each base."""
    recipe = {
        "name": f"lora-factors-{arch}",
        "problem": {
            "name": "biasbios",
            "args": {
                **_params(tmp_path, tiny_models[arch], storage="factors", targets=["attention"]).model_dump(),
                "baselines": {"enabled": False},
            },
        },
        "algorithm": {"name": "nsga2", "pop_size": 4, "generations": 2, "n_offsprings": 4},
        "operators": {
            "crossover": [{"name": "ties", "args": {"density": 0.5}}, {"name": "uniform", "args": {"scalar": True}}],
            "crossover_prob": 1.0,
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05, "relative": True}},
            "mutation_prob": 1.0,
            "refine": {"name": "sft", "args": {"steps": 1, "optimizer": "adamw", "lr": 1e-2, "batch_size": 4}},
        },
        "seed": 1,
        "hv_ref": [0.6, 0.6],
    }
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    assert res.front
    store = RunStore(out, readonly=True)
    w = store.get_weights(res.front[0].weights_hash)
    assert not any(k.startswith("delta.") for k in w)
    assert all(w[k].shape[1] <= 4 for k in w if k.startswith("lora_B."))
    store.close()


def test_build_model_shares_the_frozen_base(tmp_path, tiny_models):
    problem = BiasBios(_params(tmp_path, tiny_models["llama"], storage="factors", targets=["attention"])).ensure_setup()
    model = problem.build_model(problem.init_weights(0))
    base = dict(problem.lora.encoder.named_parameters())
    copied = {n.removeprefix("base_model.model."): p for n, p in model.encoder.named_parameters()}
    # the frozen prefix (embeddings, lower blocks) is not part of an offspring's model at all...
    assert "embed_tokens.weight" not in copied and not any(n.startswith("layers.0.") for n in copied)
    mlp = "layers.1.mlp.gate_proj.weight"
    assert copied[mlp] is base[mlp]  # ...and its other frozen tensors are shared, not copied
    for t in problem.lora.targets:  # the adapted matrices are (W0 + ΔW lives in the copy)
        assert copied[f"{t}.base_layer.weight"] is not base[f"{t}.weight"]
