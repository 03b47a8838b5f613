"""fair_classification on small generated tables: a user's CSV through the CLI, stored metrics against
fairlearn, preprocessing against sklearn, group merging by hand, the DataFrame path, relative paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fairclass_tables import adult_recipe, table, table_csv, tiny, user_overrides  # noqa: F401 (fixtures)

import evofair
from evofair.cli import main
from evofair.problems.fairclass.problem import FairClassification
from evofair.problems.fairclass.table import resolve_data_path
from evofair.store.run_store import RunStore

ARGS = dict(target="outcome", positive="yes", sensitive=["gender", "region"])


def _run_cli(recipe, out, overrides):
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["run", str(recipe), "--out", str(out), "--quiet", *sets]) == 0


def _problem_of_run(out: Path) -> FairClassification:
    """The run's problem rebuilt from its config.yaml, as the explorer does."""
    from evofair.api import build_problem
    from evofair.lifecycle.recipe import Recipe, read_recipe_file

    return build_problem(Recipe.model_validate(read_recipe_file(out / "config.yaml"))).ensure_setup()


def test_user_csv_through_the_cli_and_metrics_agree_with_fairlearn(tmp_path, adult_recipe, user_overrides, tiny):
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    out = tmp_path / "run"
    _run_cli(adult_recipe, out, user_overrides + tiny)
    front = pd.read_csv(out / "front.csv")
    assert len(front) >= 1 and {"error_test", "eod_test"} <= set(front.columns)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["problem"]["args"]["target"] == "outcome"
    assert config["base_dir"] == str(adult_recipe.parent)
    report = (out / "report.md").read_text()
    assert "## Data and groups" in report and str(user_overrides[0].split("=", 1)[1]) in report
    assert "| f\\|north |" in report  # every intersectional group with its rows per split

    problem = _problem_of_run(out)
    data = problem.splits["test"]
    store = RunStore(out, readonly=True)
    for ind in store.individuals(front["id"].tolist()):
        weights = store.get_weights(ind.weights_hash)
        with torch.no_grad():  # predictions of a plain torch module, not the batched evaluation path
            pred = problem.build_model(weights)(data.X).argmax(-1).numpy()
        y_true = np.array(problem.class_names)[data.y]
        y_pred = np.array(problem.class_names)[pred]
        frame = MetricFrame(
            metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "sel": selection_rate},
            y_true=y_true == "yes",
            y_pred=y_pred == "yes",
            sensitive_features=data.g,
        )
        assert set(frame.by_group.index) == set(data.g)
        gap = frame.difference()
        stored = ind.metrics["test"]
        assert abs(stored["error"] - float(np.mean(y_true != y_pred))) < 1e-9
        assert abs(stored["eod"] - max(gap["tpr"], gap["fpr"])) < 1e-9
        assert abs(stored["dpd"] - gap["sel"]) < 1e-9
    store.close()


def test_per_attribute_metrics_agree_with_fairlearn(table):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    problem = FairClassification(
        table, **ARGS, groups="per_attribute", objectives=["error", "eod_gender"], baselines={"enabled": False}
    ).ensure_setup()
    assert "eod_region" in problem.metric_names and "error_gender" not in problem.metric_names
    P = np.random.default_rng(1).integers(0, 2, (5, len(problem.splits["val"])))
    got = problem.metrics_of_predictions(P, "val")
    assert set(problem.metric_names) <= set(got)
    y = problem.splits["val"].y
    for attr in ("gender", "region"):
        groups = problem.sensitive[attr]["val"]
        for m in range(len(P)):
            assert abs(got[f"eod_{attr}"][m] - equalized_odds_difference(y, P[m], sensitive_features=groups)) < 1e-9
            assert abs(got[f"dpd_{attr}"][m] - demographic_parity_difference(y, P[m], sensitive_features=groups)) < 1e-9


def test_preprocessing_equals_sklearn_fitted_on_train(table):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    table["split"] = np.where(
        np.arange(len(table)) < 240, "train", np.where(np.arange(len(table)) < 320, "validate", "test")
    )
    table.loc[330, "job"] = "astronaut"  # a category first seen at test time
    problem = FairClassification(table, **ARGS, split={"column": "split"}, baselines={"enabled": False}).ensure_setup()
    numeric, categorical = ["income", "years"], ["job"]  # sensitive, target and split columns are not features
    ref = ColumnTransformer(
        [
            ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "c",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", sparse_output=False)
                ),
                categorical,
            ),
        ]
    )
    ref.fit(table.iloc[:240])
    for split, rows in (("train", slice(0, 240)), ("val", slice(240, 320)), ("test", slice(320, 400))):
        np.testing.assert_allclose(
            problem.splits[split].X.numpy(), ref.transform(table.iloc[rows]), rtol=1e-6, atol=1e-6
        )
    unseen = problem.splits["test"].X.numpy()[330 - 320, 2:]
    assert np.all(unseen == 0)  # the unseen category is all zeros in the one-hot block
    assert problem.splits["train"].X.dtype == torch.float32
    assert (
        problem.splits["train"].y.dtype == np.int64 and problem.class_names == ("no", "yes") and problem.pos_label == 1
    )


