"""A user's own checkpoints as merge anchors: safetensors files, Hugging Face folders, PEFT adapters.

Why this module: merge-recipe search (docs/merging.md) mixes fixed anchors, and the anchors people
have are files other tools wrote. Each loader returns `Weights` (name → tensor) with the names
exactly as the checkpoint spells them, so anchors from different tools line up key by key.

- Nothing is unpickled: `.bin`/`.pt` files can run code when loaded, so they are refused with the
  command that converts them (`save_pretrained(..., safe_serialization=True)`).
- A PEFT LoRA adapter is turned into the dense change it makes, ΔW = scaling · B @ A, keyed by the
  base weight it changes: a merge must act on ΔW, because averaging A and B separately averages
  neither the adapters nor their effect (B₁A₁ + B₂A₂ ≠ (B₁+B₂)(A₁+A₂)).
- Nothing is downloaded: a path is a file or folder on this machine.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from evofair.core.individual import Weights
from evofair.core.registry import Args
from evofair.errors import UserError

HF_SINGLE, HF_INDEX = "model.safetensors", "model.safetensors.index.json"
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PEFT_PREFIX = "base_model.model."
# LoRA variants whose merge is not W + scaling·B@A (or whose saved tensors are not A, B and whole
# replacement tensors): merging their dense deltas would silently be wrong, so they are refused
UNSUPPORTED_PEFT = (
    "use_dora",
    "lora_bias",
    "layer_replication",
    "target_parameters",
    "trainable_token_indices",
    "alora_invocation_tokens",
    "use_qalora",
    "use_bdlora",
    "velora_config",
    "monteclora_config",
    "kasa_config",
    "arrow_config",
)
LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B)$")


class CheckpointSpec(Args):
    """One anchor as a recipe names it."""

    path: str  # a .safetensors file, a Hugging Face model folder, or a PEFT adapter folder
    kind: Literal["auto", "safetensors", "hf", "peft"] = "auto"  # auto: decided from what is at `path`
    prefix: str | None = None  # keep only tensors whose name starts with it; names kept as they are


def resolve_path(path: str, base_dir: str | None) -> Path:
    """A recipe's relative paths mean "beside the recipe" first, so a recipe folder can be moved
    with its checkpoints; the working directory is the fallback for paths typed on a command line."""
    p = Path(path).expanduser()
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = ([Path(base_dir) / p] if base_dir is not None else []) + [Path.cwd() / p]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise UserError(f"checkpoint {path}: not found (looked for {where})")


def _pickle_refusal(path: Path, found: str, how: str) -> UserError:
    return UserError(
        f"{path}: only safetensors are read (found {found}; pickled checkpoints can run code when "
        f"loaded); convert it with {how}.save_pretrained(DIR, safe_serialization=True) (the default in "
        f"transformers >= 5 and peft)"
    )


def checkpoint_kind(path: Path) -> str:
    """What is at `path`, from the files a tool writes there: a recipe then needs no `kind:` and a
    wrong guess is a one-line error naming what was expected rather than a failure deep in a load."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".safetensors":
            return "safetensors"
        if path.suffix in PICKLE_SUFFIXES:
            raise _pickle_refusal(path, f"a {path.suffix} file", "model")
        raise UserError(f"{path}: expected a .safetensors file, a Hugging Face model folder or a PEFT adapter folder")
    if not path.is_dir():
        raise UserError(f"{path}: not found (expected a .safetensors file or a checkpoint folder)")
    if (path / PEFT_CONFIG).is_file():
        return "peft"
    if (path / HF_SINGLE).is_file() or (path / HF_INDEX).is_file():
        return "hf"
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise _pickle_refusal(path, pickled[0], "model")
    raise UserError(
        f"{path}: expected {HF_SINGLE} or {HF_INDEX} (a Hugging Face model folder) "
        f"or {PEFT_CONFIG} + {PEFT_WEIGHTS} (a PEFT adapter folder)"
    )


