"""JSON round-trip for the numeric state an algorithm keeps (numpy arrays and scalars).

Resume rebuilds an algorithm from the store instead of unpickling it, so what it needs beyond
the population (RNG state, ranks, crowding distances, NSGA-III's normalisation points) is saved
as JSON with each generation.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} as engine state")


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        if "__float__" in value:
            return float(value["__float__"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def numeric_attributes(obj: Any, depth: int = 1) -> dict[str, Any]:
    """Numeric numpy attributes of `obj` (and of its attribute objects, `depth` levels down)."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[name] = to_json(value)
        elif depth > 0 and hasattr(value, "__dict__") and not isinstance(value, type):
            inner = numeric_attributes(value, depth - 1)
            if inner:
                out[name] = {"__object__": inner}
    return out


def set_numeric_attributes(obj: Any, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        if isinstance(value, dict) and "__object__" in value:
            set_numeric_attributes(getattr(obj, name), value["__object__"])
        else:
            setattr(obj, name, from_json(value))
