"""The checkout's import graph keeps its layers: scripts/import_graph.py, run on this checkout.

The core names no plugin, no problem family imports another (they share through
problems/common/), operators/ and problems/common/ import nothing above them, and no files import
each other in a cycle, and inside evofair/ no layer imports one above it (CORE_LAYERS: core <
store < tracking < lifecycle < engine < executors < analysis < explorer < api < cli).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.analyse(ROOT)


def _lines(pairs) -> str:
    return "\n".join(f"  {src} -> {dst}" for src, dst in pairs)


def test_families_are_found(report):
    assert {"classic", "fapareto", "fairclass", "fairpo", "hyperdpo"} <= set(report.families)
    assert "common" not in report.families  # shared code, not a family


def test_core_imports_no_plugin(report):
    assert not report.core_to_plugin, "evofair/ imports its plugins:\n" + _lines(report.core_to_plugin)


def test_no_family_imports_another(report):
    assert not report.family_to_family, "a family imports another:\n" + _lines(report.family_to_family)


def test_operators_and_common_import_nothing_above_them(report):
    assert not report.back_pointing, "imports into a higher layer:\n" + _lines(report.back_pointing)


def test_no_import_cycles(report):
    assert not report.cycles, "import cycles:\n" + "\n".join("  " + " <-> ".join(map(str, c)) for c in report.cycles)


def test_core_layers_point_down(report):
    assert not report.unlayered_core, "files under evofair/ in no layer: " + ", ".join(map(str, report.unlayered_core))
    assert not report.core_layer_back_pointing, "a core layer imports one above it:\n" + _lines(
        report.core_layer_back_pointing
    )


def test_the_script_exits_nonzero_on_a_violation(tmp_path):
    """A planted core-to-plugin import and a planted back-pointing core import are both caught."""
    import shutil
    import subprocess

    for part in ("evofair", "problems", "operators", "scripts"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    script = [sys.executable, str(tmp_path / "scripts" / "import_graph.py"), str(tmp_path)]
    assert subprocess.run(script, capture_output=True).returncode == 0
    store = tmp_path / "evofair" / "store" / "run_store.py"
    store.write_text(store.read_text() + "\nfrom evofair.engine import loop  # noqa\n")
    out = subprocess.run(script, capture_output=True, text=True)
    assert out.returncode == 1 and "evofair/store/run_store.py (store) -> evofair/engine/loop.py (engine)" in out.stdout
