"""The checkout's import graph keeps its layers: scripts/import_graph.py, run on this checkout.

The core names no plugin, no problem family imports another (they share through
problems/common/), operators/ and problems/common/ import nothing above them, and no files import
each other in a cycle. The order of the core's own subpackages (CORE_LAYERS) is reported by the
script but not asserted here yet.
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
