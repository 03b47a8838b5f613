"""A user's checkpoints as merge anchors (problems/merging/checkpoints.py), on tiny models built here.

The oracles are the libraries that wrote the checkpoints: a saved model must load to its in-memory
`state_dict()` exactly, and a PEFT adapter over its base must equal peft's own `merge_and_unload()`
tensor for tensor — with modules_to_save, rsLoRA, rank/alpha patterns, embedding LoRA and GPT-2's
Conv1D layers (fan_in_fan_out, tied lm_head). Every refusal is one line naming the path or anchor.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from evofair.errors import UserError
from evofair.problems.merging.checkpoints import (
    CheckpointSpec,
    checkpoint_kind,
    load_anchors,
    load_checkpoint,
    peft_dense_deltas,
    resolve_path,
)


def _bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50)
    return BertForSequenceClassification(cfg).eval()


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=32)).eval()


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50)
    return LlamaForCausalLM(cfg).eval()


def _state(model) -> dict[str, torch.Tensor]:
    """A copy that keeps tied tensors tied (GPT-2's lm_head is wte), as a model's state_dict has them."""
    return copy.deepcopy({k: v.detach() for k, v in model.state_dict().items()})


def _one_line(excinfo, *parts: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


def _same(got: dict, want: dict, atol: float = 0.0) -> None:
    assert list(got) == list(want) if atol == 0.0 else set(got) == set(want)
    for k, v in want.items():
        assert got[k].shape == v.shape and got[k].dtype == v.dtype, k
        assert torch.allclose(got[k], v, atol=atol, rtol=0) if atol else torch.equal(got[k], v), k


@pytest.fixture(scope="module")
def bert():
    return _bert()


@pytest.fixture(scope="module")
def saved(bert, tmp_path_factory):
    """The BERT as a safetensors file, a one-file HF folder and a sharded HF folder."""
    root = tmp_path_factory.mktemp("saved")
    save_file({k: v.contiguous() for k, v in bert.state_dict().items()}, root / "model.safetensors")
    bert.save_pretrained(root / "single")
    bert.save_pretrained(root / "sharded", max_shard_size="20KB")
    return root


def _adapter(model, folder, **lora):
    """A LoRA adapter with every trainable tensor perturbed (peft starts B, or an embedding's A, at
    zero: ΔW would be 0 and prove nothing; modules_to_save and `bias: all` tensors change too);
    returns peft's own merge of it as the oracle."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, lora_alpha=4, **lora))
        with torch.no_grad():
            for p in pm.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p))
        pm.save_pretrained(folder)
        return _state(pm.merge_and_unload())


@pytest.mark.parametrize("where", ["model.safetensors", "single", "sharded"])
def test_saved_models_load_to_their_state_dict(bert, saved, where):
    path = saved / where
    if where == "sharded":
        assert len(json.loads((path / "model.safetensors.index.json").read_text())["weight_map"]) > 0
        assert len(list(path.glob("model-*-of-*.safetensors"))) > 1
    assert checkpoint_kind(path) == ("safetensors" if where.endswith(".safetensors") else "hf")
    got = load_checkpoint(CheckpointSpec(path=str(path)))
    _same(dict(sorted(got.items())), dict(sorted(bert.state_dict().items())))


def test_prefix_keeps_just_those_tensors(bert, saved):
    want = {k: v for k, v in bert.state_dict().items() if k.startswith("classifier.")}
    for where in ("model.safetensors", "single", "sharded"):
        got = load_checkpoint(CheckpointSpec(path=str(saved / where), prefix="classifier."))
        _same(dict(sorted(got.items())), dict(sorted(want.items())))
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path=str(saved / "single"), prefix="nothing."))
    _one_line(e, str(saved / "single"), "'nothing.'")


