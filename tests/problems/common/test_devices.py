"""`problem.args.device` / `precision`: resolution, one-line refusals before
anything is written, bf16 autocast features under their own cache key, and the device and dtype
recorded in report.md and the exported model card. The CUDA checks run only where torch sees a
GPU (CI has none); on CPU the same code paths are exercised with device cpu."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import biasbios_subset, one_error_line, tiny_bert

import evofair
from evofair.errors import UserError
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.common.devices import resolve_device
from evofair.problems.common.text_encoder import cached_features
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

REPO_ROOT = Path(__file__).resolve().parents[3]

CUDA = torch.cuda.is_available()


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match=r"problem.args.device: cuda:1 asked for, but torch sees no CUDA"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    return {
        "model": tiny_bert(root / "model"),
        "data": biasbios_subset(root / "bios.jsonl", per_split=10),
        "root": root,
    }


def _recipe_file(tiny, tmp_path, **args):
    recipe = load_recipe(REPO_ROOT / "runs" / "fapareto_biasbios.yaml").model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(
        model_dir=str(tiny["model"]),
        data_file=str(tiny["data"]),
        limit=10,
        cache_dir=str(tmp_path / "cache"),
        max_length=32,
        hidden=[8],
        baselines={"enabled": False},
        **args,
    )
    recipe["algorithm"].update(pop_size=4, generations=2, n_offsprings=4)
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe))
    return path


@pytest.mark.skipif(CUDA, reason="checks the refusal where no CUDA device is visible")
def test_cuda_refused_without_cuda_in_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    line = one_error_line(capsys, ["run", str(_recipe_file(tiny, tmp_path, device="cuda")), "--out", str(out)], out)
    assert "problem.args.device: cuda asked for, but torch sees no CUDA device" in line
    assert not (tmp_path / "cache").exists()  # refused before embedding anything


def test_fp16_refused_on_cpu_in_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", str(_recipe_file(tiny, tmp_path, device="cpu", precision="fp16")), "--out", str(out)]
    assert "problem.args.precision: fp16 autocast needs a CUDA device" in one_error_line(capsys, argv, out)


def test_bad_device_value_in_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    line = one_error_line(capsys, ["run", str(_recipe_file(tiny, tmp_path, device="gpu")), "--out", str(out)], out)
    assert "problem.args.device" in line


def test_bf16_features_have_their_own_key(tiny, tmp_path):
    texts = {"train": ["a nurse in the ward", "a surgeon who operates on hearts", "x"]}
    kw = dict(model_dir=tiny["model"], max_length=32, batch_size=2, cache_dir=tmp_path, workers=1)
    fp32, a = cached_features(texts, **kw)
    bf16, b = cached_features(texts, **kw, precision="bf16")
    assert a["key"] != b["key"] and not b["hit"] and b["precision"] == "bf16"
    diff = float(np.abs(fp32["train"] - bf16["train"]).max())
    assert 0 < diff < 0.1 * float(np.abs(fp32["train"]).max())  # bf16 has ~3 significant digits
    again, c = cached_features(texts, **kw)
    assert c["hit"] and np.array_equal(again["train"], fp32["train"])


def test_device_and_dtype_in_report_and_model_card(tiny, tmp_path):
    from evofair.explorer.export import export_model

    recipe = json.loads(_recipe_file(tiny, tmp_path, device="cpu").read_text())
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    assert "- Computed on cpu (cpu), float32." in (out / "report.md").read_text()
    card = json.loads((export_model(out, res.front[0].id, tmp_path / "exp") / "model_card.json").read_text())
    assert card["compute"] == {
        "device": "cpu",
        "device_name": "cpu",
        "precision": "fp32",
        "dtype": "float32",
        "resolved_by": "run",
    }


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("genome", ["head", "lora"])
def test_cuda_evaluation_equals_cpu(tiny, tmp_path, genome):
    args = dict(
        model_dir=str(tiny["model"]),
        data_file=str(tiny["data"]),
        cache_dir=str(tmp_path / "c"),
        limit=10,
        max_length=32,
        hidden=[8],
        genome=genome,
        lora={"r": 2, "alpha": 4, "top_layers": 1},
    )
    cpu = BiasBios(BiasBiosParams(**args, device="cpu")).ensure_setup()
    gpu = BiasBios(BiasBiosParams(**args, device="cuda")).ensure_setup()
    w = [cpu.init_weights(s) for s in range(3)]
    for split in ("val", "test"):
        np.testing.assert_allclose(gpu.scores(w, split), cpu.scores(w, split), atol=1e-4)
