"""The search-vs-sweep study's own pieces: its non-dominated filter against pymoo's sorting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies" / "search_vs_sweep"))
from search_vs_sweep import nondominated  # noqa: E402


def test_nondominated_matches_pymoo_on_random_sets_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        F = rng.integers(0, 6, size=(30, 2)).astype(float)  # many ties and duplicates
        ours = set(nondominated(F).tolist())
        theirs = set(NonDominatedSorting().do(F, only_non_dominated_front=True).tolist())
        assert ours == theirs