Q = "bert.encoder.layer.0.attention.self.query"
# case: (model, LoRA config, keys the merge must change)
PEFT_CASES = {
    "seq_cls_embedding": (
        _bert,
        dict(target_modules=["query", "value", "word_embeddings"], task_type="SEQ_CLS"),
        ["bert.embeddings.word_embeddings.weight", "classifier.weight", f"{Q}.weight"],
    ),
    "rslora_bias_all": (
        _bert,
        dict(target_modules=["query", "key", "dense"], use_rslora=True, bias="all"),
        ["bert.pooler.dense.weight", "bert.encoder.layer.0.output.dense.weight", f"{Q}.bias"],
    ),
    "patterns": (
        _bert,
        dict(target_modules=["query", "value", "dense"], rank_pattern={"query": 3}, alpha_pattern={"value": 8}),
        [f"{Q}.weight", "bert.encoder.layer.0.attention.self.value.weight"],
    ),
    # peft saves embed_tokens whole (save_embedding_layers="auto") beside its LoRA factors
    "llama_saved_embedding": (
        _llama,
        dict(target_modules=["embed_tokens", "q_proj", "o_proj"]),
        ["model.embed_tokens.weight", "model.layers.0.self_attn.o_proj.weight"],
    ),
    "gpt2_conv1d_tied": (
        _gpt2,
        dict(target_modules=["c_attn", "c_proj", "c_fc", "wte"], fan_in_fan_out=True),
        ["transformer.wte.weight", "lm_head.weight", "transformer.h.0.attn.c_proj.weight"],
    ),
}


@pytest.mark.parametrize("case", list(PEFT_CASES))
def test_peft_adapter_equals_peft_merge(case, tmp_path):
    make, lora, must_change = PEFT_CASES[case]
    model = make()
    base = _state(model)
    oracle = _adapter(model, tmp_path / "adapter", **lora)
    assert checkpoint_kind(tmp_path / "adapter") == "peft"
    got = load_checkpoint(CheckpointSpec(path="adapter"), str(tmp_path), base=base)
    _same(got, oracle, atol=1e-6)
    changed = {k for k in base if not torch.equal(base[k], oracle[k])}
    assert set(must_change) <= changed and all(not torch.equal(got[k], base[k]) for k in changed)
    if case == "llama_saved_embedding":
        with safe_open(str(tmp_path / "adapter" / "adapter_model.safetensors"), framework="pt") as f:
            assert "base_model.model.model.embed_tokens.base_layer.weight" in f.keys()
    if case == "gpt2_conv1d_tied":
        assert got["lm_head.weight"] is got["transformer.wte.weight"]


def test_peft_dense_deltas(tmp_path):
    model = _bert()
    base = _state(model)
    oracle = _adapter(model, tmp_path / "plain", target_modules=["query", "value"])
    deltas = peft_dense_deltas(tmp_path / "plain")
    assert set(deltas) == {f"bert.encoder.layer.0.attention.self.{m}.weight" for m in ("query", "value")}
    for k, d in deltas.items():
        assert torch.allclose(base[k] + d, oracle[k], atol=1e-6, rtol=0)
    # a SEQ_CLS adapter saves the whole classifier: as a delta it needs the base
    _adapter(model, tmp_path / "cls", target_modules=["query"], task_type="SEQ_CLS")
    with pytest.raises(UserError) as e:
        peft_dense_deltas(tmp_path / "cls")
    _one_line(e, str(tmp_path / "cls"), "classifier")
    deltas = peft_dense_deltas(tmp_path / "cls", base=base)
    assert {"classifier.weight", "classifier.bias"} <= set(deltas)


def test_peft_needs_a_matching_base(tmp_path):
    model = _bert()
    _adapter(model, tmp_path / "adapter", target_modules=["query"])
    spec = CheckpointSpec(path=str(tmp_path / "adapter"))
    with pytest.raises(UserError) as e:
        load_checkpoint(spec)
    _one_line(e, str(tmp_path / "adapter"), "base")
    key = "bert.encoder.layer.0.attention.self.query.weight"
    for broken in ({k: v for k, v in _state(model).items() if k != key}, {**_state(model), key: torch.zeros(3, 3)}):
        with pytest.raises(UserError) as e:
            load_checkpoint(spec, base=broken)
        _one_line(e, str(tmp_path / "adapter"), key)
    got = load_checkpoint(CheckpointSpec(path=str(tmp_path / "adapter"), prefix="classifier."), base=_state(model))
    assert set(got) == {"classifier.weight", "classifier.bias"}


