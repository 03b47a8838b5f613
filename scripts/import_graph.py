#!/usr/bin/env python3
"""The import graph of an evofair checkout, read from the source text: nothing is imported or run.

Why: the core must not name its plugins, a problem family must stand alone, and shared code must
not depend on what builds on it. These are properties of the whole tree that no single test
exercises, so this script checks them from the files (ast, a second or so) and
tests/test_import_graph.py fails when one breaks. Every import counts, also those inside functions
or under `if TYPE_CHECKING:`: they hide a dependency, they do not remove it.

Layers, lowest first: the core (`evofair/`) < `operators/` < the shared problem code (`problems/`
outside a family, i.e. `problems/__init__.py` and `problems/common/`) < the problem families (the
folders under `problems/` that pyproject.toml announces an `evofair.problem` entry point from). An
import from a lower layer into a higher one points back. Reported:

- core -> plugin: a file under `evofair/` importing `operators/` or `problems/`;
- family -> family: one family importing another (families share through `problems/common/`);
- back-pointing: `operators/` or the shared problem code importing a higher layer;
- cycles: strongly connected components of more than one file;
- core layers: inside `evofair/`, an import from a lower to a higher subpackage of `CORE_LAYERS`
  (the order docs/architecture.md draws: contracts at the bottom, the API and CLI on top).

Usage: import_graph.py [CHECKOUT]. Exit status 0 when every count is zero.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

#: subpackages and modules of `evofair/`, lowest layer first (`evofair/__init__.py`, the public API,
#: sits in the highest layer it re-exports from)
CORE_LAYERS = [
    "errors",
    "core",
    "store",
    "tracking",
    "lifecycle",
    "engine",
    "executors",
    "analysis",
    "explorer",
    "api",
    "cli",
]
#: top-level folders that hold no installed code
NOT_CODE = {"tests", "benchmarks", "studies", "scripts", "docs", "data", "runs", "build", "dist"}
CORE, OPERATORS, SHARED, FAMILY = 0, 1, 2, 3
LAYER_NAMES = {CORE: "core", OPERATORS: "operators", SHARED: "problems (shared)", FAMILY: "family"}

Edge = tuple[Path, Path]


@dataclass
class ImportReport:
    """Offending imports (file -> file, relative to the checkout) and the cycles found."""

    core_to_plugin: list[Edge] = field(default_factory=list)
    family_to_family: list[Edge] = field(default_factory=list)
    back_pointing: list[Edge] = field(default_factory=list)
    core_layer_back_pointing: list[Edge] = field(default_factory=list)
    cycles: list[list[Path]] = field(default_factory=list)
    unlayered_core: list[Path] = field(default_factory=list)  # files under evofair/ outside CORE_LAYERS
    families: list[str] = field(default_factory=list)
    n_files: int = 0

    @property
    def enforced_ok(self) -> bool:
        return not (
            self.core_to_plugin
            or self.family_to_family
            or self.back_pointing
            or self.cycles
            or self.core_layer_back_pointing
            or self.unlayered_core
        )


class Checkout:
    """The checkout's Python files, how dotted module names map onto them, and its families."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        pyproject = tomllib.loads((self.root / "pyproject.toml").read_text(encoding="utf-8"))
        # the installed name -> folder in the checkout (e.g. evofair.problems -> problems)
        dirs = pyproject.get("tool", {}).get("setuptools", {}).get("package-dir", {})
        self.package_dirs = sorted(dirs.items(), key=lambda kv: -len(kv[0]))
        problems = pyproject.get("project", {}).get("entry-points", {}).get("evofair.problem", {})
        self.families = sorted(
            {ref.split(":")[0].split(".")[2] for ref in problems.values() if ref.startswith("evofair.problems.")}
        )
        tops = [
            d
            for d in sorted(self.root.iterdir())
            if d.is_dir() and d.name not in NOT_CODE and not d.name.startswith(".")
        ]
        self.files = [p for d in tops for p in sorted(d.rglob("*.py")) if "tests" not in p.relative_to(d).parts]
        self._known = set(self.files)

    def resolve(self, name: str) -> Path | None:
        """The checkout file of a dotted module name (`evofair.problems.x` may live in `problems/x`)."""
        candidates = [name]
        for installed, folder in self.package_dirs:
            if name == installed or name.startswith(installed + "."):
                candidates.append(folder.replace("/", ".") + name[len(installed) :])
        for cand in candidates:
            base = self.root.joinpath(*cand.split("."))
            for f in (base.with_suffix(".py"), base / "__init__.py"):
                if f in self._known:
                    return f
        return None

    def resolve_deepest(self, name: str) -> Path | None:
        """The deepest existing module along `name` (`pkg.mod.attr` depends on `pkg/mod.py`)."""
        parts = name.split(".")
        while parts:
            found = self.resolve(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None

    def module_of(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def imports_of(self, path: Path) -> set[Path]:
        """Every checkout file `path` imports, wherever in the file the import statement is."""
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            return set()
        mod = self.module_of(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                prefix = node.module or ""
                if node.level:  # relative: `.` is this package, each further dot one package up
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                # `from pkg import sub` depends on the submodule; `from mod import name` on mod
                names = [f"{prefix}.{a.name}" if self.resolve(f"{prefix}.{a.name}") else prefix for a in node.names]
            else:
                continue
            for name in names:
                target = self.resolve_deepest(name)
                if target is not None and target != path:
                    out.add(target)
        return out

    def layer(self, path: Path) -> int | None:
        parts = path.relative_to(self.root).parts
        if parts[0] == "evofair":
            return CORE
        if parts[0] == "operators":
            return OPERATORS
        if parts[0] == "problems":
            return FAMILY if self.family(path) else SHARED
        return None

    def family(self, path: Path) -> str | None:
        parts = path.relative_to(self.root).parts
        return parts[1] if len(parts) > 2 and parts[0] == "problems" and parts[1] in self.families else None

    def core_layer(self, path: Path) -> int | None:
        """Position in CORE_LAYERS of a file under evofair/ (None for `evofair/__init__.py`, whose
        layer is that of what it re-exports: see `facade_layer`)."""
        parts = path.relative_to(self.root).parts
        if parts[0] != "evofair" or parts[1:] == ("__init__.py",):
            return None
        name = parts[1].removesuffix(".py")
        return CORE_LAYERS.index(name) if name in CORE_LAYERS else None

    def facade_layer(self, imports: set[Path]) -> int | None:
        """`evofair/__init__.py` re-exports the public API: it sits in the highest layer it imports."""
        layers = [self.core_layer(t) for t in imports]
        return max((x for x in layers if x is not None), default=None)


def strongly_connected(edges: dict[Path, set[Path]]) -> list[list[Path]]:
    """Tarjan's strongly connected components with more than one node (iterative: no recursion limit)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on_stack: set[Path] = set()
    stack: list[Path] = []
    found: list[list[Path]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def analyse(root: Path) -> ImportReport:
    """Every import of the checkout at `root`, sorted into the report's categories."""
    co = Checkout(root)
    edges = {f: co.imports_of(f) for f in co.files}
    rel = co.root
    report = ImportReport(families=co.families, n_files=len(co.files))
    facade = co.root / "evofair" / "__init__.py"
    facade_layer = co.facade_layer(edges.get(facade, set()))

    def core_layer(path: Path) -> int | None:
        return facade_layer if path == facade else co.core_layer(path)

    for src in co.files:
        for dst in sorted(edges[src]):
            pair = (src.relative_to(rel), dst.relative_to(rel))
            a, b = co.layer(src), co.layer(dst)
            if a == CORE and b in (OPERATORS, SHARED, FAMILY):
                report.core_to_plugin.append(pair)
            elif a is not None and b is not None and b > a:
                report.back_pointing.append(pair)
            if co.family(src) and co.family(dst) and co.family(src) != co.family(dst):
                report.family_to_family.append(pair)
            ca, cb = core_layer(src), core_layer(dst)
            if ca is not None and cb is not None and cb > ca:
                report.core_layer_back_pointing.append(pair)
    report.cycles = [[p.relative_to(rel) for p in comp] for comp in strongly_connected(edges)]
    report.unlayered_core = [f.relative_to(rel) for f in co.files if co.layer(f) == CORE and core_layer(f) is None]
    return report


def _layer_of(path: Path) -> str:
    parts = path.parts
    return parts[1].removesuffix(".py") if parts[0] == "evofair" and len(parts) > 1 else parts[0]


def print_report(report: ImportReport) -> None:
    for label, pairs in (
        ("core imports plugin", report.core_to_plugin),
        ("family imports family", report.family_to_family),
        ("back-pointing import", report.back_pointing),
    ):
        for src, dst in pairs:
            print(f"{label}: {src} -> {dst}")
    for comp in report.cycles:
        print("cycle: " + " <-> ".join(map(str, comp)))
    for src, dst in report.core_layer_back_pointing:
        print(f"core layer back-pointing: {src} ({_layer_of(src)}) -> {dst} ({_layer_of(dst)})")
    print(
        f"{len(report.core_to_plugin)} core->plugin imports, {len(report.family_to_family)} family->family imports, "
        f"{len(report.back_pointing)} back-pointing imports (operators, problems/common), "
        f"{len(report.cycles)} import cycles ({report.n_files} files, families: {', '.join(report.families)})"
    )
    if report.unlayered_core:
        print("not in CORE_LAYERS (no core layer checked): " + ", ".join(map(str, report.unlayered_core)))
    print(
        f"{len(report.core_layer_back_pointing)} back-pointing imports between the core's layers "
        f"({' < '.join(CORE_LAYERS)})"
    )


def main(argv: list[str]) -> int:
    report = analyse(Path(argv[1] if len(argv) > 1 else "."))
    print_report(report)
    return 0 if report.enforced_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
