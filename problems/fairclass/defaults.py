"""Defaults the user's table decides: the hypervolume reference point, and the warning when a
recipe pins one that leaves out the constant predictor.

A reference point copied from another dataset's recipe silently breaks the comparison: Adult's
0.25 error bound on a table whose constant predictor errs 0.30 puts every sensible model outside
the box, so the hypervolume is 0 and every ratio reads "n/a". So, unless the recipe pins `hv_ref`,
it is computed here from the data: error-like objectives just past the constant predictor's value
(the training split's majority class, on whichever of val/test is worse), every other metric at
its maximum, 1 (or just past the constant predictor, if that is higher). The constant predictor's
metrics come from the problem's own `metrics_of_predictions`, so they are the run's definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evofair.core.indicators import just_past

#: metrics whose constant predictor value is the bar to clear; the rest are bounded by 1
ERROR_LIKE = ("error", "balanced_error")
SPLITS = ("val", "test")
METRIC_MAX = 1.0


def constant_metrics(problem) -> tuple[str, dict[str, dict[str, float]]]:
    """(the class a constant predictor names: the training split's majority, its metrics per split)."""
    counts = np.bincount(problem.splits["train"].y, minlength=problem.n_classes)
    majority = int(counts.argmax())
    out = {}
    for split in SPLITS:
        P = np.full((1, len(problem.splits[split])), majority, dtype=np.int64)
        out[split] = {k: float(np.asarray(v)[0]) for k, v in problem.metrics_of_predictions(P, split).items()}
    return str(problem.class_names[majority]), out


def data_hv_ref(problem) -> tuple[tuple[float, ...], dict[str, Any]]:
    """(the reference point, what the report states about it)."""
    label, metrics = constant_metrics(problem)
    ref, why = [], []
    for name in problem.objective_names:
        worst = max(metrics[s][name] for s in SPLITS)
        if name in ERROR_LIKE:
            ref.append(just_past(worst))
            why.append(f"{name} {ref[-1]:g}: just past the constant predictor's {worst:.3f}")
        else:
            ref.append(METRIC_MAX if worst < METRIC_MAX else just_past(worst))
            why.append(f"{name} {ref[-1]:g}: its maximum")
    return tuple(ref), {"ref": ref, "constant": label, "constant_metrics": metrics, "why": why}


def excluded_objectives(ref, info: dict[str, Any], names) -> list[str]:
    """The objectives on which a reference point does not lie strictly past the constant predictor
    (on val or test): its hypervolume there is 0, and models no better than it add nothing."""
    metrics = info["constant_metrics"]
    return [n for n, r in zip(names, ref) if any(metrics[s][n] >= r for s in SPLITS)]


def hv_ref_markdown(recipe_ref, info: dict[str, Any], names) -> tuple[str, str | None]:
    """(the report's paragraph on the reference point, a warning or None)."""
    constant = info["constant_metrics"]
    point = ", ".join(f"{n} {max(constant[s][n] for s in SPLITS):.3f}" for n in names)
    const = f"The constant predictor (always {info['constant']!r}) scores {point} (worse of val and test)."
    if recipe_ref is None:
        return f"hv_ref {list(info['ref'])} from the data: {'; '.join(info['why'])}. {const}", None
    out = excluded_objectives(recipe_ref, info, names)
    text = f"hv_ref {list(recipe_ref)} pinned by the recipe. {const}"
    if not out:
        return text, None
    warning = (
        f"hv_ref {list(recipe_ref)} does not lie past the constant predictor on {', '.join(out)} "
        f"({point}): hypervolumes of models near it are 0; omit hv_ref to derive {list(info['ref'])} from the data"
    )
    return f"{text}\n\n**Warning:** {warning}.", warning
