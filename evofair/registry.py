"""Registries of named, typed components (operators, problems, refiners).

Modelled on mergekit's merge-method registry: one decorated function is one method, with its
parameters declared once as a pydantic model so recipes are validated and documented in one place.
The decorator only *annotates* the function; a `Registry` is built explicitly from modules, so
importing a module never mutates shared state.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from evofair.errors import UserError


class Args(BaseModel):
    """Base class for an operator's arguments: unknown keys are errors, values are typed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        try:
            return self.args(**dict(raw or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise UserError(f"{where}.{loc}: {err['msg']}") from None


_ATTR = "__evofair_spec__"


def component(kind: str, name: str | None = None, args: type[Args] = NoArgs, **tags: Any):
    """Mark a function or class as a registrable component of `kind`."""

    def mark(fn):
        doc = inspect.getdoc(fn) or ""
        setattr(fn, _ATTR, Spec(name or fn.__name__, kind, fn, args, doc.split("\n")[0], tags))
        return fn

    return mark


class Registry:
    """An immutable name → Spec table for one kind of component."""

    def __init__(self, kind: str, specs: Iterable[Spec]):
        table: dict[str, Spec] = {}
        for spec in specs:
            if spec.kind != kind:
                continue
            if spec.name in table and table[spec.name].fn is not spec.fn:
                raise ValueError(f"two {kind} components named {spec.name!r}")
            table[spec.name] = spec
        self.kind = kind
        self._table = MappingProxyType(table)

    @classmethod
    def from_modules(cls, kind: str, modules: Iterable[ModuleType]) -> "Registry":
        specs = []
        for module in modules:
            for value in vars(module).values():
                spec = getattr(value, _ATTR, None)
                if isinstance(spec, Spec):
                    specs.append(spec)
        return cls(kind, specs)

    def get(self, name: str, where: str = "") -> Spec:
        try:
            return self._table[name]
        except KeyError:
            known = ", ".join(sorted(self._table)) or "none"
            field_ = f"{where}: " if where else ""
            raise UserError(f"{field_}unknown {self.kind} {name!r} (expected one of: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def __iter__(self):
        return iter(self._table.values())
