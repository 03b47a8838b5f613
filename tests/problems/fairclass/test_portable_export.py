"""From a raw coded CSV to a shipped model: `derive:` → `evofair run` → `evofair export` → a process
without evofair reloads model.skops and reproduces the model card's validation and test numbers
from splits.json, with fairlearn as the independent oracle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fairclass_tables import ADULT_RECIPE, TINY

from evofair.analysis.result import load
from evofair.cli import main

STATUS_TO_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male"}

RELOAD = r"""
import json, sys
import pandas as pd, skops.io as sio
from fairlearn.metrics import equalized_odds_difference
export, csv = sys.argv[1], sys.argv[2]
model = sio.load(f"{export}/model.skops", trusted=sio.get_untrusted_types(file=f"{export}/model.skops"))
table = pd.read_csv(csv, na_values=["?"], skipinitialspace=True, low_memory=False)
sex = table["personal_status"].map({"A91": "male", "A92": "female", "A93": "male", "A94": "male"})
band = pd.cut(table["age"], [-float("inf"), 30, 45, float("inf")], right=False, labels=["<30", "30-45", ">=45"])
groups = sex + "|" + band.astype(str)
rows = json.load(open(f"{export}/splits.json"))["rows"]
out = {}
for split in ("val", "test"):
    part = table.iloc[rows[split]]
    pred, true = model.predict(part), part["credit"].astype(str).to_numpy()
    good, predicted_good = (true == "good").astype(int), (pred == "good").astype(int)
    eod = equalized_odds_difference(good, predicted_good, sensitive_features=groups.iloc[rows[split]])
    out[split] = {"error": float((pred != true).mean()), "eod": float(eod)}
out["evofair_imported"] = "evofair" in sys.modules
print(json.dumps(out))
"""


def coded_credit_table(n: int = 300, seed: int = 3) -> pd.DataFrame:
    """A German-credit-like table: sex only inside the coded personal_status, age as a number."""
    rng = np.random.default_rng(seed)
    status = rng.choice(list(STATUS_TO_SEX), n, p=[0.3, 0.35, 0.25, 0.1])
    age = rng.integers(19, 75, n)
    duration = rng.integers(4, 60, n)
    purpose = rng.choice(["car", "furniture", "education", "business"], n)
    score = -duration / 12 + (purpose == "car") + (status == "A93") * 0.8 + rng.normal(0, 1, n)
    credit = np.where(score > np.median(score), "good", "bad")
    return pd.DataFrame(
        {"personal_status": status, "age": age, "duration": duration, "purpose": purpose, "credit": credit}
    )


def write_recipe(tmp_path: Path, csv: Path) -> Path:
    recipe = yaml.safe_load(ADULT_RECIPE.read_text())
    recipe["name"] = "credit"
    recipe["problem"]["args"].update(
        {
            "data": {
                "path": str(csv),
                "derive": {
                    "sex": {"from": "personal_status", "map": STATUS_TO_SEX},
                    "age_band": {"from": "age", "cut": [30, 45]},
                },
            },
            "target": "credit",
            "positive": "good",
            "sensitive": ["sex", "age_band"],
            "min_group_size": 0,
        }
    )
    path = tmp_path / "credit.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_coded_csv_to_an_export_that_reproduces_its_card_without_evofair(tmp_path):
    csv = tmp_path / "credit.csv"
    coded_credit_table().to_csv(csv, index=False)
    out, export = tmp_path / "run", tmp_path / "shipped"
    sets = [x for s in TINY for x in ("--set", s)]
    assert main(["run", str(write_recipe(tmp_path, csv)), "--out", str(out), "--quiet", *sets]) == 0
    iid = pd.read_csv(out / "front.csv")["id"].iloc[0]
    assert main(["export", str(out), iid, "--to", str(export)]) == 0

    card = json.loads((export / "model_card.json").read_text())
    rows = json.loads((export / "splits.json").read_text())["rows"]
    result = load(out)
    for split in ("train", "val", "test"):
        assert result.split(split).tolist() == rows[split]
    assert sorted(rows["train"] + rows["val"] + rows["test"]) == list(range(300))
    assert card["export"]["inputs"] == ["personal_status", "age", "duration", "purpose"]
    assert card["export"]["categories"]["purpose"] == ["business", "car", "education", "furniture"]
    readme = (export / "README.md").read_text()
    assert "sio.load(" in readme and "splits.json" in readme and "age_band" in readme

    reloaded = subprocess.run(
        [sys.executable, "-c", RELOAD, str(export), str(csv)], capture_output=True, text=True, check=True
    )
    measured = json.loads(reloaded.stdout)
    assert measured.pop("evofair_imported") is False
    for split in ("val", "test"):
        for metric in ("error", "eod"):
            assert abs(measured[split][metric] - card["metrics"][split][metric]) < 1e-12, (split, metric)


def test_an_edited_splits_file_is_refused(tmp_path):
    from evofair.analysis.splits_file import SPLITS_META, read_splits, write_splits
    from evofair.errors import UserError
    from evofair.store.run_store import RunStore

    store = RunStore(tmp_path)
    try:
        path = write_splits(store, tmp_path, {"train": [0, 2], "val": [1], "test": [3]}, {"rows": "positions"})
        recorded = store.get_meta(SPLITS_META)
    finally:
        store.close()
    assert read_splits(tmp_path, recorded)["rows"]["val"] == [1]
    path.write_text(path.read_text().replace("[\n   1\n  ]", "[\n   2\n  ]"))
    with pytest.raises(UserError, match="does not match the sha256"):
        read_splits(tmp_path, recorded)
    from evofair.analysis.run_check import check_run

    assert any("splits.json: does not match" in p for p in check_run(tmp_path).problems)  # verify names it


@pytest.mark.parametrize(
    ("labels", "positive", "hidden"),
    [(["8", "9", "10"], None, [5]), (["good", "bad"], "bad", []), (["good", "bad"], "bad", [3, 4])],
)
def test_pipeline_predicts_what_the_run_evaluates_whatever_the_class_order(labels, positive, hidden):
    """sklearn sorts classes as text ("10" < "8"; "bad" < "good"); the run orders them numerically or
    (other, positive): the exported layers are permuted so every prediction is the run's."""
    from evofair.problems.fairclass.portable import pipeline
    from evofair.problems.fairclass.problem import FairClassification

    rng = np.random.default_rng(0)
    table = coded_credit_table(n=240)
    table["credit"] = rng.choice(labels, len(table))
    model_args = {"kind": "mlp", "hidden": hidden} if hidden else {"kind": "logistic"}
    problem = FairClassification(
        table, target="credit", positive=positive, sensitive=["personal_status"], model=model_args
    )
    problem.ensure_setup()
    model = pipeline(problem.tabular.transformer, problem.init_weights(7), problem.class_names)
    for split, rows in problem.rows.items():
        expected = np.array(problem.class_names)[problem.predictions([problem.init_weights(7)], split)[0]]
        assert model.predict(table.iloc[problem.table_rows[rows]]).tolist() == expected.tolist()