def _read(file: Path, prefix: str | None = None) -> Weights:
    """`safetensors.torch.load_file`, reading only the tensors under `prefix`: keeping a head of a
    7B checkpoint should not read the 7B."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys() if prefix is None or k.startswith(prefix)}
    except Exception as e:  # SafetensorError, OSError: a truncated or foreign file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{file}: not a readable safetensors file ({first})") from e


def _read_hf(folder: Path, prefix: str | None) -> Weights:
    """A `save_pretrained` folder, one file or shards listed by the index; every key the index
    promises must be there, so a partly copied folder fails here and not mid-merge."""
    if (folder / HF_SINGLE).is_file():
        return _read(folder / HF_SINGLE, prefix)
    index_file = folder / HF_INDEX
    if not index_file.is_file():
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
        if pickled:
            raise _pickle_refusal(folder, pickled[0], "model")
        raise UserError(f"{folder}: expected {HF_SINGLE} or {HF_INDEX} (a Hugging Face model folder)")
    try:
        weight_map = json.loads(index_file.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{index_file}: expected JSON with a 'weight_map' ({type(e).__name__})") from e
    out: Weights = {}
    for shard in sorted(set(weight_map.values())):
        if not (folder / shard).is_file():
            raise UserError(f"{folder}: shard {shard} listed in {HF_INDEX} is missing")
        out.update(_read(folder / shard, prefix))
    missing = [k for k in weight_map if (prefix is None or k.startswith(prefix)) and k not in out]
    if missing:
        raise UserError(f"{folder}: tensor {missing[0]} listed in {HF_INDEX} is in none of its shards")
    return out


def _peft_config(folder: Path) -> dict:
    """The adapter's config, refusing what its dense delta cannot express (see UNSUPPORTED_PEFT)."""
    try:
        cfg = json.loads((folder / PEFT_CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / PEFT_CONFIG}: expected a PEFT adapter config ({type(e).__name__})") from e
    if cfg.get("peft_type", "LORA") != "LORA":
        raise UserError(f"{folder}: only LoRA adapters are supported (peft_type is {cfg['peft_type']})")
    for field in UNSUPPORTED_PEFT:
        if cfg.get(field):
            raise UserError(f"{folder}: LoRA adapters with {field} are not supported (their merge is not W + B@A)")
    if not (folder / PEFT_WEIGHTS).is_file():
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise _pickle_refusal(folder, pickled[0], "peft_model")
        raise UserError(f"{folder}: expected {PEFT_WEIGHTS} beside {PEFT_CONFIG}")
    return cfg


def _pattern_value(patterns: dict, module: str, default):
    """peft's `get_pattern_key`: the first pattern that matches the end of the module's name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _orient(delta: torch.Tensor, fan_in_fan_out: bool, base: torch.Tensor | None) -> torch.Tensor:
    """B@A is (out, in); Conv1D (GPT-2) stores (in, out). peft picks the layout per module from its
    type and rewrites `fan_in_fan_out` as it goes, so the saved flag is reliable only for a model of
    one layer type: the base's shape decides wherever it can (a non-square matrix)."""
    if base is not None and delta.shape[0] != delta.shape[1]:
        if delta.shape == base.shape:
            return delta
        if delta.T.shape == base.shape:
            return delta.T
    return delta.T if fan_in_fan_out else delta


def _base_tensor(folder: Path, base: Weights, name: str, shape: torch.Size) -> torch.Tensor:
    """The base weight an adapter changes; a missing key or another shape means another base."""
    if name not in base:
        raise UserError(f"{folder}: the adapter changes {name}, which the base weights lack (another base model?)")
    if base[name].shape != shape:
        raise UserError(
            f"{folder}: the adapter's {name} is {tuple(shape)}, the base's {tuple(base[name].shape)} (another base model?)"
        )
    return base[name]


def _module_delta(
    folder: Path, cfg: dict, module: str, ab: dict[str, torch.Tensor], embedding: bool, base: Weights | None
) -> torch.Tensor:
    """ΔW of one module exactly as peft's `get_delta_weight` computes it (r and alpha per module from
    `rank_pattern`/`alpha_pattern`, rsLoRA's α/√r), in float32 or wider."""
    if set(ab) != {"A", "B"}:
        raise UserError(f"{folder}: module {module} has lora_{next(iter(ab))} but not both LoRA factors")
    A, B = ab["A"], ab["B"]
    if A.ndim != 2 or B.ndim != 2:
        raise UserError(f"{folder}: LoRA on {module} is not a matrix LoRA (convolution LoRA is not supported)")
    r = int(_pattern_value(cfg.get("rank_pattern") or {}, module, cfg.get("r", A.shape[0])))
    if A.shape[0] != r or B.shape[1] != r:
        raise UserError(f"{folder}: LoRA factors of {module} have rank {A.shape[0]}, its config says r={r}")
    alpha = float(_pattern_value(cfg.get("alpha_pattern") or {}, module, cfg.get("lora_alpha", r)))
    scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    dtype = torch.promote_types(A.dtype, torch.float32)
    delta = B.to(dtype) @ A.to(dtype)
    name = f"{module}.weight"
    if embedding:
        delta = delta.T  # peft's Embedding: transpose(B @ A, True)
    else:
        delta = _orient(delta, bool(cfg.get("fan_in_fan_out")), None if base is None else base.get(name))
    if base is not None:
        _base_tensor(folder, base, name, delta.shape)
    return delta * scaling


def _peft_parts(folder: Path, base: Weights | None, prefix: str | None = None) -> tuple[Weights, Weights]:
    """(dense deltas of the LoRA modules, whole tensors the adapter saves), with base-model names
    and only under `prefix`: peft's `base_model.model.` is dropped (adapters saved by transformers'
    own PEFT integration have none), and so is the `.base_layer` of an embedding peft saves whole
    (`save_embedding_layers`)."""
    cfg = _peft_config(folder)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    embeddings: set[str] = set()
    whole: Weights = {}
    for key, t in _read(folder / PEFT_WEIGHTS).items():
        name = key.removeprefix(PEFT_PREFIX)
        m = LORA_KEY.match(name)
        if m:
            parts.setdefault(m["module"], {})["A" if "A" in m["part"] else "B"] = t
            if "embedding" in m["part"]:
                embeddings.add(m["module"])
        elif "lora_" in name:
            raise UserError(f"{folder}: unsupported LoRA tensor {key} (expected lora_A/lora_B or lora_embedding_A/B)")
        else:
            whole[name.replace(".base_layer.", ".")] = t
    if not parts:
        raise UserError(f"{folder}: {PEFT_WEIGHTS} holds no LoRA factors")
    keep = lambda name: prefix is None or name.startswith(prefix)
    deltas = {
        f"{m}.weight": _module_delta(folder, cfg, m, ab, m in embeddings, base)
        for m, ab in parts.items()
        if keep(f"{m}.weight")
    }
    return deltas, {k: t for k, t in whole.items() if keep(k)}


def peft_dense_deltas(folder: Path, *, base: Weights | None = None) -> Weights:
    """The dense change ΔW = scaling · B @ A of every adapted module, keyed `<module>.weight` (the
    base weight it changes), in float32 or wider so a bf16 adapter's product loses nothing.

    Whole tensors the adapter saves (`modules_to_save`, e.g. the classifier peft adds for SEQ_CLS,
    or biases with `bias: all`) replace the base's; as deltas they are `saved − base`, so they need
    `base`, and without it such an adapter is a one-line error. With `base`, every key and shape is
    also checked against it, and Conv1D layouts are read from its shapes (see `_orient`).
    """
    folder = Path(folder)
    deltas, whole = _peft_parts(folder, base)
    for name, t in whole.items():
        if base is None:
            raise UserError(f"{folder}: the adapter saves whole tensors ({name}); pass the base model's weights")
        b = _base_tensor(folder, base, name, t.shape)
        dtype = torch.promote_types(torch.promote_types(t.dtype, b.dtype), torch.float32)
        deltas[name] = deltas.get(name, 0) + (t.to(dtype) - b.to("cpu", dtype))
    return deltas


def _apply_peft(folder: Path, base: Weights, prefix: str | None) -> Weights:
    """What peft's `merge_and_unload` gives: whole saved tensors as they are (not base + (saved −
    base), which would round), then + ΔW on the adapted keys. Tensors tied in `base` (GPT-2's
    `lm_head` and `wte`) change together, as peft's in-place merge changes both. Everything else is
    the base's own tensor object: K adapters over one base cost one base in memory, not K."""
    deltas, whole = _peft_parts(folder, base, prefix)
    out = {k: v for k, v in base.items() if prefix is None or k.startswith(prefix)}
    for name, t in whole.items():
        b = _base_tensor(folder, base, name, t.shape)
        out[name] = t.to(b.device, b.dtype)
    for name, d in deltas.items():
        out[name] = (out[name].to(d.dtype) + d.to(out[name].device)).to(base[name].dtype)
    changed = {base[n].data_ptr(): n for n in [*whole, *deltas] if base[n].numel()}
    for key, v in out.items():
        source = changed.get(v.data_ptr()) if v.numel() and key not in whole and key not in deltas else None
        if source is not None and v.shape == base[source].shape:
            out[key] = out[source]
    return out


def load_checkpoint(spec: CheckpointSpec, base_dir: str | None = None, *, base: Weights | None = None) -> Weights:
    """One anchor's weights, names as the checkpoint spells them. A PEFT adapter needs `base` (the
    base model's weights, same names) because an adapter alone is a change, not a model; tensors it
    does not change are `base`'s own objects (not copies), so callers must not modify them in place."""
    path = resolve_path(spec.path, base_dir)
    kind = checkpoint_kind(path) if spec.kind == "auto" else spec.kind
    if kind == "safetensors":
        if not path.is_file():
            raise UserError(f"{path}: expected a .safetensors file (kind: safetensors)")
        weights = _read(path, spec.prefix)
    elif kind == "hf":
        if not path.is_dir():
            raise UserError(f"{path}: expected a Hugging Face model folder (kind: hf)")
        weights = _read_hf(path, spec.prefix)
    else:
        if not (path / PEFT_CONFIG).is_file():
            raise UserError(f"{path}: expected a PEFT adapter folder with {PEFT_CONFIG} (kind: peft)")
        if base is None:
            raise UserError(f"{path}: a PEFT adapter needs the base model's weights to apply to (none given)")
        weights = _apply_peft(path, base, spec.prefix)
    if not weights:
        raise UserError(f"{path}: no tensors" + (f" whose name starts with {spec.prefix!r}" if spec.prefix else ""))
    return weights


def _difference(first: Weights, other: Weights) -> str | None:
    """Why `other` cannot be merged with `first`, or None: merges pair tensors by name and shape, and
    a non-floating tensor (token ids, a step counter) has no average, so it must be the same."""
    for key in first:
        if key not in other:
            return f"lacks {key}"
    for key in other:
        if key not in first:
            return f"has {key}, which anchors[0] lacks"
    for key, a in first.items():
        b = other[key]
        if a.shape != b.shape:
            return f"{key} is {tuple(b.shape)}, in anchors[0] {tuple(a.shape)}"
        floating = a.is_floating_point() or a.is_complex()
        if floating != (b.is_floating_point() or b.is_complex()):
            return f"{key} is {b.dtype}, in anchors[0] {a.dtype}"
        if not floating and (a.dtype != b.dtype or not torch.equal(a, b)):
            return f"non-floating {key} differs from anchors[0]'s (only floating tensors can be merged)"
    return None


def load_anchors(
    specs: Sequence[CheckpointSpec], base_dir: str | None = None, *, base: Weights | None = None
) -> list[Weights]:
    """Every anchor, checked to line up with the first before any merge runs: a mismatch found here
    names the anchor and the key; found inside a merge it would be a shape error in a worker."""
    if len(specs) < 2:
        raise UserError(f"anchors: a merge needs at least 2 checkpoints (got {len(specs)})")
    anchors: list[Weights] = []
    for i, spec in enumerate(specs):
        try:
            weights = load_checkpoint(spec, base_dir, base=base)
        except UserError as e:
            raise UserError(f"anchors[{i}]: {e}") from e
        if anchors and (why := _difference(anchors[0], weights)):
            raise UserError(f"anchors[{i}] ({spec.path}): {why}")
        anchors.append(weights)
    return anchors
