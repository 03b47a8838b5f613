"""The memetic FairPO run's report sections (`multilabel`'s `report_sections` hook).

Besides the label partition (how P was chosen: partition_text.py), the front is set beside BCE-SFT
trained on the same data and split — the run's own reference head, the model FairPO's premise says
serves P worst. Without that row a reader cannot tell whether evolving FairPO heads bought anything
over plain BCE fine-tuning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evofair.analysis.report import final_front
from evofair.problems.fairpo.partition_text import privileged_line

SPLITS = ("val", "test")


def _row(label: str, metrics: dict[str, dict[str, float]]) -> str:
    cells = [f"{metrics[s][m]:.4f}" for s in SPLITS for m in ("map_P", "map_N")]
    return f"| {label} | " + " | ".join(cells) + " |"


def sft_comparison(problem, store) -> tuple[str, dict[str, np.ndarray]]:
    """A table of BCE-SFT and the front's two ends (lowest val 1 − mAP_P, lowest val 1 − mAP_N),
    mAP_P and mAP_N on val and test, a sentence saying whether a front model beats BCE-SFT on both
    groups on test, and BCE-SFT's test point for the front plot."""
    ref = problem.reference_weights()
    sft = {s: {k: float(v[0]) for k, v in problem.evaluate([ref], s).items()} for s in SPLITS}
    lines = [
        "| model | mAP_P (val) | mAP_N (val) | mAP_P (test) | mAP_N (test) |",
        "|---|---|---|---|---|",
        _row(f"BCE-SFT (the run's reference head: {problem.params.sft_epochs} epochs, same data and split)", sft),
    ]
    front = final_front(store, problem)
    for name, title in (("err_map_P", "front, best val mAP_P"), ("err_map_N", "front, best val mAP_N")):
        if front:
            best = min(front, key=lambda i: i.metrics["val"][name])
            lines.append(_row(f"{title}: {best.id}", best.metrics))
    lines += ["", _versus_sft(front, sft["test"])]
    point = np.array([[sft["test"]["err_map_P"], sft["test"]["err_map_N"]]])
    return "\n".join(lines), {"BCE-SFT (same data)": point}


def _versus_sft(front, sft: dict[str, float]) -> str:
    """How many front models reach BCE-SFT's test mAP on both groups, on P only, on N only."""
    on_p = {i.id for i in front if i.metrics["test"]["map_P"] >= sft["map_P"]}
    on_n = {i.id for i in front if i.metrics["test"]["map_N"] >= sft["map_N"]}
    both = on_p & on_n
    return (
        f"Of {len(front)} front models, {len(both)} reach BCE-SFT's test mAP on both P and N, "
        f"{len(on_p - both)} on P only, {len(on_n - both)} on N only"
        + ("; **BCE-SFT is at least as good on both groups as every front model**." if not on_p | on_n else ".")
    )


def memetic_sections(problem, store, out, recipe) -> dict[str, Any]:
    info = problem.describe()
    freq = problem.y["train"].mean(axis=0)
    partition = (
        f"Dataset `{info['dataset']}`: {info['labels']} labels, {info['features']} features, rows {info['rows']}. "
        + privileged_line(problem.params, info["privileged"], problem.C, [freq[i] for i in problem.priv])
    )
    table, points = sft_comparison(problem, store)
    return {
        "markdown": {"Label partition": partition, "Front vs BCE-SFT on the same data": table},
        "points": points,
        "plot_split": "test",
    }
