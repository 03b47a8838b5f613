"""Bytes and memory of a `lora` genome, dense deltas vs LoRA factors: what
storing a population of large-model fine-tunes costs.

    .venv/bin/python benchmarks/genome_scale.py                 # MiniLM measured + 7B computed
    .venv/bin/python benchmarks/genome_scale.py --skip-rss      # without the per-worker RSS runs

MiniLM (all-MiniLM-L6-v2, recipe runs/fapareto_biasbios_lora.yaml: r = 8, q/v of the top 2 layers,
head [64]): genomes are built by the problem itself, written by `RunStore.put_weights` and measured
on disk (file sizes), serialised as Ray would ship them (pickle protocol 5: header + out-of-band
tensor buffers), and each worker's peak RSS is measured in a fresh process that sets the problem up
and realises + evaluates offspring. 7B: a `LlamaConfig(hidden_size=4096, num_hidden_layers=32, ...)`
built on the meta device (no weights), targets found by `attention_linears` as for any base; the
factor file at rank r is written for real (it is small), the dense size is its header + m·n floats.

Goals: a stored individual ≤ 2× its LoRA factors at rank r; a 7B population of 64 over
20 generations (64 + 20 · 64 stored individuals, every one distinct) ≤ 50 GB on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"
GB = 1e9
POP, GENERATIONS = 64, 20


def ray_bytes(weights) -> int:
    """What Ray's serialiser ships for a genome: the pickle-5 stream plus its out-of-band buffers."""
    buffers = []
    head = pickle.dumps({k: v.numpy() for k, v in weights.items()}, protocol=5, buffer_callback=buffers.append)
    return len(head) + sum(memoryview(b).nbytes for b in buffers)


def minilm_problem(storage: str, cache: Path, limit: int = 16):
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    params = BiasBiosParams(
        genome="lora",
        hidden=[64],
        local_loss="ce+tpr_gap",
        cache_dir=str(cache),
        limit=limit,
        max_length=64,
        embed_workers=1,
        lora={"r": 8, "alpha": 16, "top_layers": 2, "targets": ["query", "value"], "storage": storage},
    )
    return BiasBios(params).ensure_setup()


def minilm_sizes(cache: Path) -> dict[str, dict[str, float]]:
    """Bytes on disk (RunStore files) and on the wire per individual, per storage, after 1 and 2 SFT steps."""
    from evofair.core.plugins import registry
    from evofair.store.run_store import RunStore

    sft = registry("refine").get("sft")
    out = {}
    for storage in ("dense", "factors"):
        problem = minilm_problem(storage, cache)
        w1 = sft.fn(problem.init_weights(1), sft.args(steps=1, batch_size=8), seed=1, problem=problem).weights
        w2 = sft.fn(w1, sft.args(steps=1, batch_size=8), seed=2, problem=problem).weights  # rank 2r when factors
        head = sum(v.numel() * v.element_size() for k, v in w2.items() if k.startswith("head."))
        adapters = sum(v.numel() * v.element_size() for k, v in w2.items() if not k.startswith("head."))
        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore(tmp)
            sizes = []
            for w in (w1, w2):
                digest = store.put_weights(w)
                store.flush()
                sizes.append(store.weights_path(digest).stat().st_size)
            store.close()
        out[storage] = {
            "disk_rank_r": sizes[0],
            "disk_after_refines": sizes[1],
            "ray_after_refines": ray_bytes(w2),
            "head_bytes": head,
            "adapter_bytes": adapters,
        }
    t = minilm_problem("factors", cache).lora.targets
    shapes = {name: tuple(minilm_problem("dense", cache).lora.W0[name].shape) for name in t}
    out["lora_factors_rank_r_bytes"] = sum((m + n) * 8 * 4 for m, n in shapes.values())
    out["targets"] = len(t)
    return out


def refactor_errors(cache: Path, steps: int = 4) -> dict[str, float]:
    """Relative Frobenius error of re-factorised merges (max over the adapted matrices and both
    children) of two MiniLM factor genomes trained independently (`steps` SFT steps each)."""
    from evofair.core.plugins import registry

    problem = minilm_problem("factors", cache)
    sft = registry("refine").get("sft")
    args = sft.args(steps=steps, batch_size=8, optimizer="adamw", lr=1e-3)
    parents = [sft.fn(problem.init_weights(s), args, seed=s, problem=problem).weights for s in (1, 2)]
    out = {}
    for name, margs in (
        ("ties", {"density": 0.5}),
        ("dare_ties", {"density": 0.5}),
        ("uniform", {}),
        ("task_arithmetic", {}),
    ):
        spec = registry("crossover").get(name)
        _, log = problem.genome.crossover(
            problem, spec, parents, spec.args(**margs), seed=11, base=problem.base_weights()
        )
        out[name] = log.get("refactor_max_rel_error", 0.0)
    return out


def worker_rss(storage: str, cache: Path) -> dict[str, float]:
    """Peak RSS of a fresh worker process: problem setup, then 4 offspring realised (TIES merge,
    Gaussian noise, 2 SFT steps) and evaluated on every split, as a Ray actor does."""
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(HERE)!r})
import torch
torch.set_num_threads(1)
from genome_scale import minilm_problem
from pathlib import Path
from evofair.engine.pipeline import Operators, OpCall, Plan, GenomeRef, realise
from evofair.executors.base import evaluate_all_splits
p = minilm_problem({storage!r}, Path({str(cache)!r}))
after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ops = Operators.load()
sft = OpCall("sft", {{"steps": 2, "batch_size": 8}}, 1)
parents = [realise(Plan(init=OpCall("init", {{}}, s), refine=sft), [], p, ops).weights for s in (1, 2)]
refs = (GenomeRef("a", "a"), GenomeRef("b", "b"))
kids = [realise(Plan(parents=refs, crossover=OpCall("ties", {{"density": 0.5}}, 7, child=c),
                     mutation=OpCall("gaussian", {{"sigma": 0.05, "relative": True}}, 8 + c), refine=sft),
                parents, p, ops).weights for c in (0, 1, 0, 1)]
