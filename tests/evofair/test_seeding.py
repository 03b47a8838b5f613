"""The fast paths of array genomes equal the slow ones: `derive_seeds` (all of a generation's
seeds at once) equals `derive_seed` one by one; `array_individual` equals `Individual(...)`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evofair.core.individual import Individual, array_individual
from evofair.core.seeding import derive_seed, derive_seeds


@pytest.mark.parametrize(
    "seed, generation",
    [(0, 0), (1, 0), (1, 199), (0, 1), (2**32 - 1, 2**32 - 1), (2**40 + 5, 3), (-1, 7), (123456789, 4242)],
)
def test_derive_seeds_equals_derive_seed(seed, generation):
    n = 300
    assert derive_seeds(seed, generation, n) == [derive_seed(seed, generation, i) for i in range(n)]


def test_derive_seeds_random_inputs():
    rng = np.random.default_rng(0)
    for seed, generation in rng.integers(0, 2**32, size=(50, 2)).tolist():
        assert derive_seeds(seed, generation, 20) == [derive_seed(seed, generation, i) for i in range(20)]
    assert derive_seeds(1, 2, 0) == []


def test_array_individual_equals_the_dataclass_constructor():
    fields = dict(id="g0001i0002", generation=1, seed=7, x=(0.5, 1.0), metrics={"val": {"f1": 0.25}})
    fast, slow = array_individual(**fields), Individual(**fields)
    assert fast == slow and repr(fast) == repr(slow) and vars(fast) == vars(slow)
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(Individual)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seed = 3  # type: ignore[misc]
