"""Small generated tables for the fair_classification tests (hundreds of rows, seconds per run).

Fixtures live here, not in a conftest.py: tests elsewhere import the root tests/conftest.py as the
module `conftest`, which a second conftest.py on sys.path would shadow. Test modules import the
fixtures they use from this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[3]
ADULT_RECIPE = REPO / "runs" / "adult.yaml"
#: shrink any fair_classification recipe to a seconds-long run (baselines off: test_baselines.py covers them)
TINY = [
    "algorithm.pop_size=4",
    "algorithm.generations=2",
    "problem.args.model.hidden=[4]",
    "problem.args.baselines.enabled=false",
]


@pytest.fixture
def adult_recipe() -> Path:
    return ADULT_RECIPE


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def make_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A loan table: outcome yes/no depends on income and (unfairly) on gender; two sensitive
    columns, a categorical feature with missing cells, a numeric one with missing cells."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["f", "m"], n)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    income = rng.normal(50, 15, n)
    job = rng.choice(["clerk", "nurse", "driver", "engineer"], n).astype(object)
    score = income / 10 + (gender == "m") * 1.0 + rng.normal(0, 1, n)
    outcome = np.where(score > np.median(score), "yes", "no")
    income[rng.random(n) < 0.05] = np.nan
    job[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "income": income,
            "job": job,
            "gender": gender,
            "region": region,
            "years": rng.integers(0, 30, n),
            "outcome": outcome,
        }
    )


@pytest.fixture
def table_csv(tmp_path) -> Path:
    path = tmp_path / "loans.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture
def user_overrides(table_csv) -> list[str]:
    """The four keys a user changes in runs/adult.yaml to run it on their own table."""
    return [
        f"problem.args.data.path={table_csv}",
        "problem.args.target=outcome",
        "problem.args.positive=yes",
        "problem.args.sensitive=[gender, region]",
    ]
