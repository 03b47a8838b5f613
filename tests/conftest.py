import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def zdt_recipe():
    return {
        "name": "zdt1-small",
        "problem": {"name": "zdt1", "args": {"n_var": 10}},
        "algorithm": {"name": "nsga2", "pop_size": 20, "generations": 5},
        "operators": {"crossover": {"name": "sbx"}, "crossover_prob": 1.0, "mutation": {"name": "pm"}},
        "seed": 3,
        "hv_ref": [1.1, 1.1],
    }


def tiny_gpt2(vocab=64, n_embd=32):
    """A 2-layer GPT-2 with seeded random weights (no download): the causal LM of every LM test."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_layer=2, n_head=2, n_embd=n_embd, n_positions=512,
                     bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """`tiny_gpt2` and a byte-level BPE tokenizer trained here on a few HH-RLHF texts, saved as a
    local Hugging Face directory — the same path a user's own model takes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from evofair.problems.hyperdpo.alignment import DATA_FILE, load_hh_pairs

    texts = [p["prompt"] + p["chosen"] + p["rejected"] for p in load_hh_pairs(DATA_FILE, limit=200)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    d = tmp_path_factory.mktemp("tiny_gpt2")
    fast.save_pretrained(d)
    tiny_gpt2(vocab=len(fast)).save_pretrained(d)
    return d