def test_intersectional_groups_merged_by_hand():
    # train rows per (a, b): (x, p) 6, (x, q) 4, (y, p) 5, (y, q) 1; val and test: two of each
    rows = []
    for split, counts in (
        ("train", {("x", "p"): 6, ("x", "q"): 4, ("y", "p"): 5, ("y", "q"): 1}),
        ("val", {k: 2 for k in [("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")]}),
        ("test", {k: 2 for k in [("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")]}),
    ):
        for (a, b), n in counts.items():
            rows += [{"a": a, "b": b, "f": i, "t": i % 2, "split": split} for i in range(n)]
    frame = pd.DataFrame(rows)
    problem = FairClassification(
        frame,
        target="t",
        positive="1",
        sensitive=["a", "b"],
        min_group_size=5,
        split={"column": "split"},
        features=["f"],
        baselines={"enabled": False},
    ).ensure_setup()
    # (x, q) has 4 < 5 and (y, q) 1 < 5 training rows: both become "other"
    assert problem.describe()["merged_groups"] == {"x|q": 4, "y|q": 1}
    assert sorted(set(problem.splits["train"].g)) == ["other", "x|p", "y|p"]
    assert list(problem.splits["val"].g) == ["x|p", "x|p", "other", "other", "y|p", "y|p", "other", "other"]
    # per attribute: b's value q has 5 training rows, so it stays
    assert sorted(set(problem.sensitive["b"]["train"])) == ["p", "q"]


def test_dataframe_from_python_uses_the_instance_and_config_names_the_frame(tmp_path, table):
    problem = FairClassification(table, **ARGS, model={"kind": "logistic"}, baselines={"enabled": False})
    recipe = {
        "name": "mine",
        "problem": {"name": "fair_classification"},
        "algorithm": {"pop_size": 4, "generations": 2},
        "operators": {"crossover": {"name": "uniform"}, "mutation": {"name": "gaussian", "args": {"sigma": 0.01}}},
        "hv_ref": [0.6, 0.6],
    }
    result = evofair.run(recipe, tmp_path / "run", problem=problem, progress=False)
    assert result.front and problem.sizes == [problem.splits["train"].X.shape[1], 2]  # logistic: no hidden layer
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    frame = config["problem"]["args"]["data"]["frame"]
    assert frame["source"] == "in-memory DataFrame" and (frame["rows"], frame["columns"]) == table.shape
    assert frame["csv_sha256"] == hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    assert config["problem"]["args"]["data"]["path"] is None


