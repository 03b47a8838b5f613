"""Parts for tests/evofair/test_startup_estimate.py, importable by `module:Name` from a recipe in a
subprocess: a ZDT1 whose evaluation makes third-party noise the way fairlearn and transformers do."""

from __future__ import annotations

import logging
import sys
import warnings

from evofair.problems.classic.benchmarks import ZDT1, ZDTParams

# a library with its own stderr handler, installed when it is imported (as transformers does)
OWN = logging.getLogger("noisylib")
OWN.addHandler(logging.StreamHandler(sys.stderr))
OWN.propagate = False


class NoisyZDT1(ZDT1):
    """ZDT1 that, on its first evaluation, emits a Python warning, a warning on a library logger that
    propagates (fairlearn's GridSearch does this) and one on a library logger with its own stderr
    handler (transformers installs one)."""

    name = "noisy_zdt1"
    Params = ZDTParams
    said = False

    def evaluate(self, genomes, split):
        if not NoisyZDT1.said:
            NoisyZDT1.said = True
            warnings.warn("noisy: a python warning", UserWarning)
            logging.getLogger("fairlearn.reductions._grid_search").warning("noisy: a grid warning")
            OWN.warning("noisy: a library handler warning")
        return super().evaluate(genomes, split)
