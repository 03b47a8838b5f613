"""FaPareto on a GPU: main-job wall time, embedding seconds, LoRA seconds per offspring,
offspring per minute, and evofair's LoRA step against a bare PyTorch loop doing the same fine-tune.

Where no GPU is visible it prints "no GPU" and exits 0, unless `--device cpu` asks for the same
measurements on the CPU. Measured, all in this process except the main job:

1. main job: `evofair run fapareto_biasbios` from a cold feature cache (subprocess), wall seconds
   and the embedding seconds from its summary.json (skip with --skip-main);
2. LoRA (`runs/fapareto_biasbios_lora.yaml`'s settings, the first --limit bios of each split):
   setup (features + frozen prefix), then --offspring local learnings (the recipe's SFT: one
   epoch, AdamW) each followed by evaluation on validate and test, with the frozen-prefix cache
   and without it (the full model per batch, pre-tokenised tensors);
3. a bare loop: transformers + peft on the full encoder (frozen part in eval mode), pre-tokenised
   tensors, the same batches, optimiser, loss (CE + the individual's weight × soft TPR gap) and
   seeds, timed over the same epoch; its trained deltas are compared with evofair's (max |diff|).

    .venv/bin/python benchmarks/gpu_fapareto.py                       # GPU, or "no GPU"
    .venv/bin/python benchmarks/gpu_fapareto.py --device cpu --limit 128 --offspring 2 --threads 1 --skip-main
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = "goals on one H100: main job <= 30 s cold (embedding <= 5 s); LoRA >= 60 offspring/min; bare-loop ratio <= 1.2"


def main_job(device: str, tmp: Path) -> dict:
    out = tmp / "main"
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "evofair.cli",
            "run",
            "fapareto_biasbios",
            "--out",
            str(out),
            "--quiet",
            "--set",
            f"problem.args.cache_dir={tmp / 'main-cache'}",
            "--set",
            f"problem.args.device={device}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    setup = json.loads((out / "summary.json").read_text()).get("setup", {})
    return {"main_wall_s": round(wall, 1), "embed_s": round(setup.get("embed_seconds", float("nan")), 1)}


def lora_problem(device: str, limit: int | None, cache_dir: Path, prefix_cache: bool):
    from evofair.lifecycle.recipe import load_recipe
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    recipe = load_recipe(ROOT / "runs" / "fapareto_biasbios_lora.yaml")
    args = dict(recipe.problem.args)
    args.update(
        device=device,
        limit=limit,
        cache_dir=str(cache_dir),
        baselines={"enabled": False},
        lora={**args.get("lora", {}), "prefix_cache": prefix_cache},
    )
    t = time.perf_counter()
    problem = BiasBios(BiasBiosParams(**args)).ensure_setup()
    return problem, recipe, time.perf_counter() - t


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_offspring(problem, recipe, n: int) -> dict:
    """Seconds per local learning (the recipe's SFT) and per evaluation (validate + test)."""
    from evofair.core.plugins import registry

    spec = registry("refine").get(recipe.operators.refine.name)
    args = spec.args(**recipe.operators.refine.args)
    train, evals, trained = [], [], []
    for k in range(n):
        w = problem.init_weights(100 + k)
        _sync(problem.device)
        t = time.perf_counter()
        out = spec.fn(w, args, seed=7 + k, problem=problem).weights
        _sync(problem.device)
        train.append(time.perf_counter() - t)
        t = time.perf_counter()
        problem.evaluate([out], "val"), problem.evaluate([out], "test")
        evals.append(time.perf_counter() - t)
        trained.append((w, out))
    per = (sum(train) + sum(evals)) / n
    return {
        "train_s": sum(train) / n,
        "eval_s": sum(evals) / n,
        "offspring_s": per,
        "offspring_per_min": 60 / per,
        "trained": trained,
        "args": args,
    }


def bare_loop(problem, start, args, seed: int) -> tuple[float, dict]:
    """The same fine-tune as evofair's SFT step, written with transformers + peft only."""
    import torch
    from peft import LoraConfig, get_peft_model

    from evofair.core.seeding import torch_seeded
    from evofair.problems.common.classification import MLPHead
    from evofair.problems.common.losses import soft_tpr_gap
    from evofair.problems.common.text_encoder import load_encoder, mean_pool
    from evofair.store.weights_files import weights_hash

    lora, device = problem.lora, problem.device
    tokenizer, encoder = load_encoder(problem.model_dir)
    encoder = encoder.to(device).requires_grad_(False)
    with torch.no_grad():
        for t in lora.targets:
            encoder.get_submodule(t).weight += start[f"delta.{t}.weight"].to(device)
    p = problem.params.lora
    with torch_seeded(int(weights_hash(start)[:15], 16)):
        model = get_peft_model(
            encoder, LoraConfig(r=p.r, lora_alpha=p.alpha, target_modules=lora.targets, lora_dropout=0.0, bias="none")
        )
    head = MLPHead(problem.sizes, start.get("head.fair_weight")).to(device)
    head.load_state_dict({k[5:]: v for k, v in start.items() if k.startswith("head.")})
    model.train()
    base = model.base_model.model
    for _, child in base.named_children():  # the frozen part in eval mode, as evofair runs it
        if child is not None and any(m is base.get_input_embeddings() for m in child.modules()):
            child.eval()
    from evofair.problems.common.frozen_prefix import block_list

    _, blocks = block_list(base)
    for i in range(lora.lowest):
        blocks[i].eval()
    opt = torch.optim.AdamW(
        [q for q in [*model.parameters(), *head.parameters()] if q.requires_grad],
        lr=args.lr,
        weight_decay=args.weight_decay,
    )
    tok = lora.tokens["train"]  # pre-tokenised on the device, as a careful bare loop would
    y, g = lora._y, lora._g
    n_groups = len(problem.group_values)
    order = torch.randperm(len(tok), generator=torch.Generator().manual_seed(seed)).numpy()
    _sync(device)
    t0 = time.perf_counter()
    with torch_seeded(seed):
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            ids, mask = tok.batch(idx)
            rows = torch.as_tensor(idx, device=device)
            logits = head(mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask))
            loss = torch.nn.functional.cross_entropy(logits, y[rows])
            if getattr(head, "fair_weight", None) is not None:
                gap = soft_tpr_gap(torch.softmax(logits, -1)[None], y[rows][None], g[rows][None], n_groups)[0]
                loss = loss + torch.relu(head.fair_weight[0]) * gap
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(device)
    seconds = time.perf_counter() - t0
    deltas = {
        f"delta.{t}.weight": start[f"delta.{t}.weight"]
        + base.get_submodule(t).get_delta_weight("default").detach().cpu()
        for t in lora.targets
    }
    return seconds, deltas


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto (a GPU, else print 'no GPU' and exit 0) | cpu | cuda[:N]")
    ap.add_argument("--limit", type=int, default=None, help="bios per split for the LoRA part (default: all)")
    ap.add_argument("--offspring", type=int, default=4, help="local learnings timed per variant")
    ap.add_argument("--skip-main", action="store_true", help="do not time the head-genome main job")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    if args.device == "auto":
        if not torch.cuda.is_available():
            print("no GPU (torch sees no CUDA device); use --device cpu to measure on the CPU")
            return 0
        args.device = "cuda"
    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu"
    print(
        f"device {args.device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(GOALS)
    figures: dict = {
        "device": args.device,
        "device_name": device_name,
        "limit": args.limit,
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_main:
            figures.update(main_job(args.device, tmp))
            print(
                f"main job (head genome, cold cache): {figures['main_wall_s']} s wall, embedding {figures['embed_s']} s"
            )
        results = {}
        for cache in (True, False):
            problem, recipe, setup = lora_problem(args.device, args.limit, tmp / "lora-cache", cache)
            res = time_offspring(problem, recipe, args.offspring)
            name = "prefix cache" if cache else "full model"
            results[name] = res
            info = problem.lora.info
            print(
                f"LoRA, {name}: setup {setup:.1f} s (prefix {info.get('prefix_seconds', 0):.1f} s, "
                f"{info.get('prefix_mb', 0)} MB), train {res['train_s']:.2f} s + eval {res['eval_s']:.2f} s "
                f"= {res['offspring_s']:.2f} s/offspring, {res['offspring_per_min']:.1f} offspring/min "
                f"({len(problem.splits['train'])} train, {len(problem.splits['val'])} val, "
                f"{len(problem.splits['test'])} test bios)"
            )
            figures[f"lora_{'cache' if cache else 'full'}"] = {
                k: v for k, v in res.items() if k.endswith(("_s", "_min"))
            }
            if cache:
                start, got = res["trained"][0]
                bare_s, bare = bare_loop(problem, start, res["args"], seed=7)
                diff = max(float((got[k] - bare[k]).abs().max()) for k in bare)
                figures.update(bare_train_s=bare_s, bare_max_abs_diff=diff)
        bare_s = figures["bare_train_s"]
        for name, key in (("prefix cache", "cache"), ("full model", "full")):
            ratio = results[name]["train_s"] / bare_s
            figures[f"ratio_{key}_vs_bare"] = ratio
            print(
                f"evofair LoRA step ({name}) / bare PyTorch loop: {results[name]['train_s']:.2f} / {bare_s:.2f} s "
                f"= {ratio:.2f}x"
            )
        print(f"trained deltas, evofair (prefix cache) vs bare loop: max |diff| {figures['bare_max_abs_diff']:.2e}")
        print(
            f"speed-up of the prefix cache per offspring: "
            f"{results['full model']['offspring_s'] / results['prefix cache']['offspring_s']:.2f}x"
        )
    figures["load_after"] = os.getloadavg()[0]
    print(f"load after {figures['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
