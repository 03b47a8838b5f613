"""Every screening variant `benchmarks/fapareto_vs_baselines.py --variant NAME` offers is a valid
recipe, so the commands recorded in benchmarks/README.md and docs/fapareto.md still run."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fapareto_vs_baselines as bench  # noqa: E402

from evofair.recipe import load_recipe  # noqa: E402


@pytest.mark.parametrize("name", sorted(bench.VARIANTS))
def test_variant_is_a_valid_recipe(name):
    recipe = load_recipe(ROOT / "runs" / "fapareto_biasbios.yaml", bench.VARIANTS[name])
    assert recipe.name == "fapareto_biasbios"

