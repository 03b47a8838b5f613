"""BiasBios: pooling against sentence-transformers, the feature cache (hit, invalidation), the
head main job end to end on a small slice, and the `lora` genome end to end in a tiny setting."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import biasbios_subset, tiny_bert

import evofair
from evofair.core.plugins import registry as op_registry
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.common import text_encoder
from evofair.problems.common.text_encoder import default_model_dir, embed, load_encoder
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
from evofair.store.run_store import RunStore

REPO_ROOT = Path(__file__).resolve().parents[3]

DATA = REPO_ROOT / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"


def test_mean_pooling_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = [
        " She completed her nursing degree and has worked in pediatrics for ten years.",
        " Dr. Hayes completed his plastic surgery residency at the University of Washington.",
        "x",
    ]
    full = SentenceTransformer(str(default_model_dir()), device="cpu")
    pooled_only = SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # without Normalize
    tok, model = load_encoder(default_model_dir())
    ours = embed(texts, tok, model, max_length=256, batch_size=2)
    np.testing.assert_allclose(ours, pooled_only.encode(texts, convert_to_numpy=True), atol=2e-5)
    normed = full.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(ours / np.linalg.norm(ours, axis=1, keepdims=True), normed, atol=2e-6)


def test_feature_cache_hit_and_invalidation(tmp_path, monkeypatch):
    calls = []
    real_embed = text_encoder.embed
    monkeypatch.setattr(
        text_encoder, "embed", lambda texts, *a, **k: calls.append(len(texts)) or real_embed(texts, *a, **k)
    )
    model_a = tiny_bert(tmp_path / "model_a", seed=0)
    data = biasbios_subset(tmp_path / "bios.jsonl")
    cache = tmp_path / "cache"

    def setup(**kw):
        args = dict(model_dir=str(model_a), data_file=str(data), cache_dir=str(cache), limit=8, max_length=32)
        args.update(kw)
        problem = BiasBios(BiasBiosParams(**args)).ensure_setup()
        return problem, problem.setup_info

    first, info = setup()
    assert not info["hit"] and sum(calls) == 24
    second, info = setup()
    assert info["hit"] and sum(calls) == 24  # nothing re-embedded
    for split in ("train", "val", "test"):
        assert torch.equal(first.splits[split].X, second.splits[split].X)
    entry = cache / info["key"]
    assert sorted(p.name for p in entry.iterdir()) == ["features.safetensors", "meta.json"]
    assert json.loads((entry / "meta.json").read_text())["max_length"] == 32

    # a row past the slice changes nothing that is embedded: still a hit
    biasbios_subset(data, edit=lambda s, i, r: r.update(text="changed") if (s, i) == ("test", 9) else None)
    assert setup()[1]["hit"]
    # a changed bio inside the slice: miss, re-embedded
    biasbios_subset(
        data, edit=lambda s, i, r: r.update(text=r["text"] + " Edited.") if (s, i) == ("train", 3) else None
    )
    _, info = setup()
    assert not info["hit"] and sum(calls) == 48
    # a changed model (same architecture, other weights): miss
    model_b = tiny_bert(tmp_path / "model_b", seed=1)
    _, info = setup(model_dir=str(model_b))
    assert not info["hit"] and sum(calls) == 72
    # editing a model file in place also invalidates
    cfg = json.loads((model_a / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (model_a / "config.json").write_text(json.dumps(cfg))
    assert not setup()[1]["hit"]
    # another max length: miss
    assert not setup(max_length=16)[1]["hit"]
    assert not list(cache.rglob("*.pkl")) and not list(cache.rglob("*.pickle"))


def test_parallel_embedding_equals_in_process(tmp_path):
    model = tiny_bert(tmp_path / "model", seed=0)
    texts = [json.loads(line)["text"] for line in gzip.decompress(DATA.read_bytes()).decode("utf-8").split("\n")[:40]]
    tok, enc = load_encoder(model)
    one = embed(texts, tok, enc, max_length=48, batch_size=8)
    two = text_encoder.embed_parallel(texts, model, max_length=48, batch_size=8, workers=2)
    np.testing.assert_allclose(two, one, atol=1e-5)
    assert float(np.abs(one).sum()) > 0


def _small_recipe(tmp_path, **problem_args):
    recipe = load_recipe(REPO_ROOT / "runs" / "fapareto_biasbios.yaml").model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(cache_dir=str(tmp_path / "cache"), **problem_args)
    recipe["algorithm"].update(pop_size=6, generations=2, n_offsprings=6)
    recipe["problem"]["args"]["baselines"] = {
        "vanilla": 2,
        "lambdas": [0.5, 2.0],
        "epochs": 3,
        "threshold": ["true_positive_rate_parity"],
    }
    return recipe


def test_main_job_small_slice(tmp_path):
    recipe = _small_recipe(tmp_path, limit=64, max_length=64, hidden=[16])
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    assert res.front and len(res.history) == 2
    for name in (
        "front.csv",
        "archive.csv",
        "history.csv",
        "baselines.csv",
        "baselines.json",
        "summary.json",
        "report.md",
        "plots/front.png",
        "plots/hv.png",
    ):
        assert (out / name).exists(), name
    front_cols = [
        c
        for c in (out / "front.csv").read_text().splitlines()[0].split(",")[2:]
        if not c.endswith(("_test_lo", "_test_hi"))
    ]  # the bootstrap intervals are front.csv's own
    base = (out / "baselines.csv").read_text().splitlines()
    assert base[0].split(",") == ["method", "id"] + front_cols
    assert {line.split(",")[0] for line in base[1:]} <= {"vanilla", "scalarisation", "threshold"}
    report = (out / "report.md").read_text()
    for needle in (
        "reference point **(0.25, 0.25)**",
        "Pearson correlation",
        "HV test",
        "per-group confusion",
        "Hypervolume per generation",
        "| F | nurse |",
        "## Phases",
    ):
        assert needle in report, needle
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hv_ref"] == [0.25, 0.25] and "hv_union_ab_test" in summary
    # the stored metrics of a front model are what the problem computes from its stored weights
    store = RunStore(out, readonly=True)
    ind = res.front[0]
    problem = BiasBios(BiasBiosParams(**recipe["problem"]["args"])).ensure_setup()
    assert problem.setup_info["hit"]  # the run's features were cached
    again = problem.evaluate([store.get_weights(ind.weights_hash)], "test")
    assert again["dtpr"][0] == ind.metrics["test"]["dtpr"] and again["error"][0] == ind.metrics["test"]["error"]
    store.close()
    # export: a transformers encoder directory + the head, reloaded without evofair's problem code,
    # gives the model the store measured
    from evofair.explorer.export import export_model
    from evofair.problems.fapareto.biasbios import ExportedClassifier

    exported = export_model(out, ind.id, tmp_path / "exported")
    model = ExportedClassifier(exported)
    test = problem.splits["test"]
    texts = problem.raw["test"]["text"]
    np.testing.assert_allclose(model.features(texts[:8]), np.asarray(test.X[:8]), atol=1e-4)
    pred = model.predict(features=np.asarray(test.X, dtype=np.float32))
    assert abs(float((pred != np.asarray(test.y)).mean()) - ind.metrics["test"]["error"]) < 1e-12
    _readme_snippet_predicts_as_the_store(exported, list(texts[:8]), model)


def _readme_snippet_predicts_as_the_store(exported, texts, model):
    """The export README's loading snippet, run in a process that never imports evofair, predicts
    the same classes as the exported model."""
    import subprocess
    import sys

    readme = (Path(exported) / "README.md").read_text()
    code = readme.split("How to load (transformers only)", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace("DIR", str(exported)).replace('["She is a surgeon at ..."]', json.dumps(texts))
    code += "\nimport sys; assert not any(m.startswith('evofair') for m in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    expected = [model.config["classes"][k] for k in model.predict(texts)]
    assert out.stdout.strip() == repr(expected)


def test_lora_genome_end_to_end_tiny(tmp_path):
    recipe = _small_recipe(
        tmp_path,
        genome="lora",
        limit=12,
        max_length=32,
        hidden=[8],
        torch_threads=None,
        lora={"r": 2, "alpha": 4, "top_layers": 1, "targets": ["query", "value"]},
    )
    recipe["algorithm"].update(pop_size=4, generations=2, n_offsprings=4)
    recipe["operators"]["refine"] = {
        "name": "sft",
        "args": {"steps": 2, "optimizer": "adamw", "lr": 1e-2, "batch_size": 6},
    }
    recipe["problem"]["args"]["baselines"] = {
        "vanilla": 1,
        "lambdas": [1.0],
        "epochs": 1,
        "threshold": [],
        "lora": {"enabled": False},
    }  # test_lora_baselines.py runs them
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    assert res.front and (out / "report.md").exists() and (out / "baselines.csv").exists()

    problem = BiasBios(BiasBiosParams(**recipe["problem"]["args"])).ensure_setup()
    store = RunStore(out, readonly=True)
    w = store.get_weights(res.front[0].weights_hash)
    # bootstrap intervals: LoRA front genomes through the encoder, baseline heads on the features;
    # the identity resample gives the stored test metrics
    from evofair.analysis.uncertainty import point_metrics

    intervals = json.loads((out / "intervals.json").read_text())
    assert set(intervals["models"]) == {i.id for i in res.front} and intervals["baselines"]
    base = json.loads((out / "baselines.json").read_text())["models"]
    both = problem.example_outputs([w, store.get_weights(base[0]["weights_hash"])], "test")
    point = point_metrics(both)
    assert (
        point["error"][0] == res.front[0].metrics["test"]["error"]
        and point["dtpr"][1] == base[0]["metrics"]["test"]["dtpr"]
    )
    deltas = [k for k in w if k.startswith("delta.")]
    assert sorted(deltas) == [
        "delta.encoder.layer.5.attention.self.query.weight",
        "delta.encoder.layer.5.attention.self.value.weight",
    ]
    assert float(w[deltas[0]].abs().max()) > 0  # local learning moved the adapted layers

    # training a fresh adapter and folding it into the deltas keeps the trained function
    spec = op_registry("refine").get("sft")
    model = problem.build_model(w)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    batch = next(iter(problem.train_batches(0, 6)))
    problem.loss(model, batch).backward()
    opt.step()
    model.eval()
    folded = problem.extract_weights(model)
    step = folded[deltas[0]] - w[deltas[0]]
    assert 0 < torch.linalg.matrix_rank(step) <= 2  # one LoRA update of rank r = 2
    texts = problem.raw["test"]["text"]
    enc = problem.lora.tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.no_grad():
        direct = model(enc["input_ids"], enc["attention_mask"]).argmax(-1).numpy()
    np.testing.assert_array_equal(problem.predictions([folded], "test")[0], direct)
    fresh = problem.extract_weights(problem.build_model(w))
    assert set(fresh) == set(w) and all(torch.equal(fresh[k], w[k]) for k in w)  # a fresh adapter adds nothing

    # merges act on the deltas relative to the pretrained base (zero delta)
    base = problem.base_weights()
    assert float(base[deltas[0]].abs().max()) == 0
    ties = op_registry("crossover").get("ties")
    other = spec.fn(
        problem.init_weights(9), spec.args(steps=1, lr=1e-2, optimizer="adamw", batch_size=6), seed=1, problem=problem
    ).weights
    child = ties.fn([w, other], ties.args(density=0.5, weight=0.5), seed=0, base=base)[0]
    assert set(child) == set(w)
    assert problem.evaluate([child], "val")["error"].shape == (1,)


@pytest.mark.parametrize("name", ["fapareto_biasbios", "fapareto_biasbios_lora"])
def test_recipes_parse(name):
    recipe = load_recipe(REPO_ROOT / "runs" / f"{name}.yaml")
    assert recipe.problem.name == "biasbios" and recipe.algorithm.name == "nsga2"