def test_dora_is_refused(tmp_path):
    _adapter(_bert(), tmp_path / "dora", target_modules=["query"], use_dora=True)
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path=str(tmp_path / "dora")), base=_state(_bert()))
    _one_line(e, str(tmp_path / "dora"), "use_dora", "not supported")


def test_pickles_are_never_read(bert, tmp_path):
    folder = tmp_path / "bin_only"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save(bert.state_dict(), folder / "pytorch_model.bin")
    for path in (folder, folder / "pytorch_model.bin"):
        with pytest.raises(UserError) as e:
            load_checkpoint(CheckpointSpec(path=str(path)))
        _one_line(e, str(path), "only safetensors", "safe_serialization=True")
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path=str(folder), kind="hf"))
    _one_line(e, str(folder), "only safetensors")


def test_missing_and_foreign_paths(tmp_path, monkeypatch):
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path="no/such/ckpt.safetensors"), str(tmp_path))
    _one_line(e, "no/such/ckpt.safetensors", "not found")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path=str(tmp_path / "empty")))
    _one_line(e, str(tmp_path / "empty"), "adapter_config.json", "model.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError) as e:
        load_checkpoint(CheckpointSpec(path=str(tmp_path / "junk.safetensors")))
    _one_line(e, str(tmp_path / "junk.safetensors"), "safetensors")
    # relative paths: beside the recipe first, then the working directory
    (tmp_path / "recipe").mkdir()
    (tmp_path / "cwd").mkdir()
    for folder in ("recipe", "cwd"):
        save_file({"w": torch.zeros(1)}, tmp_path / folder / "a.safetensors")
    save_file({"w": torch.zeros(1)}, tmp_path / "cwd" / "b.safetensors")
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_path("a.safetensors", str(tmp_path / "recipe")) == tmp_path / "recipe" / "a.safetensors"
    assert resolve_path("b.safetensors", str(tmp_path / "recipe")).resolve() == tmp_path / "cwd" / "b.safetensors"


def test_anchors_must_line_up(tmp_path):
    w = {"a.weight": torch.randn(2, 3), "ids": torch.arange(4)}
    variants = {
        "same": {k: v + 1 if v.is_floating_point() else v for k, v in w.items()},
        "missing": {"ids": w["ids"]},
        "extra": {**w, "b.weight": torch.zeros(1)},
        "shape": {**w, "a.weight": torch.zeros(3, 2)},
        "ints": {**w, "ids": torch.arange(4) + 1},
    }
    save_file(w, tmp_path / "first.safetensors")
    for name, v in variants.items():
        save_file(v, tmp_path / f"{name}.safetensors")
    spec = lambda name: CheckpointSpec(path=f"{name}.safetensors")
    anchors = load_anchors([spec("first"), spec("same")], str(tmp_path))
    assert len(anchors) == 2 and torch.equal(anchors[1]["a.weight"], w["a.weight"] + 1)
    for name, key in (("missing", "a.weight"), ("extra", "b.weight"), ("shape", "a.weight"), ("ints", "ids")):
        with pytest.raises(UserError) as e:
            load_anchors([spec("first"), spec("same"), spec(name)], str(tmp_path))
        _one_line(e, "anchors[2]", f"{name}.safetensors", key)
    with pytest.raises(UserError) as e:
        load_anchors([spec("first")], str(tmp_path))
    _one_line(e, "anchors", "at least 2")
    with pytest.raises(UserError) as e:
        load_anchors([spec("first"), spec("absent")], str(tmp_path))
    _one_line(e, "anchors[1]", "absent.safetensors")


def test_anchors_mix_models_and_adapters(bert, saved, tmp_path):
    """A fine-tuned model and an adapter over the same base line up as two anchors."""
    base = _state(bert)
    oracle = _adapter(bert, tmp_path / "adapter", target_modules=["query", "value"], task_type="SEQ_CLS")
    specs = [CheckpointSpec(path=str(saved / "single")), CheckpointSpec(path="adapter", kind="peft")]
    first, second = load_anchors(specs, str(tmp_path), base=base)
    _same(dict(sorted(first.items())), dict(sorted(base.items())))
    _same(second, oracle, atol=1e-6)
    with pytest.raises(UserError) as e:
        load_anchors(specs, str(tmp_path))
    _one_line(e, "anchors[1]", str(tmp_path / "adapter"), "base")
