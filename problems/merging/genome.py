"""The merge-recipe genome: a real vector over the anchors, stored as the individual's `x`.

Coordinates 0..K-1 are the anchors' mixing coefficients (linear: normalised weights; task
arithmetic, TIES, DARE: scales of each anchor's delta from the base), or with `blocks` K of them
per block, block after block (blocks.py); with a density-based method one more coordinate is the
fraction of each delta kept. It is an ordinary real vector in a box, so
SBX/PM (pymoo or DEAP) vary it and the store keeps it as `x`; its weights are rebuilt from it
deterministically (`MergeFront.weights_of`), never stored.
"""

from __future__ import annotations

from evofair.core.genome import VectorGenome


class MergeRecipeGenome(VectorGenome):
    """Mixing coefficients over fixed anchors (plus a density gene for TIES/DARE)."""

    name = "merge_recipe"
