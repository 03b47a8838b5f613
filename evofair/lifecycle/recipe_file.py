"""Reading a recipe from a file or `--set` overrides, safely, before any validation.

A recipe file may come from anyone: it is read as YAML with duplicate keys refused, capped in size,
depth and number of values, and never constructs Python objects. The result is a plain tree that
`evofair.lifecycle.recipe.parse_recipe` then validates.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from evofair.core.plugins import is_reference
from evofair.errors import UserError

MAX_RECIPE_BYTES = 1_000_000


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise UserError(f"--set {dotted}: expected a dotted KEY such as algorithm.pop_size")
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"--set {dotted}: {k!r} is not a mapping")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` overrides; values are parsed as YAML (safe, duplicate keys refused)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        if len(value) > MAX_RECIPE_BYTES:
            raise UserError(
                f"--set {key[:60]}: value of {len(value)} characters is over the {MAX_RECIPE_BYTES}-byte recipe limit"
            )
        if _flow_depth(value) + key.count(".") + 1 > MAX_RECIPE_DEPTH:  # before the parser recurses
            raise UserError(f"--set {key[:60]}: value nested deeper than {MAX_RECIPE_DEPTH} levels")
        try:
            parsed = yaml.load(value, Loader=_SetLoader) if value else None
        except UserError as exc:
            raise UserError(f"--set {key}: {exc}") from None
        except (yaml.YAMLError, RecursionError):
            raise UserError(f"--set {key}: value {value[:80]!r} is not valid YAML") from None
        _set_dotted(out, key, parsed)
    return out


def _flow_depth(text: str) -> int:
    """Deepest nesting of `[`/`{` brackets (outside quotes) or of indentation in a YAML value.

    Measured on the text because PyYAML's parser recurses once per level: 5,000 nested `[` would
    exhaust the stack (a RecursionError deep inside the parser) before any depth check could run.
    """
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    indents = {len(line) - len(line.lstrip(" -")) for line in text.splitlines() if line.strip()}
    return max(deepest, len(indents))


class _StrictLoader(yaml.SafeLoader):
    """safe_load that rejects duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if duplicate:
                raise UserError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        return super().construct_mapping(node, deep=deep)


class _SetLoader(_StrictLoader):
    """The loader of `--set` values: YAML 1.1 reads `010` as octal 8 and `1:30` as 90 (base 60),
    while `--seed 010` is 10; such integers are refused as ambiguous instead of read either way."""

    def construct_yaml_int(self, node):
        text = str(node.value).replace("_", "").lstrip("+-")
        if ":" in text or (len(text) > 1 and text[0] == "0" and text[1:].isdigit()):
            base, part = ("60", "the colons") if ":" in text else ("8", "the leading 0")
            raise UserError(
                f"value {node.value!r} is ambiguous (YAML reads it in base {base}, as "
                f"{super().construct_yaml_int(node)}): write the number without {part}, or quote it for a string"
            )
        return super().construct_yaml_int(node)


_SetLoader.add_constructor("tag:yaml.org,2002:int", _SetLoader.construct_yaml_int)


MAX_RECIPE_VALUES = 100_000
MAX_RECIPE_DEPTH = 50


def check_shape(tree: Any, source: str) -> None:
    """Refuse recipes that would exhaust memory or the stack later (while validating or saving).

    YAML anchors let a 1 kB file expand to billions of values when the recipe is validated or
    written back, and deep nesting overflows pydantic's serializer after the run directory exists.
    Shared (aliased) nodes are counted each time they are reached; counting stops at the limit.
    """
    stack, n = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        n += 1
        if n > MAX_RECIPE_VALUES:
            raise UserError(f"{source}: recipe expands to more than {MAX_RECIPE_VALUES} values (YAML aliases?)")
        if depth > MAX_RECIPE_DEPTH:
            raise UserError(f"{source}: recipe nested deeper than {MAX_RECIPE_DEPTH} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def _read_recipe_text(path: Path) -> str:
    """The recipe file's text: a regular file of at most MAX_RECIPE_BYTES (read so, not trusted
    from its size: `/dev/zero` or a FIFO reports 0 bytes), or a one-line error."""
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{path}: recipe file not found") from None
    except OSError as exc:
        reasons = {errno.ELOOP: "a symbolic link loop", errno.ENAMETOOLONG: "file name too long"}
        why = reasons.get(exc.errno or 0, exc.strerror or "")
        raise UserError(f"{path}: cannot read recipe ({why})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise UserError(f"{path}: cannot read recipe ({what}, expected a YAML file)")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise UserError(f"{path}: recipe larger than {MAX_RECIPE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: cannot read recipe (not UTF-8 text)") from None


def read_recipe_file(path: str | Path) -> dict:
    path = Path(path)
    text = _read_recipe_text(path)
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python objects
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except RecursionError:
        raise UserError(f"{path}: recipe nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", "") or "").split())
        raise UserError(f"{path}:{where} not valid YAML" + (f" ({problem})" if problem else "")) from None
    if raw is None:
        raise UserError(f"{path}: empty recipe (expected a YAML mapping with at least `problem:`)")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping, got a {type(raw).__name__}")
    check_shape(raw, str(path))
    raw.setdefault("name", path.stem)
    if "experiment" not in raw:  # kept on --resume: config.yaml records the original recipe's folder
        raw.setdefault("base_dir", str(path.resolve().parent))
    return look_next_to(raw, path)


def look_next_to(raw: dict, path: str | Path) -> dict:
    """A recipe that names components by `module:attr` finds their modules next to its file too
    (its `paths` made absolute against that folder). Called again after `--set`, so a name given
    there is found where the same name written in the file would be; calling it twice is harmless."""
    if _references(raw):
        here = Path(path).resolve().parent
        listed = raw.get("paths")
        paths = listed if isinstance(listed, list) else []
        raw["paths"] = list(dict.fromkeys([str(here)] + [str(here / str(p)) for p in paths]))
    return raw


def _references(raw: Mapping[str, Any]) -> bool:
    """Does the recipe name any component by `module:attr`?"""
    return bool(named_code(raw))


def named_code(raw: Mapping[str, Any]) -> list[str]:
    """The `key: module:attr` components a raw recipe names (what importing it would run)."""
    names = []
    for key in ("problem", "experiment", "executor"):
        if isinstance(raw.get(key), Mapping):
            names.append(raw[key].get("name"))
    ops = raw.get("operators")
    if isinstance(ops, Mapping):
        for key in ("crossover", "mutation", "refine"):
            value = ops.get(key)
            for cfg in value if isinstance(value, list) else [value]:
                if isinstance(cfg, Mapping):
                    names.append(cfg.get("name"))
    callbacks = raw.get("callbacks")
    for cfg in callbacks if isinstance(callbacks, list) else []:
        if isinstance(cfg, Mapping):
            names.append(cfg.get("name"))
    return [n for n in names if isinstance(n, str) and is_reference(n)]


def named_code_note(root: Path) -> list[str]:
    """A note for `evofair verify` when a run's config.yaml names code by `module:Name`: verify
    imports nothing, and says that the other commands will not either without --trust-code."""
    try:
        names = named_code(read_recipe_file(root / "config.yaml"))
    except UserError:
        return []  # no or unreadable config.yaml: the store's own check speaks for the run
    if not names:
        return []
    return [
        f"{root / 'config.yaml'} names code by module path ({', '.join(names[:5])}); nothing was imported: "
        "report, export, explore and --resume import it only with --trust-code"
    ]
