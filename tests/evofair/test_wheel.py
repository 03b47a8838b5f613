"""The built wheel, installed into a fresh virtual environment, works outside the clone.

What a user of `pip install evofair-*.whl` gets: only `evofair` (and its dist-info) at the top level
(no generic `problems`/`operators` modules), the packaged recipes and shipped data inside it, every
module of the checkout, no bytecode; and, from an empty directory with no checkout in sight,
`evofair run toy` and `evofair run` (the default main job, shrunk with --set) succeed.

The wheel is built from a copy of the sources (setuptools writes build/ and *.egg-info into the
source tree, and other work happens in this checkout), with `uv build --no-build-isolation` so that
nothing is downloaded. The fresh venv gets the heavy dependencies (torch, transformers, ...) through
a `.pth` line naming this venv's site-packages instead of reinstalling them; a `.pth` line adds a
folder to sys.path without running that folder's own .pth files, so the checkout's editable install
of evofair stays invisible there, which the test asserts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# what the wheel is built from: pyproject.toml's packages and package-dir, and its readme
SOURCES = ("pyproject.toml", "README.md", "evofair", "problems", "operators", "runs", "data")
# checkout folder → where the wheel puts it
LAYOUT = {
    "evofair": "evofair",
    "problems": "evofair/problems",
    "operators": "evofair/operators",
    "runs": "evofair/recipes",
    "data": "evofair/datasets",
}
# the main job, small: as tests/problems/fapareto/test_biasbios.py's slice
SMALL_MAIN_JOB = [
    "problem.args.limit=64",
    "problem.args.max_length=64",
    "problem.args.hidden=[16]",
    "algorithm.pop_size=6",
    "algorithm.generations=2",
    "algorithm.n_offsprings=6",
    "problem.args.baselines.vanilla=2",
    "problem.args.baselines.lambdas=[0.5]",
    "problem.args.baselines.epochs=2",
    "problem.args.baselines.threshold=[]",
]


def uv() -> str:
    path = shutil.which("uv")
    assert path, "uv not on PATH (scripts/setup.sh installs it)"
    return path


def sh(*cmd, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


def checkout_files(folder: str) -> set[str]:
    """Files of a checkout folder that belong in the wheel (no bytecode, no egg-info)."""
    root = REPO / folder
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("*.egg-info", "build"))
        else:
            shutil.copy2(REPO / name, src / name)
    # bytecode a checkout may hold next to the data must not ship (package-data globs would take it)
    for folder in ("data", "runs", "data/biasbios_surgeon_nurse"):
        (src / folder / "__pycache__").mkdir(exist_ok=True)
        (src / folder / "__pycache__" / "planted.cpython-311.pyc").write_bytes(b"not for the wheel")
    sh(uv(), "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "-o", tmp / "dist", src, cwd=tmp)
    (whl,) = (tmp / "dist").glob("evofair-*.whl")
    return whl


def test_wheel_holds_only_evofair_with_its_recipes_and_data(wheel):
    version = distribution("evofair").version
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"evofair", f"evofair-{version}.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    shipped = set(names)
    for folder, target in LAYOUT.items():  # every module, recipe and data file of the checkout
        missing = {f"{target}/{f}" for f in checkout_files(folder)} - shipped
        if folder == "evofair":  # its subfolders problems/ ... come from the other checkout folders
            missing = {m for m in missing if m.endswith(".py")}
        assert not missing, f"not in the wheel: {sorted(missing)[:10]}"
    for needed in (
        "evofair/recipes/fapareto_biasbios.yaml",
        "evofair/recipes/toy.yaml",
        "evofair/datasets/biasbios_surgeon_nurse/biosbias_surgeon_nurse.jsonl.gz",
        "evofair/problems/fapareto/biasbios.py",
        "evofair/operators/merge.py",
    ):
        assert needed in shipped
    datasets = {p.name for p in (REPO / "data").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert datasets and all(f"evofair/datasets/{d}/PROVENANCE.md" in shipped for d in datasets)
    meta = zipfile.ZipFile(wheel).read(f"evofair-{version}.dist-info/entry_points.txt").decode()
    assert "evofair = evofair.cli:main" in meta
    assert "biasbios = evofair.problems.fapareto.biasbios:BiasBios" in meta and "problems." not in meta.replace(
        "evofair.problems.", ""
    )


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no deps) and this venv's packages on its path."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    sh(uv(), "venv", "-q", "-p", sys.executable, root)
    python = root / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_evofair_test_deps.pth").write_text("".join(f"{p}\n" for p in deps))
    sh(uv(), "pip", "install", "-q", "--no-deps", "--python", python, wheel)
    return root


def user_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", EVOFAIR_CACHE=str(tmp / "cache"))
    return env


def test_installed_wheel_runs_outside_the_clone(venv, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = user_env(tmp_path)
    where = sh(
        venv / "bin" / "python",
        "-c",
        "import importlib.util as u, evofair, evofair.problems, evofair.operators, evofair.recipes, "
        "evofair.datasets\n"
        "print(evofair.__file__); print(evofair.problems.__file__); print(evofair.datasets.__file__)\n"
        "print(u.find_spec('problems'), u.find_spec('operators'))",
        cwd=empty,
        env=env,
    ).stdout.splitlines()
    site = str(venv.resolve()) + os.sep
    assert all(str(Path(p).resolve()).startswith(site) for p in where[:3]), where
    assert where[3] == "None None"  # no generic top-level module

    evofair = venv / "bin" / "evofair"
    sh(evofair, "run", "toy", "--out", "out/toy", "--quiet", cwd=empty, env=env)
    # the same packaged recipe from the checkout: the wheel runs the same code, byte for byte
    sh(
        sys.executable,
        "-m",
        "evofair.cli",
        "run",
        "toy",
        "--out",
        tmp_path / "checkout-toy",
        "--quiet",
        cwd=tmp_path,
        env=env,
    )
    front = (empty / "out" / "toy" / "front.csv").read_bytes()
    assert front == (tmp_path / "checkout-toy" / "front.csv").read_bytes() and front.count(b"\n") > 2

    # the default recipe (the main job, with its shipped data and encoder), shrunk
    sets = [a for s in SMALL_MAIN_JOB for a in ("--set", s)]
    proc = sh(evofair, "run", "--out", "out/main", "--quiet", *sets, cwd=empty, env=env)
    assert proc.stdout.startswith("evofair: wrote out/main")
    main = empty / "out" / "main"
    for name in ("front.csv", "baselines.csv", "report.md", "config.yaml"):
        assert (main / name).is_file(), name
    assert (main / "front.csv").read_text().splitlines()[0].startswith("id,generation,error_val,error_test")
    assert "name: fapareto_biasbios" in (main / "config.yaml").read_text()
    assert sorted(p.name for p in empty.iterdir()) == ["out"]  # nothing else written where it ran
