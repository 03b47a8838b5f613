import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def zdt_recipe():
    return {
        "name": "zdt1-small",
        "problem": {"name": "zdt1", "args": {"n_var": 10}},
        "algorithm": {"name": "nsga2", "pop_size": 20, "generations": 5},
        "operators": {"crossover": {"name": "sbx"}, "crossover_prob": 1.0, "mutation": {"name": "pm"}},
        "seed": 3,
        "hv_ref": [1.1, 1.1],
    }
