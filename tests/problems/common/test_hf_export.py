"""The LoRA genome exported the Hugging Face way (problems/common/hf_export.py): the adapter's
factors against numpy's SVD, and a tiny LoRA run exported and reloaded with plain transformers and
peft (no evofair code on the loading side) reproducing the stored test error with the same predictions."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import one_error_line, tiny_bert

import evofair
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.common.hf_export import adapter_factors
from evofair.store.run_store import RunStore

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"


def test_adapter_factors_rank_and_error_against_numpy():
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(12, 3, generator=gen) @ torch.randn(3, 10, generator=gen)
    B, A, info = adapter_factors({"delta.m.weight": low}, "m")
    assert info["numerical_rank"] == np.linalg.matrix_rank(low.numpy()) == 3 and info["rank"] == 3
    assert not info["truncated"] and B.shape == (12, 3) and A.shape == (3, 10)
    torch.testing.assert_close(B @ A, low, atol=1e-5, rtol=1e-5)

    full = torch.randn(12, 10, generator=gen)  # full rank 10; the default cap is 12·10 // 22 = 5
    B, A, info = adapter_factors({"delta.m.weight": full}, "m")
    S = np.linalg.svd(full.numpy().astype(np.float64), compute_uv=False)
    assert info["numerical_rank"] == 10 and info["rank"] == 5 and info["truncated"]
    assert info["rel_frobenius_error"] == pytest.approx(np.sqrt((S[5:] ** 2).sum() / (S**2).sum()), rel=1e-9)
    err = float(torch.linalg.matrix_norm(full.double() - (B @ A).double()) / torch.linalg.matrix_norm(full.double()))
    assert err == pytest.approx(info["rel_frobenius_error"], rel=1e-5)

    # factors with a repeated rank-one term: rank 3 of 4 stored, never forming B·A to find it
    Bf = torch.randn(12, 3, generator=gen)
    Af = torch.randn(3, 10, generator=gen)
    Bf, Af = torch.cat([Bf, Bf[:, :1]], 1), torch.cat([Af, Af[:1]], 0)
    B, A, info = adapter_factors({"lora_B.m.weight": Bf, "lora_A.m.weight": Af}, "m")
    assert info["numerical_rank"] == np.linalg.matrix_rank((Bf @ Af).numpy()) == 3 and not info["truncated"]
    torch.testing.assert_close(B @ A, Bf @ Af, atol=1e-5, rtol=1e-5)

    B, A, info = adapter_factors({"delta.m.weight": torch.zeros(4, 6)}, "m")  # the base model: zero delta
    assert info["numerical_rank"] == 0 and info["rank"] == 1 and float((B @ A).abs().max()) == 0


def _slice(path: Path, per_split: int = 10) -> Path:
    rows, seen = [], {}
    for line in gzip.decompress(DATA.read_bytes()).decode("utf-8").split("\n"):  # not splitlines(): bios contain U+2028
        if line:
            row = json.loads(line)
            if seen.get(row["split"], 0) < per_split:
                rows.append(row)
            seen[row["split"]] = seen.get(row["split"], 0) + 1
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def tiny_lora_recipe(tmp_path: Path, storage: str) -> dict:
    """runs/fapareto_biasbios_lora.yaml shrunk: a tiny BERT, 10 bios per split, 2 generations of 4 (a
    linear head: on the tiny random BERT's features an MLP head predicts one class everywhere)."""
    recipe = load_recipe(REPO / "runs" / "fapareto_biasbios_lora.yaml").model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(
        data_file=str(_slice(tmp_path / "bios.jsonl")),
        model_dir=str(tiny_bert(tmp_path / "tiny_bert")),
        max_length=32,
        hidden=[],
        cache_dir=str(tmp_path / "cache"),
        baselines={"enabled": False},
        lora={"r": 2, "alpha": 4, "top_layers": 1, "targets": ["query", "value"], "storage": storage},
    )
    recipe["algorithm"].update(pop_size=4, generations=2, n_offsprings=4)
    recipe["operators"]["refine"] = {
        "name": "sft",
        "args": {"steps": 2, "optimizer": "adamw", "lr": 1e-3, "batch_size": 5},
    }
    return recipe


def _mean_pool_head(encoder, tokenizer, head: dict, cfg: dict, texts: list[str]) -> np.ndarray:
    """Predicted class ids: mean pooling under the mask, then the head — plain torch."""
    x = tokenizer(texts, padding=True, truncation=True, max_length=cfg["max_length"], return_tensors="pt")
    with torch.no_grad():
        m = x["attention_mask"][..., None].float()
        z = (encoder(**x).last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
        for k in range(len(cfg["sizes"]) - 1):
            z = z @ head[f"layers.{k}.weight"].T + head[f"layers.{k}.bias"]
            z = z.relu() if k < len(cfg["sizes"]) - 2 else z
    return z.argmax(-1).numpy()


def _run_and_pick(tmp_path: Path, storage: str):
    """A tiny LoRA run, its problem rebuilt, and the newest stored model (refined, merged, mutated)
    that does not predict one class everywhere, with its test predictions as the run computes them."""
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    recipe = tiny_lora_recipe(tmp_path, storage)
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    problem = BiasBios(BiasBiosParams(**recipe["problem"]["args"])).ensure_setup()
    store = RunStore(out, readonly=True)
    candidates = sorted(store.individuals(), key=lambda i: (-i.generation, i.id))
    for ind in candidates:
        weights = store.get_weights(ind.weights_hash)
        stored = problem.predictions([weights], "test")[0]
        if len(set(stored.tolist())) > 1:
            break
    store.close()
    assert len(set(stored.tolist())) > 1
    assert abs(float((stored != problem.splits["test"].y).mean()) - ind.metrics["test"]["error"]) < 1e-12
    return recipe, out, problem, ind, weights, stored


def _check_adapter(tmp_path, exp: Path, problem, weights, stored, storage: str, tok, head, cfg) -> None:
    """adapter/: PeftModel on the base encoder gives the same predictions when not truncated, and
    states its error when it is."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    texts = problem.raw["test"]["text"]
    card = json.loads((exp / "model_card.json").read_text())["export"]
    base = AutoModel.from_pretrained(problem.model_dir)
    peft_model = PeftModel.from_pretrained(base, exp / "adapter").eval()
    adapter_cfg = json.loads((exp / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["peft_type"] == "LORA" and set(adapter_cfg["target_modules"]) == set(card["adapted_modules"])
    factors = load_file(str(exp / "adapter" / "adapter_model.safetensors"))
    for t, info in card["adapter_ranks"].items():
        B = next(v for k, v in factors.items() if k.endswith(f"{t}.lora_B.weight"))
        A = next(v for k, v in factors.items() if k.endswith(f"{t}.lora_A.weight"))
        key = f"delta.{t}.weight"
        delta = weights[key] if key in weights else weights[f"lora_B.{t}.weight"] @ weights[f"lora_A.{t}.weight"]
        rel = float(torch.linalg.matrix_norm((delta - B @ A).double()) / torch.linalg.matrix_norm(delta.double()))
        assert A.shape[0] == info["rank"] and rel == pytest.approx(info["rel_frobenius_error"], rel=1e-3, abs=1e-6)
        if storage == "factors":
            assert not info["truncated"] and info["rank"] <= 4  # max_rank 2r
    if not any(i["truncated"] for i in card["adapter_ranks"].values()):
        np.testing.assert_array_equal(_mean_pool_head(peft_model, tok, head, cfg, texts), stored)
    else:  # dense deltas after merges and mutation: full rank, truncated at the cap; at full rank exact
        from evofair.problems.common.hf_export import export_lora

        (tmp_path / "full").mkdir()
        info = export_lora(problem, weights, tmp_path / "full", max_rank=32)
        assert not any(i["truncated"] for i in info["adapter_ranks"].values())
        base = AutoModel.from_pretrained(problem.model_dir)
        peft_full = PeftModel.from_pretrained(base, tmp_path / "full" / "adapter").eval()
        np.testing.assert_array_equal(_mean_pool_head(peft_full, tok, head, cfg, texts), stored)


@pytest.mark.parametrize("storage", ["dense", "factors"])
def test_lora_export_reloads_with_transformers_and_peft(tmp_path, storage, capsys):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from evofair.cli import main

    recipe, out, problem, ind, weights, stored = _run_and_pick(tmp_path, storage)
    test, texts = problem.splits["test"], problem.raw["test"]["text"]
    assert main(["export", str(out), ind.id, "--to", str(tmp_path / "exp")]) == 0
    exp = tmp_path / "exp"
    for name in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "merged/config.json",
        "merged/model.safetensors",
        "merged/tokenizer.json",
        "head.safetensors",
        "head_config.json",
        "README.md",
        "model_card.json",
        "genome.safetensors",
    ):
        assert (exp / name).is_file(), name

    # merged/: transformers only, through the snippet README.md documents, run as written
    readme = (exp / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert len(snippet.strip().splitlines()) <= 7
    env = {"texts": texts}
    exec(snippet.replace('"./', f'"{exp}/'), env)  # noqa: S102 - the documented snippet, as a user runs it
    cfg = json.loads((exp / "head_config.json").read_text())
    labels = np.array([cfg["classes"].index(c) for c in env["labels"]])
    np.testing.assert_array_equal(labels, stored)
    assert abs(float((labels != test.y).mean()) - ind.metrics["test"]["error"]) < 1e-12

    tok = AutoTokenizer.from_pretrained(exp / "merged")
    head = load_file(str(exp / "head.safetensors"))
    _check_adapter(tmp_path, exp, problem, weights, stored, storage, tok, head, cfg)
    merged = AutoModel.from_pretrained(exp / "merged")
    np.testing.assert_array_equal(_mean_pool_head(merged, tok, head, cfg, texts), stored)

    front = yaml.safe_load(readme.split("---\n")[1])
    assert front["library_name"] == "peft" and "evofair" in front["tags"]
    assert front["base_model"] == str(Path(recipe["problem"]["args"]["model_dir"]).resolve())
    for needle in (
        "## Objectives and metrics",
        "## Per-group metrics",
        "## Constraints",
        "## Lineage",
        "## Device and dtype",
        "| F | nurse |",
        ind.id,
    ):
        assert needle in readme, needle

    # the base model folder moved away: one line naming it, exit 2, nothing written
    Path(recipe["problem"]["args"]["model_dir"]).rename(tmp_path / "moved")
    capsys.readouterr()  # (tiny_bert's save_pretrained progress bar, the first export's line)
    line = one_error_line(capsys, ["export", str(out), ind.id, "--to", str(tmp_path / "again")], tmp_path / "again")
    assert "model_dir" in line and "config.json" in line
