"""A third party's problem and operators, installed as a package, run through evofair without
touching evofair's files.

The plugin (tests/evofair/plugin_parts.py) is a package written here into a temporary folder,
"installed" the way pip leaves an installed distribution (a `<name>.dist-info` folder with METADATA
and entry_points.txt next to the package), and made visible to an `evofair` subprocess through
PYTHONPATH only. The same module is also used without any installation, named `module:Name` from a
recipe lying next to it, and must give the same run.

Oracles: the objective values each stored individual carries, recomputed from its stored genome
with the formula the plugin claims; the plugin mutation's fingerprint (every offspring lies on its
grid; the initial population does not); the installed and the referenced run give the same front
byte for byte; the front is mutually non-dominated (checked by hand).
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

import pytest
import yaml
from plugin_parts import (
    ENTRY_POINTS,
    PLUGIN,
    bare_env,  # noqa: F401 (fixture)
    check_wells_run,
    evofair_cli,
    user_env,
    wells_recipe,
    write_yaml,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the plugin package and its dist-info, as site-packages would."""
    root = tmp_path_factory.mktemp("site")
    (root / "efplug_wells").mkdir()
    (root / "efplug_wells" / "__init__.py").write_text("")
    (root / "efplug_wells" / "shapes.py").write_text(PLUGIN)
    info = root / "efplug_wells-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: efplug-wells\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture(scope="module")
def installed_run(site, tmp_path_factory):
    """`evofair run recipe.yaml` of the installed plugin's components, by their entry-point names."""
    tmp = tmp_path_factory.mktemp("installed")
    before = distribution("evofair").read_text("entry_points.txt")
    recipe = write_yaml(tmp / "recipe.yaml", wells_recipe("two_wells", "snap"))
    proc = evofair_cli(
        "run", recipe, "--out", tmp / "out", "--quiet", cwd=tmp, env=dict(user_env(tmp / "cache"), PYTHONPATH=str(site))
    )
    return proc, tmp / "out", before


# -- installed: entry points -------------------------------------------------------------------


def test_installed_plugin_runs_from_a_recipe_through_the_cli(installed_run):
    proc, out, before = installed_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"evofair: wrote {out}")
    check_wells_run(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["problem"]["name"] == "two_wells" and config["operators"]["mutation"]["name"] == "snap"
    assert distribution("evofair").read_text("entry_points.txt") == before  # evofair's files untouched


def test_problems_lists_installed_plugins(site, bare_env, tmp_path):
    proc = evofair_cli("problems", cwd=tmp_path, env=dict(bare_env, PYTHONPATH=str(site)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections, current = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split()[0])
    assert {"two_wells", "bowl", "zdt1", "biasbios"} <= set(sections["problems"])
    assert "snap" in sections["vector_mutation operators"] and "snap" not in sections["mutation operators"]
    assert {"quantise", "gaussian"} <= set(sections["mutation operators"])
    wells = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["two_wells"])
    assert "Two wells: f1 = |x - a|^2" in wells and "[a=0.5]" in wells
    # without the plugin on the path, it is gone: nothing about it was written into evofair
    proc = evofair_cli("problems", cwd=tmp_path, env=bare_env)
    assert proc.returncode == 0 and "two_wells" not in proc.stdout and "snap" not in proc.stdout


# -- not installed: `module:Name` next to the recipe -----------------------------------------------


def test_referenced_module_next_to_the_recipe(installed_run, bare_env, tmp_path):
    """The same components, named `my_wells:TwoWells` from a recipe beside my_wells.py, run from
    another directory with no PYTHONPATH: the same front as the installed plugin's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_wells.py").write_text(PLUGIN)
    recipe = write_yaml(project / "wells.yaml", wells_recipe("my_wells:TwoWells", "my_wells:snap"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = evofair_cli("run", recipe, "--out", "out", "--quiet", cwd=elsewhere, env=bare_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_wells_run(elsewhere / "out")
    installed, installed_out = installed_run[0], installed_run[1]
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (elsewhere / "out" / "front.csv").read_bytes() == (installed_out / "front.csv").read_bytes()
