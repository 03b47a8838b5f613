"""Why FaPareto embeds with 1-thread worker processes, batches of 16, and trains heads on 1 thread.

Measured in one process, same inputs, alternating nothing else:
1. embedding N BiasBios bios with all-MiniLM-L6-v2, length-sorted batches:
   in-process with 2 torch threads (the default torch setting on 2 cores) — the baseline —
   in-process with 1 thread at batch 16/32/64, and 2 worker processes of 1 thread each
   (`evofair.problems.common.text_encoder.embed_parallel`, what a cold `evofair run` does);
2. one epoch of SFT of a BiasBios head (the local learning of one offspring) with 2 threads
   (baseline) and 1 thread.
Prints wall seconds and the ratio baseline / variant (> 1: the variant is faster).

    .venv/bin/python benchmarks/fapareto_threads.py --n 400
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _embed_in_process(texts, threads: int, batch_size: int) -> float:
    import torch

    from evofair.problems.common.text_encoder import default_model_dir, embed, load_encoder

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tok, model = load_encoder(default_model_dir())
        t = time.perf_counter()
        embed(texts, tok, model, max_length=256, batch_size=batch_size)
        return time.perf_counter() - t
    finally:
        torch.set_num_threads(before)


def _sft_epoch(problem, threads: int, repeats: int = 3) -> float:
    import torch

    from evofair.core.plugins import registry

    spec = registry("refine").get("sft")
    args = spec.args(epochs=1, optimizer="adamw", lr=1e-3, batch_size=256)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        spec.fn(problem.init_weights(0), args, seed=0, problem=problem)  # warm-up (imports)
        t = time.perf_counter()
        for k in range(repeats):
            spec.fn(problem.init_weights(k), args, seed=k, problem=problem)
        return (time.perf_counter() - t) / repeats
    finally:
        torch.set_num_threads(before)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="bios to embed (the first N training bios)")
    args = ap.parse_args(argv)
    from evofair.problems import shipped_data
    from evofair.problems.common.text_encoder import default_model_dir, embed_parallel
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams, read_biasbios

    texts = read_biasbios(shipped_data("biasbios_surgeon_nurse") / "biosbias_surgeon_nurse.jsonl.gz")["train"]["text"]
    texts = texts[: args.n]
    rows = [("embed: in-process, 2 threads, batch 16 (baseline)", _embed_in_process(texts, 2, 16))]
    for bs in (16, 32, 64):
        rows.append((f"embed: in-process, 1 thread, batch {bs}", _embed_in_process(texts, 1, bs)))
    t = time.perf_counter()
    embed_parallel(texts, default_model_dir(), max_length=256, batch_size=16, workers=2)
    rows.append(("embed: 2 worker processes x 1 thread, batch 16 (start-up included)", time.perf_counter() - t))
    base = rows[0][1]
    print(f"Embedding {len(texts)} bios:")
    for name, sec in rows:
        print(f"  {name:70s} {sec:7.1f} s   ratio {base / sec:5.2f}")
    problem = BiasBios(BiasBiosParams(torch_threads=None, local_loss="ce+tpr_gap")).ensure_setup()
    two, one = _sft_epoch(problem, 2), _sft_epoch(problem, 1)
    print("One SFT epoch of a head (3832 bios, batch 256, AdamW):")
    print(f"  {'2 threads (baseline)':70s} {two:7.3f} s   ratio  1.00")
    print(f"  {'1 thread':70s} {one:7.3f} s   ratio {two / one:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
