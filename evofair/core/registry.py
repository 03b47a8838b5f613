"""Typed components (problems, operators, experiments) and the one-line errors of their arguments.

Modelled on mergekit's merge-method registry: one decorated function is one method, with its
parameters declared once as a pydantic model so recipes are validated and documented in one place.
The decorator only *annotates* the function, so importing a module never mutates shared state;
`evofair.core.plugins` finds components by entry point or `module:attr` reference.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from evofair.errors import UserError


class Args(BaseModel):
    """Base class for an operator's arguments: unknown keys are errors, values are typed."""

    # allow_inf_nan=False: `sigma: .inf` or `lr: .nan` is never meant, and would put models with
    # non-finite weights into a run; every component's float arguments are finite
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoArgs(Args):
    pass


@dataclass(frozen=True)
class Spec:
    """What a registered component is: its name, kind, argument model and implementation."""

    name: str
    kind: str
    fn: Callable[..., Any]
    args: type[Args] = NoArgs
    doc: str = ""
    tags: Mapping[str, Any] = field(default_factory=dict)

    def parse_args(self, raw: Mapping[str, Any] | None, where: str) -> Args:
        """Validate recipe arguments; errors name the recipe field and what was expected."""
        if raw is not None and not isinstance(raw, Mapping):
            raise UserError(f"{where}: expected a mapping of arguments, got {type(raw).__name__}")
        try:
            return self.args.model_validate(dict(raw or {}))
        except ValidationError as exc:
            path, msg = explain_validation_error(exc, self.args, dict(raw or {}))
            raise UserError(f"{where}.{path}: {msg}" if path else f"{where}: {msg}") from None


def explain_validation_error(exc: ValidationError, model: type[BaseModel], data: Any) -> tuple[str, str]:
    """(dotted path, what was expected) for the most useful of pydantic's errors, on one line.

    Pydantic reports every error, with union-branch tags such as ``list[OpCfg]`` inside the
    location and jargon such as "Extra inputs are not permitted". A user needs one line naming the
    key as written in their file: a misspelled key first (it usually also explains a "missing"
    one), the deepest error under a union field (the branch that matched the input's shape), and a
    "did you mean" from the fields allowed at that place.
    """
    errors = exc.errors()
    located = [(e, *_user_path(e, data)) for e in errors]
    extra = [x for x in located if x[0]["type"] == "extra_forbidden"]
    err, parts, labels = (extra or located)[0]
    under = [x for x in located if x[1][: len(parts)] == parts]
    deepest = max(len(x[1]) for x in under)
    if deepest > len(parts):
        err, parts, labels = next(x for x in under if len(x[1]) == deepest)
        alternatives = [err]
    else:
        alternatives = [x[0] for x in under if x[1] == parts]
    path = "".join(labels).lstrip(".")
    if err["type"] == "extra_forbidden":
        allowed = sorted(_fields_at(model, [p for p in parts[:-1] if isinstance(p, str)]))
        key = str(parts[-1]) if parts else ""
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = (
            f" (did you mean {close[0]!r}?)"
            if close
            else (f" (expected one of: {', '.join(allowed)})" if allowed else "")
        )
        return path, "unknown key" + hint
    if err["type"] == "missing":
        return path, "required key missing"
    msgs = list(dict.fromkeys(_plain(e["msg"]) for e in alternatives))
    msg = msgs[0] if len(msgs) == 1 else "expected " + " or ".join(m.removeprefix("Input should be ") for m in msgs)
    value = err.get("input")
    if not isinstance(value, (dict, list, tuple)) and err["type"] not in ("missing", "extra_forbidden"):
        shown = repr(value)
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return path, msg


def _user_path(err: Mapping[str, Any], data: Any) -> tuple[tuple, list[str]]:
    """The error location as keys of the user's document, without pydantic's union tags."""
    loc = err["loc"]
    parts, labels, node = [], [], data
    for k, part in enumerate(loc):
        last = k == len(loc) - 1
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(part)
            labels.append(f"[{part}]")
            node = node[part]
            continue
        elif not (last and isinstance(node, Mapping) and err["type"] == "missing"):
            continue  # a union tag such as 'list[OpCfg]', or a '[key]' marker
        parts.append(part)
        labels.append(f".{part}")
    return tuple(parts), labels


def _fields_at(model: type[BaseModel], keys: list[str]) -> set[str]:
    """Keys allowed in the mapping reached from `model` through `keys` (aliases as written)."""
    models = [model]
    for key in keys:
        nxt = []
        for m in models:
            for name, f in m.model_fields.items():
                if key in (name, f.alias):
                    nxt.extend(_models_in(f.annotation))
        models = nxt
    return {f.alias or name for m in models for name, f in m.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _plain(msg: str) -> str:
    return re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", msg).replace("\n", " ")


_ATTR = "__evofair_spec__"


def spec_of(obj: Any) -> Spec | None:
    """The Spec a `component` decorator put on `obj` (a subclass does not inherit its parent's)."""
    spec = vars(obj).get(_ATTR) if isinstance(obj, type) else getattr(obj, _ATTR, None)
    return spec if isinstance(spec, Spec) else None


def component(kind: str, name: str | None = None, args: type[Args] = NoArgs, **tags: Any):
    """Mark a function or class as a registrable component of `kind`."""

    def mark(fn):
        doc = inspect.getdoc(fn) or ""
        setattr(fn, _ATTR, Spec(name or fn.__name__, kind, fn, args, doc.split("\n")[0], tags))
        return fn

    return mark
