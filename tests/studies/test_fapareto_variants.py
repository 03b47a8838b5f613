"""Every variant `studies/fapareto_vs_baselines/fapareto_vs_baselines.py --variant NAME` offers is a valid
recipe that changes the default, so the commands its README records still run."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "studies" / "fapareto_vs_baselines"))

import fapareto_vs_baselines as bench  # noqa: E402

from evofair.lifecycle.recipe import load_recipe  # noqa: E402

RECIPE = ROOT / "runs" / "fapareto_biasbios.yaml"


@pytest.mark.parametrize("name", sorted(set(bench.VARIANTS) - {"default"}))
def test_variant_is_a_valid_recipe_that_changes_the_default(name):
    """Loading validates every component the variant names (a missing module or operator raises);
    an override that silently did nothing would leave the recipe equal to the default's."""
    recipe = load_recipe(RECIPE, bench.VARIANTS[name])
    assert recipe.model_dump() != load_recipe(RECIPE, []).model_dump()