def test_dataframe_run_is_not_rebuilt_by_resume_but_continues_from_python(tmp_path, table, capsys):
    def problem():
        return FairClassification(table, **ARGS, model={"kind": "logistic"}, baselines={"enabled": False})

    recipe = {
        "name": "mine",
        "problem": {"name": "fair_classification"},
        "algorithm": {"pop_size": 4, "generations": 1},
        "operators": {"crossover": {"name": "uniform"}, "mutation": {"name": "gaussian", "args": {"sigma": 0.01}}},
        "hv_ref": [0.6, 0.6],
    }
    out = tmp_path / "run"
    evofair.run(recipe, out, problem=problem(), progress=False)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["problem"]["name"] == "fair_classification"
    assert config["problem"]["not_rebuildable"].startswith("its data was an in-memory DataFrame of 400 rows")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["run", "--resume", str(out), "--set", "algorithm.generations=2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in-memory DataFrame" in err[0] and "evofair.run(resume=DIR, problem=" in err[0], err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    recipe["algorithm"]["generations"] = 2
    result = evofair.run(recipe, resume=out, problem=problem(), progress=False)
    assert list(result.history["generation"]) == [0, 1] and len(result.ids) == len(result.F)
    assert evofair.load(out, problem=problem()).model(result.ids[0]) is not None


def test_drop_missing_drops_the_rows_and_reports_them(table):
    table.loc[[1, 2], "outcome"] = np.nan
    problem = FairClassification(table, **ARGS, drop_missing=True, baselines={"enabled": False}).ensure_setup()
    assert sum(len(d) for d in problem.splits.values()) == len(table) - 2
    assert problem.describe()["dropped_missing"] == 2


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path, table, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    table.to_parquet(folder / "loans.parquet")
    (folder / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "problem": {
                    "name": "fair_classification",
                    "args": {
                        "data": {"path": "loans.parquet"},
                        **ARGS,
                        "model": {"hidden": [4]},
                        "baselines": {"enabled": False},
                    },
                },
                "algorithm": {"pop_size": 4, "generations": 1},
                "hv_ref": [0.6, 0.6],
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    _run_cli(folder / "recipe.yaml", tmp_path / "run", [])
    assert (tmp_path / "run" / "front.csv").exists()


def test_shipped_data_paths_fall_back_to_the_package(tmp_path):
    path = resolve_data_path("data/adult/adult.csv.gz", str(tmp_path))
    assert path.is_file() and path.parent.name == "adult"
    assert resolve_data_path("mine.csv", str(tmp_path)) == tmp_path / "mine.csv"


@pytest.mark.parametrize("suffix", ["jsonl", "csv.gz", "datasets"])
def test_other_formats_read_the_same_table(tmp_path, table, suffix):
    ref = FairClassification(table, **ARGS, baselines={"enabled": False}).ensure_setup()
    path = tmp_path / f"t.{suffix}"
    if suffix == "jsonl":
        table.to_json(path, orient="records", lines=True)
    elif suffix == "csv.gz":
        table.to_csv(path, index=False)
    else:
        import datasets

        datasets.Dataset.from_pandas(table).save_to_disk(str(path))
    problem = FairClassification(data={"path": str(path)}, **ARGS, baselines={"enabled": False}).ensure_setup()
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(problem.splits[split].X.numpy(), ref.splits[split].X.numpy(), atol=1e-6)
        assert list(problem.splits[split].g) == list(ref.splits[split].g)


def test_random_split_is_stratified_on_target_and_groups_despite_tiny_strata():
    from evofair.problems.fairclass.splits import random_split

    rng = np.random.default_rng(0)
    g = rng.choice(["a", "b", "c"], 1000, p=[0.6, 0.3, 0.1]).astype(object)
    y = (rng.random(1000) < np.where(g == "a", 0.2, 0.6)).astype(int)
    g[:3], y[:3] = "tiny", [0, 1, 1]  # strata of 1 and 2 rows: pooled, not a reason to give up
    rows, how = random_split(y, g.astype(str), val=0.2, test=0.2, seed=0, stratify=["target", "sensitive"])
    assert how == "target x sensitive"
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(1000))
    for group in ("a", "b", "c"):
        for label in (0, 1):
            n = int(np.sum((g == group) & (y == label)))
            for split, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
                got = int(np.sum((g[rows[split]] == group) & (y[rows[split]] == label)))
                assert abs(got - share * n) <= 1.5, (group, label, split, got, n)


def test_constraint_from_the_issue_recipe_on_a_users_table(tmp_path, adult_recipe, user_overrides, tiny):
    """`constraints: ["dpd <= 0.05"]` on fair_classification: every front model that front.csv calls
    feasible has a stored val DPD ≤ 0.05 recomputed with fairlearn; per-attribute names are
    constrainable; an unknown metric is one line, exit 2, no run folder."""
    from fairlearn.metrics import demographic_parity_difference

    out = tmp_path / "run"
    _run_cli(adult_recipe, out, user_overrides + tiny + ["algorithm.generations=3", "constraints=[dpd <= 0.05]"])
    front = pd.read_csv(out / "front.csv")
    assert {"feasible", "cv_val", "cv_test"} <= set(front.columns)
    assert yaml.safe_load((out / "config.yaml").read_text())["constraints"] == ["dpd <= 0.05"]
    assert "## Constraints" in (out / "report.md").read_text()
    problem = _problem_of_run(out)
    val = problem.splits["val"]
    store = RunStore(out, readonly=True)
    for row, ind in zip(front.itertuples(), store.individuals(front["id"].tolist())):
        with torch.no_grad():
            pred = problem.build_model(store.get_weights(ind.weights_hash))(val.X).argmax(-1).numpy()
        dpd = demographic_parity_difference(val.y == 1, pred == 1, sensitive_features=val.g)
        assert abs(ind.metrics["val"]["dpd"] - dpd) < 1e-9
        assert bool(row.feasible) == (dpd <= 0.05)
        assert abs(row.cv_val - max(0.0, dpd - 0.05)) < 1e-9
    if front["feasible"].astype(bool).any():  # feasibility first: no infeasible model next to a feasible one
        assert front["feasible"].astype(bool).all()
    store.close()

    per_attr = user_overrides + tiny + ["problem.args.groups=per_attribute", "constraints=[dpd_gender <= 0.2]"]
    assert (
        main(
            [
                "run",
                str(adult_recipe),
                "--out",
                str(tmp_path / "per"),
                "--quiet",
                *[a for o in per_attr for a in ("--set", o)],
            ]
        )
        == 0
    )

    bad = tmp_path / "bad"
    code = main(
        [
            "run",
            str(adult_recipe),
            "--out",
            str(bad),
            "--quiet",
            *[a for o in user_overrides + tiny + ["constraints=[dpdd <= 0.05]"] for a in ("--set", o)],
        ]
    )
    assert code == 2 and not bad.exists()
