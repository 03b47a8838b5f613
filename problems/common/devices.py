"""Where the text-classification problems compute (`problem.args.device`) and in which precision (`precision`).

Why a problem argument and not a top-level recipe key: the device is a property of how a problem
computes (its encoder, its cached tensors), every Ray actor builds its own problem from the same
arguments, and an `auto` device resolves per process, so an actor that Ray gave a GPU uses it and
the driver without one does not. The resolved device and dtype are reported by `describe()`.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from pydantic import Field

from evofair.core.registry import Args
from evofair.errors import UserError

DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d+)$"
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceArgs(Args):
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description="auto (cuda when torch sees one, else cpu) | cpu | cuda | cuda:N"
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="autocast dtype of the encoder (embedding, LoRA training and evaluation); "
        "the heads and every metric stay in float32/float64",
    )


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device for `spec`; a CUDA device that is not visible is a one-line UserError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(
            f"problem.args.device: {spec} asked for, but torch sees no CUDA device here (use device: auto or cpu)"
        )
    device = torch.device(spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"problem.args.device: {spec}, but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def check_precision(device: torch.device, precision: str) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"problem.args.precision: fp16 autocast needs a CUDA device, not {device} (use bf16 or fp32)")


def autocast(device: torch.device, precision: str = "fp32"):
    """torch.autocast for a non-fp32 precision (fp16 only on CUDA); a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    check_precision(device, precision)
    return torch.autocast(device_type=device.type, dtype=PRECISION_DTYPES[precision])


def describe_device(device: torch.device, precision: str = "fp32") -> dict[str, str]:
    """What report.md and the model card say about where a run computed."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": str(device),
        "device_name": name,
        "precision": precision,
        "dtype": "float32" if precision == "fp32" else f"float32 with {precision} autocast",
    }
