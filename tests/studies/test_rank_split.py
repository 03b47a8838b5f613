"""The rank-split study (studies/fair_tabular/rank_split.py): its per-generation gaps against a hand
count and against a run's errors counted here, and its `--rank-on train` variant against the
training split's errors counted here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "studies" / "fair_tabular"))
sys.path.insert(0, str(REPO / "tests" / "problems" / "fairclass"))
import rank_split  # noqa: E402
from fairclass_tables import adult_recipe, table_csv, tiny, user_overrides  # noqa: E402, F401 (fixtures)


def test_gaps_by_generation_match_a_hand_count():
    models = [  # (generation, validate error, test error)
        (1, 0.20, 0.20),
        (0, 0.10, 0.12),
        (1, 0.04, 0.11),
        (0, 0.05, 0.09),
        (1, 0.30, 0.25),
        (1, 0.04, 0.10),  # ties the other 0.04 on validate: the first listed is the most accurate
    ]
    gaps = {g["generation"]: g for g in rank_split.gaps_by_generation(models)}
    assert gaps[0]["n"] == 2 and gaps[1]["n"] == 4
    assert np.isclose(gaps[0]["mean_gap"], (0.02 + 0.04) / 2)
    assert np.isclose(gaps[1]["mean_gap"], (0.0 + 0.07 - 0.05 + 0.06) / 4)
    assert (gaps[0]["best_val"], gaps[0]["best_val_test"]) == (0.05, 0.09)
    assert (gaps[1]["best_val"], gaps[1]["best_val_test"]) == (0.04, 0.11)


def test_rank_on_train_ranks_on_train_and_stores_the_true_splits(
    tmp_path, monkeypatch, adult_recipe, user_overrides, tiny
):
    import evofair.engine.loop as loop
    import evofair.executors.base as base
    from evofair.api import build_problem
    from evofair.engine.pymoo_backend import PymooBackend
    from evofair.lifecycle.recipe import Recipe, read_recipe_file
    from evofair.store.run_store import RunStore

    monkeypatch.setattr(base, "SPLITS", base.SPLITS)  # restored after the test: the patch is process-wide
    monkeypatch.setattr(loop, "realise_generation", loop.realise_generation)
    told: list[tuple[list[str], np.ndarray]] = []
    tell = PymooBackend.tell

    def spy(self, items, F, ids, G=None):
        told.append((list(ids), np.array(F)))
        return tell(self, items, F, ids, G)

    monkeypatch.setattr(PymooBackend, "tell", spy)
    rank_split.rank_on_train()
    out = tmp_path / "run"
    overrides = (*user_overrides, *tiny, "problem.args.objectives=[error, eod]")
    row = rank_split.one_run(3, out, adult_recipe, overrides)
    assert len(row["generations"]) == 2 and told

    problem = build_problem(Recipe.model_validate(read_recipe_file(out / "config.yaml"))).ensure_setup()
    store = RunStore(out, readonly=True)
    ids = [i for batch_ids, _ in told for i in batch_ids]
    individuals = {ind.id: ind for ind in store.individuals(ids)}
    weights = [store.get_weights(individuals[i].weights_hash) for i in ids]
    store.close()
    F = np.concatenate([f for _, f in told])
    for split, column in (("train", F[:, 0]), ("val", None), ("test", None)):
        errors = np.array([np.mean(p != problem.splits[split].y) for p in problem.predictions(weights, split)])
        if column is not None:  # what NSGA-II was told is the training split's error
            assert np.allclose(column, errors)
        else:  # what the store keeps is the split's own
            assert np.allclose([individuals[i].metrics[split]["error"] for i in ids], errors)
            assert all("train" not in individuals[i].metrics for i in ids)
    assert not np.allclose(F[:, 0], [individuals[i].metrics["val"]["error"] for i in ids])
    # the study's gaps, from the same run's store, against the errors counted here
    val = {i: individuals[i].metrics["val"]["error"] for i in ids}
    test = {i: individuals[i].metrics["test"]["error"] for i in ids}
    for g in row["generations"]:
        members = sorted((i for i in ids if individuals[i].generation == g["generation"]), key=lambda i: (val[i], i))
        assert g["n"] == len(members)
        assert np.isclose(g["mean_gap"], np.mean([test[i] - val[i] for i in members]))
        assert (g["best_val"], g["best_val_test"]) == (val[members[0]], test[members[0]])
