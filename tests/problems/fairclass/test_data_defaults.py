"""The data decides what the recipe does not pin: the run's name after an overridden data file, the
hypervolume reference point just past the constant predictor, and a warning for a pinned one that
leaves the constant predictor out."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from fairclass_tables import ADULT_RECIPE, TINY, make_table

from evofair.analysis.result import load
from evofair.cli import main
from evofair.lifecycle.run_name import data_stem, name_from_overrides
from evofair.problems.fairclass.defaults import just_past
from evofair.store.run_store import RunStore

USER_KEYS = ["problem.args.target=outcome", "problem.args.positive=yes", "problem.args.sensitive=[gender, region]"]


def run_adult_on(tmp_path, csv, *extra) -> tuple:
    out = tmp_path / "run"
    sets = [x for s in [f"problem.args.data.path={csv}", *USER_KEYS, *TINY, *extra] for x in ("--set", s)]
    assert main(["run", str(ADULT_RECIPE), "--out", str(out), "--quiet", *sets]) == 0
    return out, (out / "report.md").read_text()


def skewed_table():
    """make_table's loans, "yes" for the top 30% incomes: the constant "no" errs about 0.30, past Adult's 0.25."""
    table = make_table(n=300, seed=1)
    table["outcome"] = np.where(table["income"] >= table["income"].quantile(0.7), "yes", "no")
    return table


def test_adult_recipe_on_another_table_is_named_after_it_and_derives_hv_ref(tmp_path):
    csv = tmp_path / "loans.csv"
    table = skewed_table()
    table.to_csv(csv, index=False)
    out, report = run_adult_on(tmp_path, csv)

    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == "loans"
    assert report.startswith("# evofair run: loans")
    rows = json.loads((out / "splits.json").read_text())["rows"]
    labels = table["outcome"]
    majority = labels.iloc[rows["train"]].value_counts().idxmax()
    worst = max((labels.iloc[rows[s]] != majority).mean() for s in ("val", "test"))
    expected = math.ceil(worst * 100 + 1) / 100  # hand rule: the next hundredth, at least 0.01 past
    assert worst >= 0.25 and expected > worst
    assert f"hv_ref [{expected}, 1.0] from the data" in report
    assert "Warning" not in report
    assert load(out).hv_ref == (expected, 1.0)  # recorded for readers that do not rebuild the problem
    history = pd.read_csv(out / "history.csv")
    assert history["hv_val"].iloc[-1] > 0  # models better than the constant predictor count


def test_pinned_hv_ref_that_excludes_the_constant_predictor_warns(tmp_path):
    csv = tmp_path / "loans.csv"
    skewed_table().to_csv(csv, index=False)
    out, report = run_adult_on(tmp_path, csv, "hv_ref=[0.25, 1.0]", "name=pinned")
    assert report.startswith("# evofair run: pinned")  # a `--set name=` wins over the data file
    assert "hv_ref [0.25, 1.0] pinned by the recipe" in report and "**Warning:**" in report
    store = RunStore(out, readonly=True)
    try:
        (event,) = store.events("hv_ref_excludes_constant")
    finally:
        store.close()
    assert "does not lie past the constant predictor on error" in event["message"]


@pytest.mark.parametrize(
    ("value", "expected"), [(0.239, 0.25), (0.30, 0.31), (0.2999, 0.31), (0.0, 0.01), (0.455, 0.47)]
)
def test_just_past_is_the_next_hundredth_at_least_a_hundredth_above(value, expected):
    assert just_past(value) == expected


def test_data_stem_and_name_rule():
    assert [data_stem(p) for p in ("data/loans.csv.gz", "/x/my.data.parquet", "hf_folder/")] == [
        "loans",
        "my.data",
        "hf_folder",
    ]
    assert name_from_overrides({"name": "adult"}, ["algorithm.pop_size=4"]) == {"name": "adult"}
    assert name_from_overrides({"name": "adult"}, ["problem.args.data.path='c.csv'"]) == {"name": "c"}
