"""Finding components: installed plugins by entry point, or any importable `module:attr`.

evofair's own problems and operators are plugins like anyone else's: each is announced in an
entry-point group named after its kind (`evofair.problem`, `evofair.crossover`, ... see `GROUPS`)
by the distribution that ships it (evofair's pyproject.toml for the built-ins). A recipe names a
component either by its entry-point name (`name: biasbios`) or, for code that is not installed as
a plugin, by reference (`name: "my_pkg.my_module:MyProblem"`), imported from the installed
packages, PYTHONPATH and the extra search folders given (the recipe's own folder, so that a
`my_problem.py` next to a recipe just works).

Looking a name up imports only the module that defines it, so a ZDT run never imports
transformers; listing reads entry-point metadata and imports every plugin module.

A run directory travels (zipped, attached to a paper), and its config.yaml may name
`evilmod:Problem` with the folder itself on `paths`: importing that would run whatever the sender
planted. So code named by a recipe the user did not write is refused here, in the one place every
lookup passes: inside `code_trust(False, source)` a `module:attr` reference raises `UntrustedCode`
(one line saying how to allow it) before any search folder is put on `sys.path`. Installed entry
points stay available: the user installed them. Commands that read a run (report, export,
explore, `evofair.load`, `--resume`) enter that context unless the user passes `--trust-code`.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from evofair.core.registry import NoArgs, Spec, spec_of
from evofair.errors import UserError

#: component kind → entry-point group
GROUPS = {
    "problem": "evofair.problem",
    "experiment": "evofair.experiment",
    "crossover": "evofair.crossover",
    "mutation": "evofair.mutation",
    "refine": "evofair.refine",
    "vector_crossover": "evofair.vector_crossover",
    "vector_mutation": "evofair.vector_mutation",
    "callback": "evofair.callback",  # run trackers (evofair.tracking): recipe `callbacks:`
    "genome": "evofair.genome",  # representations a problem may name as its `genome` (evofair.core.genome)
    "executor": "evofair.executor",  # where offspring are made and evaluated (evofair.executors): `executor:`
}
OPERATOR_KINDS = ("crossover", "mutation", "refine", "vector_crossover", "vector_mutation")


def is_reference(name: str) -> bool:
    """`package.module:attr` names code directly instead of an installed plugin."""
    return ":" in name


TRUST_HINT = "pass --trust-code (Python: trust_code=True) to import it"

#: the file whose `module:attr` names are refused in this context (None: the user's own recipe)
_UNTRUSTED_SOURCE: ContextVar[str | None] = ContextVar("evofair_untrusted_source", default=None)


class UntrustedCode(UserError):
    """A `module:attr` named by a run directory was not imported: doing so would run its code."""


@contextmanager
def code_trust(trusted: bool, source: str | Path = "config.yaml") -> Iterator[None]:
    """Within: `module:attr` references are refused unless `trusted` (named by `source`).

    Trust only narrows: `trusted=True` inside a refusing context keeps refusing, so a library call
    that trusts its own recipe cannot reopen what a command reading a folder closed.
    """
    if trusted:
        yield
        return
    token = _UNTRUSTED_SOURCE.set(str(source))
    try:
        yield
    finally:
        _UNTRUSTED_SOURCE.reset(token)


@cache
def _entry_points(group: str) -> tuple[EntryPoint, ...]:
    # importlib.metadata scans every distribution on sys.path (~10 ms); plugins do not appear
    # while a process runs, except through `refresh()` (tests that install one).
    return tuple(sorted(entry_points(group=group), key=lambda ep: ep.name))


def refresh() -> None:
    """Forget the cached entry points (after installing a plugin into the running interpreter)."""
    _entry_points.cache_clear()


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _import_reference(ref: str, kind: str, where: str, search: Sequence[str | Path]) -> object:
    module_name, _, attr = ref.partition(":")
    if not _DOTTED.fullmatch(module_name) or not _DOTTED.fullmatch(attr):
        # `.evil:X` is a relative import, which importlib refuses with a TypeError
        raise UserError(f"{where}: {ref!r}: expected 'package.module:Name' (an absolute module path)")
    added = [str(p) for p in search if str(p) not in sys.path]
    sys.path.extend(added)  # searched after everything installed, so no installed module is shadowed
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            folders = ", ".join(str(p) for p in search) or "none"
            raise UserError(
                f"{where}: cannot import module {module_name!r} for {kind} {ref!r} (not installed, "
                f"not on PYTHONPATH nor in the recipe's folder: {folders})"
            ) from None
        raise
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{where}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _as_spec(obj: object, name: str, kind: str, where: str) -> Spec:
    spec = spec_of(obj)
    if spec is None:
        if kind == "genome" and hasattr(obj, "encoding") and hasattr(obj, "key"):
            # a Genome subclass or instance needs no decorator: it has no arguments
            return Spec(name, kind, obj, NoArgs, (obj.__doc__ or "").split("\n")[0])  # type: ignore[arg-type]
        if kind == "problem" and isinstance(obj, type):
            # a Problem subclass needs no decorator (duck-typed: evofair.core.problem imports the engine's
            # genomes, which look operators up here)
            if callable(getattr(obj, "evaluate", None)) and hasattr(obj, "objectives") and hasattr(obj, "genome"):
                return Spec(name, kind, obj, getattr(obj, "Params", NoArgs), (obj.__doc__ or "").split("\n")[0])
        # An unmarked function is taken as an operator with no arguments; a class never is (a
        # Problem class named as a mutation would otherwise pass validation and fail mid-run).
        if kind != "problem" and callable(obj) and not isinstance(obj, type):
            return Spec(name, kind, obj, NoArgs, (getattr(obj, "__doc__", "") or "").split("\n")[0])
        expected = (
            "a Problem subclass"
            if kind == "problem"
            else f"a {'class or ' if kind == 'callback' else ''}function marked with evofair.core.registry.component({kind!r}, ...)"
        )
        raise UserError(f"{where}: {name!r} is not a {kind} (expected {expected})")
    if spec.kind != kind:
        raise UserError(f"{where}: {name!r} is a {spec.kind}, not a {kind}")
    return spec if spec.name == name else Spec(name, spec.kind, spec.fn, spec.args, spec.doc, spec.tags)


class PluginRegistry:
    """Name → component of one kind, from entry points or `module:attr` references."""

    def __init__(self, kind: str, search: Iterable[str | Path] = ()):
        if kind not in GROUPS:
            raise ValueError(f"unknown component kind {kind!r} (expected one of {', '.join(GROUPS)})")
        self.kind = kind
        self.search = tuple(search)

    def names(self) -> list[str]:
        """Installed names, read from metadata (nothing is imported)."""
        return [ep.name for ep in _entry_points(GROUPS[self.kind])]

    def get(self, name: str, where: str = "") -> Spec:
        where = where or self.kind
        if is_reference(name):
            source = _UNTRUSTED_SOURCE.get()
            if source is not None:  # before the search folders reach sys.path
                named = "" if where.startswith(source) else f" named by {source}"
                raise UntrustedCode(
                    f"{where}: {self.kind} {name!r}{named} was not imported (code from a run "
                    f"directory runs only when trusted); {TRUST_HINT}"
                )
            return _as_spec(_import_reference(name, self.kind, where, self.search), name, self.kind, where)
        for ep in _entry_points(GROUPS[self.kind]):
            if ep.name == name:
                return _as_spec(ep.load(), name, self.kind, f"{where} (entry point {ep.value})")
        known = ", ".join(self.names()) or "none installed"
        raise UserError(f"{where}: unknown {self.kind} {name!r} (expected one of: {known}, or 'package.module:Name')")

    def __contains__(self, name: str) -> bool:
        return is_reference(name) or name in self.names()

    def __iter__(self) -> Iterator[Spec]:
        """Every installed component of this kind (imports each plugin module)."""
        return iter([self.get(n) for n in self.names()])


def registry(kind: str, search: Iterable[str | Path] = ()) -> PluginRegistry:
    return PluginRegistry(kind, search)
