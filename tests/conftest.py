import os
import re
from functools import cache
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

#: a test file that names Ray (case-insensitive, `ray_loopback` included) may start a Ray cluster
_NAMES_RAY = re.compile(r"(?i)\bray(_\w+)?\b")


@cache
def _names_ray(path: Path) -> bool:
    return bool(_NAMES_RAY.search(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module", autouse=True)
def _one_ray_module_at_a_time(request, tmp_path_factory):
    """Under `-n N` (pytest-xdist, `--dist loadfile` in pyproject.toml) each test file runs on one
    worker, so its module fixtures are built once as in a serial run; a file that names Ray holds an
    exclusive lock for as long as it runs (set up before its other module fixtures, released after
    them), so two Ray clusters never start at once. The lock lies next to the workers' temporary
    folders, which all workers of a run share."""
    if not _names_ray(Path(str(request.node.fspath))):
        yield
        return
    import fcntl

    with open(tmp_path_factory.getbasetemp().parent / "evofair-ray-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per CPU this process may run on (its affinity, not the machine's
    count): on a machine that lends the suite one core, one worker."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    cfg = GPT2Config(
        vocab_size=vocab,
        n_layer=2,
        n_head=2,
        n_embd=n_embd,
        n_positions=512,
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
    )
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """`tiny_gpt2` and a byte-level BPE tokenizer trained here on a few HH-RLHF texts, saved as a
    local Hugging Face directory — the same path a user's own model takes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from evofair.problems.common.hh_rlhf import DATA_FILE, load_hh_pairs

    texts = [p["prompt"] + p["chosen"] + p["rejected"] for p in load_hh_pairs(DATA_FILE, limit=200)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<unk>", "<pad>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    d = tmp_path_factory.mktemp("tiny_gpt2")
    fast.save_pretrained(d)
    tiny_gpt2(vocab=len(fast)).save_pretrained(d)
    return d


def tiny_bert(folder, seed=0):
    """A 2-layer random BERT (hidden 32) with all-MiniLM-L6-v2's tokenizer: a text encoder that is
    fast to embed with and to fine-tune, saved as a Hugging Face folder."""
    import shutil

    from transformers import BertConfig, BertModel

    from evofair.problems.common.text_encoder import default_model_dir

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(default_model_dir() / name, folder / name)
    return folder


def biasbios_subset(path, per_split=8, edit=None):
    """The shipped BiasBios file cut to the first `per_split` + 2 bios of each split (tests pass
    limit=per_split), written to `path`; `edit(split, i, row)` may change a row."""
    import gzip
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"
    rows, seen = [], {}
    for line in gzip.decompress(data.read_bytes()).decode("utf-8").split("\n"):  # not splitlines(): bios contain U+2028
        if not line:
            continue
        row = json.loads(line)
        i = seen.get(row["split"], 0)
        if i < per_split + 2:  # two more than used with limit=per_split
            if edit:
                edit(row["split"], i, row)
            rows.append(row)
        seen[row["split"]] = i + 1
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def one_error_line(capsys, argv, out):
    """Run the CLI in-process; assert exit 2, exactly one `evofair: error:` line, no traceback and
    no `out` folder; return that line."""
    from evofair.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: "), err
    assert "Traceback" not in err
    assert not out.exists()
    return lines[0]


def cli_subprocess(*args, env=None, check=True):
    """`python -m evofair.cli ARGS` in a fresh process (kills, failpoints); stderr on failure."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "evofair.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-2000:])
    return proc
