"""The search-vs-sweep study's own pieces: its non-dominated filter against pymoo's sorting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
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


def test_one_seed_writes_every_field_on_a_small_table(tmp_path):
    """The runner end to end on a generated table: every JSON field the benchmark writes, ratios that are the
    HVs' quotients, an equal budget within one sweep epoch of the pipeline's, and the anytime plot."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "problems" / "merging"))
    import search_vs_sweep as svs
    from tasks import Task
    from test_merge_front import _loans_inner  # the generated loans table as an inner problem

    inner = _loans_inner(tmp_path, n=300)
    task = Task("loans", inner, (1.0, 1.0), ("error", "eod"))
    args = svs.parse(["--pop", "4", "--gens", "2", "--epochs", "2", "--n-boot", "10", "--rounds", "1", "--refine", "1"])
    row = svs.one_seed(task, 1, args)
    for key in (
        "task",
        "seed",
        "hv_pipeline",
        "hv_sweep_equal",
        "hv_sweep_double",
        "ratio_equal",
        "ratio_double",
        "diff_lo",
        "diff_hi",
    ):
        assert key in row
    assert row["ratio_equal"] == pytest.approx(row["hv_pipeline"] / row["hv_sweep_equal"])
    assert row["diff_lo"] <= row["diff_hi"]
    per_epoch = row["anytime_sweep"][0][0]  # the sweep's examples after its first epoch
    assert abs(row["budget_sweep_equal"] - row["budget_pipeline"]) <= per_epoch / 2
    assert len(row["anytime_pipeline"]) == 2 and row["anytime_pipeline"][1][0] > row["anytime_pipeline"][0][0]
    json.dumps(row)  # the JSON file takes it as it is
    from anytime import plot_anytime

    plot_anytime([row], tmp_path / "anytime.png", title="loans")
    assert (tmp_path / "anytime.png").stat().st_size > 1000


def test_recipe_vs_sweep_meets_at_the_recipes_counted_budget(tmp_path):
    """The shipped-recipe comparison end to end on a generated table: the recipe's budget is its
    refine steps plus the warm start, the sweep gets that budget within half an epoch, the merge at
    most that budget, and the ratios are the HVs' quotients."""
    import json

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "problems" / "merging"))
    import recipe_vs_sweep as rvs
    from tasks import ROOT, Task
    from test_merge_front import _loans_inner

    recipe = yaml.safe_load((ROOT / "runs" / "adult.yaml").read_text())
    recipe["algorithm"].update(pop_size=4, generations=2)
    recipe["operators"]["refine"]["args"].update(batch_size=32)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    inner = _loans_inner(tmp_path, n=300)
    inner["args"]["warm_start"] = {"steps": 5}
    task = Task("loans", inner, (1.0, 1.0), ("error", "eod"), str(path))
    steps = ["operators.refine.args.steps=3"]  # as `--set` gives it
    row = rvs.one_seed(task, 1, n_boot=10, merge_argv=["--pop", "4", "--gens", "2"], overrides=steps)
    assert row["overrides"] == steps
    refined = 4 + 4  # the initial population and one generation of offspring, each refined
    n_train = 180  # 60% of 300 rows
    warm = 5 * n_train  # 5 Adam steps; the training split is smaller than a warm-start batch (256)
    assert row["budget_recipe"] == refined * 3 * 32 + warm
    assert abs(row["budget_sweep_equal"] - row["budget_recipe"]) <= 8 * n_train / 2
    assert row["budget_merge"] <= row["budget_recipe"]
    assert row["ratio_equal"] == pytest.approx(row["hv_recipe"] / row["hv_sweep_equal"])
    assert row["ratio_vs_merge"] == pytest.approx(row["hv_recipe"] / row["hv_merge_equal"])
    assert row["diff_lo"] <= row["diff_hi"] and row["diff_merge_lo"] <= row["diff_merge_hi"]
    json.dumps(row)


def test_summarise_gives_mean_standard_error_median_and_interval_seeds():
    """Three hand-made rows: ratios 1.2, 0.9, 0.6 → mean 0.9, standard error 0.3/√3, median 0.9."""
    from summarise import summarise

    rows = [
        {
            "task": "t",
            "seed": s,
            "hv_pipeline": p,
            "hv_sweep_equal": 1.0,
            "hv_sweep_double": 2.0,
            "diff_lo": lo,
            "diff_hi": hi,
        }
        for s, p, lo, hi in ((1, 1.2, 0.1, 0.3), (2, 0.9, -0.1, 0.1), (3, 0.6, -0.5, -0.3))
    ]
    lines = summarise(rows)
    assert lines[0] == "t: 3 seeds (1, 2, 3)"
    assert lines[1] == f"  pipeline / sweep, equal budget: 0.900 ± {0.3 / 3**0.5:.3f} (median 0.900)"
    assert lines[2] == f"  pipeline / sweep, twice: 0.450 ± {0.15 / 3**0.5:.3f} (median 0.450)"
    assert lines[3] == "  intervals vs sweep: above [1], below [3]; mean half-width / sweep HV 0.100"
    assert len(lines) == 4  # no recipe or merge columns in these rows
