"""`data.derive`: codes mapped, numbers cut into bands, columns combined, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evofair.errors import UserError
from evofair.problems.fairclass.derive import band_labels
from evofair.problems.fairclass.params import parse_params
from evofair.problems.fairclass.problem import FairClassification

ARGS = {"target": "y", "positive": "1", "sensitive": ["sex"]}
STATUS_TO_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male"}


def coded_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "status": ["A91", "A92", "A93", "A94", "A92", None],
            "age": [19.0, 25.0, 39.9, 40.0, 70.0, 33.0],
            "y": [0, 1, 0, 1, 1, 0],
        }
    )


def derived(derive: dict, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    problem = FairClassification(frame if frame is not None else coded_table(), **ARGS, data={"derive": derive})
    return problem.read_frame()


def test_map_cut_and_combine_give_the_hand_computed_columns():
    out = derived(
        {
            "sex": {"from": "status", "map": STATUS_TO_SEX},
            "age_band": {"from": "age", "cut": [25, 40]},
            "group": {"combine": ["sex", "age_band"], "sep": "|"},
        }
    )
    assert out["sex"].tolist()[:5] == ["male", "female", "male", "male", "female"]
    assert pd.isna(out["sex"].iloc[5])  # a missing code stays missing
    assert out["age_band"].tolist() == ["<25", "25-40", "25-40", ">=40", ">=40", "25-40"]
    assert out["group"].tolist()[:5] == ["male|<25", "female|25-40", "male|25-40", "male|>=40", "female|>=40"]
    assert pd.isna(out["group"].iloc[5])
    assert list(out.columns[:3]) == ["status", "age", "y"]  # the table's own columns are untouched


def test_numeric_codes_match_yaml_integers_and_default_fills_the_rest():
    frame = pd.DataFrame({"code": [1, 2, 3, 2], "y": [0, 1, 0, 1]})
    out = derived({"sex": {"from": "code", "map": {1: "m", 2: "f"}, "default": "other"}}, frame)
    assert out["sex"].tolist() == ["m", "f", "other", "f"]


def test_custom_band_labels_and_default_label_format():
    out = derived({"band": {"from": "age", "cut": [30], "labels": ["young", "old"]}})
    assert out["band"].tolist() == ["young", "young", "old", "old", "old", "old"]
    assert band_labels([18, 64.5]) == ["<18", "18-64.5", ">=64.5"]


@pytest.mark.parametrize(
    ("derive", "needle"),
    [
        ({"sex": {"from": "status", "map": {"A91": "male"}}}, "data.derive.sex.map: value 'A92'"),
        ({"sex": {"from": "statsu", "map": STATUS_TO_SEX}}, "data.derive.sex.from: no column 'statsu'"),
        ({"status": {"from": "age", "cut": [30]}}, "data.derive.status: the table already has a column"),
        ({"band": {"from": "status", "cut": [30]}}, "data.derive.band.cut: column 'status' is not numeric"),
    ],
)
def test_data_errors_name_the_derived_column(derive, needle):
    with pytest.raises(UserError, match=None) as err:
        derived(derive)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("step", "needle"),
    [
        ({"from": "age", "cut": [40, 25]}, "strictly increasing"),
        ({"from": "age", "cut": [25], "labels": ["a"]}, "2 bands, got 1 labels"),
        ({"map": {"a": "b"}}, "name the source column"),
        ({"from": "age", "cut": [1], "map": {"a": "b"}}, "exactly one of map, cut or combine"),
        ({"from": "age", "cutt": [1]}, "unknown key"),
    ],
)
def test_recipe_errors_are_one_line_naming_the_field(step, needle):
    with pytest.raises(UserError) as err:
        parse_params({**ARGS, "data": {"path": "t.csv", "derive": {"band": step}}})
    message = str(err.value)
    assert "data.derive.band" in message and needle in message and "\n" not in message


def test_derived_sensitive_column_forms_the_groups_of_a_run():
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {"status": rng.choice(list(STATUS_TO_SEX), n), "x": rng.normal(size=n), "y": rng.integers(0, 2, n)}
    )
    problem = FairClassification(
        frame, **ARGS, data={"derive": {"sex": {"from": "status", "map": STATUS_TO_SEX}}}, model={"hidden": [2]}
    )
    problem.ensure_setup()
    expected = frame["status"].map(STATUS_TO_SEX).to_numpy()
    for split, rows in problem.rows.items():
        assert problem.splits[split].g.tolist() == expected[problem.table_rows[rows]].tolist()
    assert problem.info["features"]["categorical"] == ["status"]  # the source stays a feature; sex does not


def test_config_records_the_derive_steps_of_an_in_memory_table_as_written():
    problem = FairClassification(
        coded_table(), **ARGS, data={"derive": {"sex": {"from": "status", "map": STATUS_TO_SEX}}}
    )
    recorded = problem.recipe_args()["data"]
    assert recorded["derive"]["sex"] == {"from": "status", "map": STATUS_TO_SEX, **NO_OPTIONS}
    assert recorded["frame"]["rows"] == 6 and recorded["path"] is None


NO_OPTIONS = {"default": None, "cut": None, "labels": None, "combine": None, "sep": "/"}
