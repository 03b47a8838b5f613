"""The FairPO table's verdicts and warnings, on hand-made per-seed rows."""

import math

import numpy as np
import pytest

import evofair
from evofair.errors import UserError
from evofair.problems.fairpo.claims import claim, positives_warnings, served_warning, verdict_line
from evofair.problems.fairpo.mulan import privileged_labels


def _runs(sft, method, sft_n=None, method_n=None):
    """Rows of fairpo_runs.csv: per-seed mAP_P (and mAP_N) of BCE-SFT and of 'dpo_stable'."""
    sft_n = sft_n or [0.6] * len(sft)
    method_n = method_n or [0.6] * len(method)
    rows = []
    for s, (a, b, an, bn) in enumerate(zip(sft, method, sft_n, method_n)):
        rows.append({"method": "sft", "seed": s, "map_P": a, "map_N": an})
        rows.append({"method": "dpo_stable", "seed": s, "map_P": b, "map_N": bn})
    return rows


def test_verdict_states_seed_count_and_spread():
    # per-seed gains Δ = (+.03, −.01, +.02, +.01): mean .0125; sample std √((.0175² + .0225² + .0075² + .0025²)/3)
    runs = _runs([0.10] * 4, [0.13, 0.09, 0.12, 0.11])
    c = claim(runs, "dpo_stable", epsilon=0.05)
    std = math.sqrt((0.0175**2 + 0.0225**2 + 0.0075**2 + 0.0025**2) / 3)
    assert std == pytest.approx(0.017078, abs=1e-6)
    assert c["delta_map_P"] == pytest.approx(0.0125) and c["delta_map_P_std"] == pytest.approx(std)
    assert (c["delta_map_P_min"], c["delta_map_P_max"]) == (pytest.approx(-0.01), pytest.approx(0.03))
    assert c["seeds_P_raised"] == 3 and c["holds"]
    line = verdict_line(c)
    assert line.startswith("- dpo_stable: **HOLDS**")  # the form the recorded-table test reads
    assert "rose on 3/4 seeds" in line and "std 0.0171" in line and "range [-0.0100, +0.0300]" in line
    # it holds on the mean only: the line says that it failed on a seed and that the gain is within the spread
    assert "did not rise on 1 of 4 seeds" in line and "no larger than the seed-to-seed std" in line


def test_verdict_without_caveats_when_every_seed_rises():
    runs = _runs([0.10, 0.11, 0.12], [0.13, 0.14, 0.15])  # Δ = .03 on every seed, std 0
    c = claim(runs, "dpo_stable", epsilon=0.05)
    assert c["delta_map_P_std"] == pytest.approx(0.0, abs=1e-12) and c["seeds_P_raised"] == 3
    line = verdict_line(c)
    assert "rose on 3/3 seeds" in line and "Caution" not in line
    # and a mean that does not rise: DOES NOT HOLD, with the seed count still stated
    c = claim(_runs([0.10, 0.10], [0.09, 0.105]), "dpo_stable", epsilon=0.05)
    assert verdict_line(c).startswith("- dpo_stable: **DOES NOT HOLD**") and "rose on 1/2 seeds" in verdict_line(c)


def test_served_warning_when_privileged_labels_are_best_served_by_sft():
    # BCE-SFT's mAP_P (mean .55) ≥ its mAP_N (mean .50): P is not the disadvantaged group
    w = served_warning(_runs([0.5, 0.6], [0.5, 0.6], sft_n=[0.5, 0.5]))
    assert w is not None and "0.5500" in w and "0.5000" in w
    assert served_warning(_runs([0.1, 0.2], [0.3, 0.3], sft_n=[0.5, 0.5])) is None


def test_positives_warnings_name_the_labels_and_counts():
    y_train = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]] * 4)  # positives per label: 12, 4, 4
    y_val = np.array([[1, 0, 1], [0, 0, 1]])  # 1, 0, 2
    names = ["a", "b", "c"]
    w = positives_warnings(names, [1, 2], y_train, y_val, min_train=5, min_val=2)
    assert len(w) == 2
    assert "fewer than 5 positives in the training rows: b (4), c (4)" in w[0]
    assert "fewer than 2 positives in the validation rows: b (0)" in w[1] and "c (" not in w[1]
    assert positives_warnings(names, [0], y_train, y_val, min_train=5, min_val=1) == []


def test_privileged_label_without_training_positive_is_refused():
    y = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]])  # label 1 has no positive
    with pytest.raises(UserError, match=r"problem.args.privileged: .*'L1'.*no positive"):
        privileged_labels(y, ["L0", "L1", "L2", "L3"], fraction=0.25)  # the rarest is L1
    with pytest.raises(UserError, match="min_positives"):
        privileged_labels(y, ["L0", "L1", "L2", "L3"], explicit=["L1"])
    assert privileged_labels(y, ["L0", "L1", "L2", "L3"], explicit=["L2"]).tolist() == [2]


def test_table_refuses_min_positives_zero_on_enron_before_writing(tmp_path):
    """enron with min_positives 0: the rarest labels include D.D18, with no positive in the training rows."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    recipe = evofair.load_experiment(
        root / "runs/fairpo_enron.yaml",
        ["problem.args.min_positives=0", "experiment.args.seeds=[0]", "experiment.args.epochs=1"],
    )
    with pytest.raises(UserError, match="D.D18"):
        evofair.experiment(recipe, tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()