evaluate_all_splits(p, kids)
print(json.dumps({{"after_setup_mb": after_setup / 1024,
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def llama7b(r: int = 8, targets=("q_proj", "v_proj")) -> dict[str, float]:
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaModel

    from evofair.problems.common.lora_model import attention_linears

    cfg = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    )
    with torch.device("meta"):
        model = LlamaModel(cfg)
    base_params = sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    found, n_layers = attention_linears(model)
    shapes = {name: tuple(modules[name].weight.shape) for _, name in found if name.split(".")[-1] in targets}
    # the files themselves: the factor genome at ranks r and 2r written for real, the dense one's size
    # computed as safetensors lays it out (8-byte length + JSON header + raw data)
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, k in (("factors_r", r), ("factors_2r", 2 * r)):
            w = {}
            for name, (m, n) in shapes.items():
                w[f"lora_B.{name}.weight"], w[f"lora_A.{name}.weight"] = torch.zeros(m, k), torch.zeros(k, n)
            path = Path(tmp) / f"{label}.safetensors"
            save_file(w, str(path))
            sizes[label] = path.stat().st_size
        meta = {f"delta.{name}.weight": torch.zeros(1, 1) for name in shapes}
        save_file(meta, str(Path(tmp) / "header.safetensors"))
        header = (Path(tmp) / "header.safetensors").stat().st_size - 4 * len(meta)
    dense_floats = sum(m * n for m, n in shapes.values())
    # the header's offsets grow by a few digits for gigabyte files; 16 bytes per tensor bounds that
    sizes["dense"] = header + 16 * len(shapes) + 4 * dense_floats
    sizes["dense_bf16"] = header + 16 * len(shapes) + 2 * dense_floats
    stored = POP + GENERATIONS * POP
    return {
        "base_params": base_params,
        "layers": n_layers,
        "matrices": len(shapes),
        **sizes,
        "factor_floats_r": sum((m + n) * r for m, n in shapes.values()),
        "population_gb": {k: v * stored / GB for k, v in sizes.items()},
        "stored_individuals": stored,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        mini = minilm_sizes(cache)
        errors = refactor_errors(cache)
        rss = {} if args.skip_rss else {s: worker_rss(s, cache) for s in ("dense", "factors")}
    big = llama7b()
    print(
        f"MiniLM (r=8, {mini['targets']} matrices, head [64]); LoRA factors at rank r: "
        f"{mini['lora_factors_rank_r_bytes']:,} B"
    )
    for s in ("dense", "factors"):
        m = mini[s]
        print(
            f"  {s:8s} disk rank r {m['disk_rank_r']:>10,} B   after 2 refines {m['disk_after_refines']:>10,} B"
            f"   ray {m['ray_after_refines']:>10,} B   (head {m['head_bytes']:,} B)"
            + (f"   worker RSS setup {rss[s]['after_setup_mb']:.0f} MB peak {rss[s]['peak_mb']:.0f} MB" if rss else "")
        )
    print(
        "  re-factorised merges of two trained adapters (rank 8 each, max_rank 16), max relative Frobenius "
        "error over matrices and children: " + ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
    )
    adapters = mini["factors"]["adapter_bytes"]
    ratio = mini["factors"]["disk_after_refines"] / mini["lora_factors_rank_r_bytes"]
    ratio_adapters = adapters / mini["lora_factors_rank_r_bytes"]
    print(
        f"  store growth per generation of 16 offspring: dense {16 * mini['dense']['disk_after_refines'] / 1e6:.1f} MB,"
        f" factors {16 * mini['factors']['disk_after_refines'] / 1e6:.2f} MB"
    )
    print(
        f"  goal stored ≤ 2× factors at rank r: whole file {ratio:.2f}× (adapter tensors alone {ratio_adapters:.2f}×; the head [64] is the same in both storages) -> "
        f"{'met' if ratio <= 2 else 'met for the adapters only' if ratio_adapters <= 2 else 'NOT met'}"
    )
    print(
        f"7B decoder (LlamaConfig hidden 4096 × 32 layers, {big['base_params'] / 1e9:.2f} B params on meta), "
        f"r=8 on q/v: {big['matrices']} matrices"
    )
    for k in ("dense", "dense_bf16", "factors_r", "factors_2r"):
        print(
            f"  {k:11s} {big[k] / 1e6:>10,.1f} MB per individual   {big['population_gb'][k]:>9,.1f} GB for "
            f"{big['stored_individuals']} stored ({POP} × {GENERATIONS} generations + initial)"
        )
    growth = POP * big["factors_2r"] / GB
    print(f"  store growth per generation ({POP} offspring, max_rank 2r): {growth:.2f} GB")
    worst = big["population_gb"]["factors_2r"]
    print(
        f"  goal 7B population ≤ 50 GB: factors at max_rank = 2r {worst:.1f} GB -> {'met' if worst <= 50 else 'NOT met'}"
        f" (dense fp32 {big['population_gb']['dense']:,.0f} GB)"
    )
    print(
        f"  goal stored ≤ 2× factors at rank r: {big['factors_2r'] / big['factors_r']:.3f}× at max_rank 2r -> "
        f"{'met' if big['factors_2r'] <= 2 * big['factors_r'] else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
