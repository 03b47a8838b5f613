"""The tasks the merge pipeline is measured on, each as an inner problem of the `merge` recipe.

A task is the inner problem's recipe entry (name and args), its reference point and the objectives
it is judged on. The tabular tasks take the shipped recipes' problem arguments as they are (data
path made absolute, the in-run baselines off: the sweep here is the comparison), so the benchmark
measures the defaults a user gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evofair.analysis.metrics import fairness_metrics

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Task:
    name: str
    inner: dict[str, Any]
    ref: tuple[float, float]
    objectives: tuple[str, str]
    recipe: str = ""  # the shipped recipe (runs/) a user runs on this task's data: recipe_vs_sweep.py
    notes: dict[str, Any] = field(default_factory=dict)


def _from_recipe(name: str, file: str, ref: tuple[float, float]) -> Task:
    recipe = yaml.safe_load((ROOT / "runs" / file).read_text())
    args = dict(recipe["problem"]["args"])
    args["data"] = {**args["data"], "path": str(ROOT / args["data"]["path"])}
    args["baselines"] = {"enabled": False}
    return Task(name, {"name": recipe["problem"]["name"], "args": args}, ref, tuple(args["objectives"]), file)


def tasks() -> dict[str, Task]:
    return {
        "biasbios_head": Task(
            "biasbios_head", {"name": "biasbios"}, (0.25, 0.25), ("error", "dtpr"), "fapareto_biasbios.yaml"
        ),
        # reference points: just past the constant predictor's test error, and the metric's maximum
        "adult": _from_recipe("adult", "adult.yaml", (0.25, 1.0)),
        "compas": _from_recipe("compas", "compas.yaml", (0.5, 1.0)),
    }


def objectives(problem, task: Task, P: np.ndarray, split: str) -> np.ndarray:
    """(n_models, 2) objectives of predicted classes `P` on `split`, both minimised."""
    m = problem.metrics_of_predictions(P, split)
    return np.column_stack([m[name] for name in task.objectives])


def resampled_objectives(problem, task: Task, P: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The same objectives on the test examples `idx` (a bootstrap resample)."""
    data = problem.splits["test"]
    m = fairness_metrics(
        P[:, idx],
        np.asarray(data.y)[idx],
        np.asarray(data.g)[idx],
        classes=np.arange(problem.n_classes),
        pos_label=problem.pos_label,
    )
    return np.column_stack([m[name] for name in task.objectives])


def result_row(task: str, seed: int, hv_p: float, hv_e: float, hv_d: float, lo: float, hi: float) -> dict[str, Any]:
    """One task and seed as `--json` writes it: the three test HVs, their ratios (None where the
    sweep's HV is 0) and the paired interval of HV(pipeline) - HV(sweep at equal budget)."""
    return {
        "task": task,
        "seed": seed,
        "hv_pipeline": hv_p,
        "hv_sweep_equal": hv_e,
        "hv_sweep_double": hv_d,
        "ratio_equal": hv_p / hv_e if hv_e else None,
        "ratio_double": hv_p / hv_d if hv_d else None,
        "diff_lo": lo,
        "diff_hi": hi,
    }
