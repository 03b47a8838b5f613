"""FairPO reports: how P was chosen, and BCE-SFT beside the memetic front.

Oracles: the rarest labels and mAP counted here with numpy and scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from evofair.api import run as evofair_run
from evofair.lifecycle.recipe import load_recipe
from evofair.problems.fairpo.multilabel import MultiLabelParams, MultiLabelProblem
from evofair.problems.fairpo.partition_text import privileged_line

ROOT = Path(__file__).resolve().parents[3]
TINY = [
    "problem.args.data=mulan_emotions",
    "problem.args.hidden=8",
    "problem.args.sft_epochs=2",
    "algorithm.pop_size=4",
    "algorithm.generations=1",
    "operators.refine.args.steps=1",
]


def test_p_line_says_whether_the_recipe_named_p_or_the_rarest_rule_chose_it():
    rarest = privileged_line(MultiLabelParams(privileged_fraction=0.25), ["Mountain", "Urban"], 6)
    assert rarest == "Privileged labels P (rarest ⌈0.25·C⌉ = 2 of 6 labels on train): Mountain, Urban."
    named = privileged_line(MultiLabelParams(privileged=["Mountain", "Urban"]), ["Mountain", "Urban"], 6)
    assert named == "Privileged labels P (named by the recipe (`privileged`), 2 of 6 labels): Mountain, Urban."
    assert "rarest" not in named


def _memetic(tmp_path: Path, extra: list[str]) -> tuple[str, MultiLabelProblem]:
    recipe = load_recipe(ROOT / "runs/fairpo_memetic_yeast.yaml", TINY + extra)
    evofair_run(recipe, tmp_path, progress=False)
    problem = MultiLabelProblem(MultiLabelParams(**recipe.problem.args))
    problem.setup()
    return (tmp_path / "report.md").read_text(), problem


def _sk_map(y: np.ndarray, s: np.ndarray, labels) -> float:
    return float(np.mean([average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else 0.0 for c in labels]))


def test_memetic_report_names_rarest_p_and_shows_bce_sft_on_the_same_data(tmp_path):
    report, problem = _memetic(tmp_path / "m", [])
    freq = problem.y["train"].mean(axis=0)
    rarest = np.sort(np.lexsort((np.arange(problem.C), freq))[: int(np.ceil(0.25 * problem.C))])
    names = ", ".join(f"{problem.label_names[i]} ({freq[i]:.3f})" for i in rarest)
    k = len(rarest)
    assert (
        f"Privileged labels P (rarest ⌈0.25·C⌉ = {k} of {problem.C} labels on train, train frequency): {names}."
        in report
    )
    scores = problem.probabilities([problem.reference_weights()], "test")[0]
    others = np.setdiff1d(np.arange(problem.C), rarest)
    map_p, map_n = _sk_map(problem.y["test"], scores, rarest), _sk_map(problem.y["test"], scores, others)
    row = next(line for line in report.splitlines() if line.startswith("| BCE-SFT (the run's reference head"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert cells[2:] == pytest.approx([map_p, map_n], abs=5e-5)  # mAP_P (test), mAP_N (test), printed to 4 places
    front = pd.read_csv(tmp_path / "m" / "front.csv")
    on_p = set(front["id"][1 - front["err_map_P_test"] >= map_p])
    on_n = set(front["id"][1 - front["err_map_N_test"] >= map_n])
    both = on_p & on_n
    counts = f"{len(both)} reach BCE-SFT's test mAP on both P and N, {len(on_p - both)} on P only, {len(on_n - both)} on N only"
    assert f"Of {len(front)} front models, {counts}" in report


def test_memetic_report_says_p_was_named(tmp_path):
    report, problem = _memetic(tmp_path / "m", ["problem.args.privileged=[angry-aggresive,happy-pleased]"])
    assert "Privileged labels P (named by the recipe (`privileged`), 2 of 6 labels, train frequency): " in report
    assert "angry-aggresive (" in report and "rarest" not in report.split("## Label partition")[1].split("##")[0]
