"""What several explorer test files share: runs they read (never write), made once per pytest
process because each costs seconds, and small readers of what the explorer wrote."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_MADE: dict[str, Path] = {}


def toy_run(tmp_path_factory) -> Path:
    """runs/toy.yaml, 3 generations of 8 small MLPs: weights genomes, lineage, front.csv."""
    recipe = yaml.safe_load((ROOT / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=8, generations=3)
    recipe["problem"]["args"] = {"n_train": 128, "n_eval": 64}
    return _made_once("toy", recipe, tmp_path_factory)


def constrained_run(tmp_path_factory) -> Path:
    """ZDT1 with `f1 >= 0.5`: f1 is x1, so a model's violation is exactly max(0, 0.5 - f1)."""
    recipe = {
        "name": "zdt1-c",
        "problem": {"name": "zdt1", "args": {"n_var": 6}},
        "algorithm": {"pop_size": 12, "generations": 4},
        "seed": 2,
        "constraints": ["f1 >= 0.5"],
    }
    return _made_once("constrained", recipe, tmp_path_factory)


def _made_once(name: str, recipe: dict, tmp_path_factory) -> Path:
    if name not in _MADE:
        import evofair

        out = tmp_path_factory.mktemp(f"explorer-{name}") / name
        evofair.run(recipe, out, progress=False)
        _MADE[name] = out
    return _MADE[name]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def walk_layout(node) -> Iterator:
    """Every Dash component under `node` (itself included), depth first."""
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from walk_layout(child)
