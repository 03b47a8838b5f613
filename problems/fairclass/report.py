"""`fair_classification`'s report sections (the problem's `report_sections` hook), all on *test*:

the test (and val) hypervolume of the evolved front, of each baseline method, of the union of the
fairlearn reductions (which do not read the sensitive attribute at prediction time), of the union
of every baseline that does not, and of the union of everything; the ratio front / union stated
plainly; per-group (intersectional) test metrics of a few chosen models; the training budgets.
The same numbers go to `summary.json` (studies/fair_tabular/fair_tabular.py reads it).

Selection rule, the same for every set (problems/common/selection_rule.py): a set of models
is reduced to its members non-dominated on the validate split; only those are scored on test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.metrics import GroupCounts, is_near_constant
from evofair.analysis.report import final_front
from evofair.core.indicators import hypervolume
from evofair.problems.common.baselines import read_baselines
from evofair.problems.common.lora_baselines import LABELS as LORA_LABELS
from evofair.problems.common.lora_baselines import LORA_METHODS
from evofair.problems.common.lora_baselines import budget_sentence as lora_budget_sentence
from evofair.problems.common.selection_rule import hv_of, objective_matrix
from evofair.problems.fairclass.baselines import (
    METHODS,
    REDUCTION_METHODS,
    REDUCTIONS_PHASE,
    positive_class,
    read_predictions,
    reference_errors,
)
from evofair.store.safe_io import atomic_write_text

LABELS = {
    "vanilla": "(a) plain model (CE heads)",
    "scalarisation": "(b) CE + λ·soft TPR gap sweep",
    "threshold": "(c) ThresholdOptimizer on (a)",
    "exponentiated_gradient": "fairlearn ExponentiatedGradient",
    "grid_search": "fairlearn GridSearch",
    **LORA_LABELS,
}
UNIONS = {  # summary key -> (label, methods)
    "fairlearn_union": ("union of the fairlearn reductions (no sensitive attribute at prediction)", REDUCTION_METHODS),
    "no_sensitive_union": (
        "union of every baseline without the sensitive attribute at prediction",
        ("vanilla", "scalarisation", *REDUCTION_METHODS, *LORA_METHODS),
    ),
    "lora_union": ("union of the LoRA fine-tunes (LoRA CE, LoRA CE+λ·gap)", LORA_METHODS),
    "all_union": ("union of every baseline (ThresholdOptimizer included)", METHODS),
}


def hv_ref_of(problem, recipe) -> tuple[float, ...]:
    """The recipe's `hv_ref`, else the problem's default, else 1 per objective (every metric here
    is a rate in [0, 1], so 1 is the worst value: nothing is cut off)."""
    ref = recipe.hv_ref or getattr(problem, "default_hv_ref", None)
    return tuple(float(r) for r in ref) if ref else (1.0,) * len(problem.objectives)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6f}"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def group_table(problem, pred: np.ndarray, split: str = "test") -> str:
    """Per-group (intersectional) numbers of one model: size, error, and per class the TPR; for a
    binary target also the selection rate and FPR of the positive class."""
    data = problem.splits[split]
    gc = GroupCounts.of(np.asarray(pred)[None, :], data.y, data.g, classes=np.arange(problem.n_classes))
    counts = gc.counts[0]
    n = counts.sum(axis=(1, 2))
    err = 1 - np.einsum("acc->a", counts) / np.where(n > 0, n, 1)
    tpr = gc.tpr()[0]
    names = list(problem.class_names)
    binary = problem.n_classes == 2
    head = ["group", "n", "error"] + [f"TPR {c}" for c in names]
    if binary:
        pos = positive_class(problem)
        head += [f"FPR ({names[pos]})", f"selection rate ({names[pos]})"]
        fpr, sel = gc.fpr(pos)[0], gc.selection_rate(pos)[0]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a, group in enumerate(gc.groups):
        cells = [str(group).replace("|", "\\|"), str(int(n[a])), f"{err[a]:.4f}"]
        cells += [f"{tpr[a, c]:.4f}" for c in range(len(names))]
        if binary:
            cells += [f"{fpr[a]:.4f}", f"{sel[a]:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _hv_rows(problem, rows: Sequence[dict], ref) -> tuple[float, float, int]:
    hv_t, n = hv_of(problem, list(rows), ref, "test")
    hv_v, _ = hv_of(problem, list(rows), ref, "val")
    return hv_t, hv_v, n


def _method_rows(problem, models: list[dict], cands: dict, ref, summary: dict, points: dict) -> list[str]:
    """One table row per baseline method that made candidates, its test and val HV added to
    `summary` and its test points (signed back to the metrics' own direction) to `points`."""
    signs = np.array([o.sign for o in problem.objectives])
    table = []
    for method in METHODS:
        rows = [m["metrics"] for m in models if m["method"] == method]
        if not cands.get(method):
            continue
        hv_t, hv_v, n_sel = _hv_rows(problem, rows, ref)
        summary[f"hv_{method}_test"], summary[f"hv_{method}_val"] = hv_t, hv_v
        uses = "**yes**" if method == "threshold" else "no"
        table.append(f"| {LABELS[method]} | {uses} | {cands[method]} | {n_sel} | {_fmt(hv_t)} | {_fmt(hv_v)} |")
        if rows:
            points[LABELS[method]] = (objective_matrix(problem, rows, "test") * signs)[:, :2]
    return table


def _union_rows(
    problem, models: list[dict], cands: dict, ref, hv_front: float, summary: dict
) -> tuple[list[str], list[str]]:
    """Table rows for the unions of baselines (a union is what a practitioner who tried all of
    them would hold) and one sentence per union comparing the evolved front's test HV with it."""
    table: list[str] = []
    ratios: list[str] = []
    for key, (label, methods) in UNIONS.items():
        rows = [m["metrics"] for m in models if m["method"] in methods]
        n_cand = sum(cands.get(m, 0) for m in methods)
        if not n_cand:
            continue
        hv_t, hv_v, n_sel = _hv_rows(problem, rows, ref)
        summary[f"hv_{key}_test"], summary[f"hv_{key}_val"] = hv_t, hv_v
        summary[f"ratio_front_vs_{key}"] = _ratio(hv_front, hv_t)
        table.append(
            f"| {label} | {'**yes**' if 'threshold' in methods else 'no'} | {n_cand} | {n_sel} | "
            f"{_fmt(hv_t)} | {_fmt(hv_v)} |"
        )
        r = _ratio(hv_front, hv_t)
        shown = "n/a (union HV is 0)" if r is None else f"{r:.3f}"
        ratios.append(
            f"- Evolved front / {label}: test HV ratio **{shown}** ({_fmt(hv_front)} vs {_fmt(hv_t)}): "
            "the front is "
            f"{'n/a' if r is None else 'better' if r > 1 else 'equal' if r == 1 else 'worse'}."
        )
    return table, ratios


def _budget_lines(b: dict) -> list[str]:
    """What each side was given to train with, so a reader can judge whether the comparison is
    fair in effort: the evolution's examples, the heads' epochs, the reductions' settings and time."""
    fl = b.get("fairlearn", {})
    secs = b.get("seconds", {})
    warm = int(b.get("warm_start_examples", 0))
    warm_part = f", and the warm start of θ₀ (plain cross-entropy) {warm} more" if warm else ""
    budget = [
        f"Training budget: the evolution's local learning used {int(b['examples'])} training examples "
        f"({b['examples'] / b['n_train']:.1f} epochs over {int(b['refined_models'])} refined models){warm_part}; "
        f"(a) and (b) got {int(b['baseline_examples_per_method'])} or more each "
        f"({b['baseline_epochs_per_head']} epochs per head, every epoch a candidate)."
    ]
    if fl.get("reductions"):
        cpu = fl.get("cpu_seconds", {})
        eg = (
            f"ExponentiatedGradient at eps {fl['eps']} (max_iter {fl['expgrad_max_iter']}; "
            f"{cpu.get('exponentiated_gradient', 0):.0f} CPU s)"
            if fl.get("expgrad")
            else "no ExponentiatedGradient"
        )
        gs = (
            f"GridSearch with grid_size {fl['grid_size']}, grid_limit {fl['grid_limit']:g} "
            f"({cpu.get('grid_search', 0):.0f} CPU s)"
            if fl.get("grid_search")
            else "no GridSearch"
        )
        budget.append(
            f"fairlearn reductions on the same features, base estimator {fl['base_estimator']} on "
            f"float64, sensitive feature = the intersectional groups, constraints "
            f"{', '.join(fl['reductions'])}: {eg}; {gs}; {fl.get('n_jobs', 1)} process(es), "
            f"{secs.get(REDUCTIONS_PHASE, 0):.1f} s wall."
        )
    if b.get("lora"):
        budget.append(lora_budget_sentence(b["lora"]))
    budget += [f"Note: {n}" for n in b.get("notes", [])]
    return budget


def fair_report_sections(problem, store, out: Path, recipe) -> dict[str, Any]:
    """The problem's `report_sections` hook: the sections and points of the module doc, and
    `summary.json` with the same numbers for studies that compare runs."""
    out = Path(out)
    ref = hv_ref_of(problem, recipe)
    names = problem.objective_names
    md: dict[str, str] = {}
    summary: dict[str, Any] = {"hv_ref": list(ref), "objectives": names}

    front = sorted(final_front(store, problem), key=lambda i: [i.metrics["val"][n] for n in names])
    front_rows = [i.metrics for i in front]
    hv_front, hv_front_val = (hypervolume(objective_matrix(problem, front_rows, s), ref) for s in ("test", "val"))
    summary.update(hv_front_test=hv_front, hv_front_val=hv_front_val, n_front=len(front))
    table = [
        "| set | uses sensitive attribute at prediction | candidates | val-non-dominated | HV test | HV val |",
        "|---|---|---|---|---|---|",
        f"| **evolved front** (final population) | no | {len(front)} | {len(front)} | **{_fmt(hv_front)}** | "
        f"{_fmt(hv_front_val)} |",
    ]
    points: dict[str, np.ndarray] = {}
    base = read_baselines(out)
    if base is not None:
        b = base["budget"]
        summary.update(examples_evolution=b["examples"], examples_warm_start=b.get("warm_start_examples", 0))
        models = base["models"]
        cands = b.get("candidates", {})
        table += _method_rows(problem, models, cands, ref, summary, points)
        union_table, ratios = _union_rows(problem, models, cands, ref, hv_front, summary)
        table += union_table
        table += ["", *ratios, "", *_budget_lines(b)]
    md["Evolved front vs baselines (test split)"] = "\n".join(
        [
            f"Hypervolume of minimised ({', '.join(names)}) with reference point **{ref}**. The same selection rule "
            "for every set: the evolution's candidates are its final population, each baseline's are every model it "
            "made (every epoch of every head; every (constraint, eps) of ExponentiatedGradient; every grid point of "
            "GridSearch); each set is reduced to its members non-dominated on the validate split, and only those are "
            "scored on test. ThresholdOptimizer reads the sensitive attribute at prediction time, so it is kept out "
            "of the fair comparison.",
            "",
            *table,
        ]
    )
    chosen = _chosen_models(problem, store, out, front, base, ref, summary)
    md["Accurate end vs simple references"] = references_markdown(problem, front_rows, ref, summary)
    md["Chosen models: per-group metrics (test)"] = chosen
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float), within=out)
    return {"markdown": md, "points": points, "plot_split": "test"}


def _chosen_models(problem, store, out: Path, front, base, ref, summary: dict) -> str:
    """The front's lowest-val-error model and its knee, and the lowest-val-error model of each
    baseline method: one per-group table each."""
    names = problem.objective_names
    parts: list[str] = []
    if front:
        weights = [store.get_weights(i.weights_hash) for i in front]
        P = problem.predictions(weights, "test")
        flags = is_near_constant(P)
        summary["n_front_near_constant"] = int(flags.sum())
        Fv = problem.minimised({n: np.array([i.metrics["val"][n] for i in front]) for n in names})
        ok = [k for k in range(len(front)) if not flags[k]] or list(range(len(front)))
        knee = ok[int(np.argmin((Fv[ok] / np.asarray(ref)).sum(1)))]
        for title, k in (
            ("evolved front, lowest val error", ok[int(np.argmin(Fv[ok, 0]))]),
            ("evolved front, knee (min of Σ objective/ref on val)", knee),
        ):
            line = _model_line(title, front[k].id, front[k].metrics, names, bool(flags[k]))
            parts += [line, "", group_table(problem, P[k]), ""]
    if base is not None:
        preds = read_predictions(out)
        for method in METHODS:
            mine = [m for m in base["models"] if m["method"] == method and m["id"] in preds]
            if mine:
                best = min(mine, key=lambda m: m["metrics"]["val"][names[0]])
                parts += [
                    _model_line(
                        f"{LABELS[method]}, lowest val {names[0]}",
                        best["id"],
                        best["metrics"],
                        names,
                        bool(best.get("near_constant_test")),
                    ),
                    "",
                    group_table(problem, preds[best["id"]]["test"]),
                    "",
                ]
    return "\n".join(parts) if parts else "No models."


def _model_line(title: str, mid: str, metrics: dict, names: Sequence[str], flagged: bool = False) -> str:
    vals = ", ".join(f"{n} {metrics['test'][n]:.4f}" for n in names)
    return f"**{title}: {mid}** (test: {vals})" + (" — **near-constant** (≥ 99% one class)" if flagged else "")


#: what an undertrained accurate end should change, in this problem's own runs
UNDERTRAINED_REMEDY = (
    "raise `warm_start.steps` or the refine budget; docs/fair-classification.md#defaults-on-a-new-table"
)


def references_markdown(
    problem, front_rows: Sequence[dict], ref, summary: dict, remedy: str = UNDERTRAINED_REMEDY
) -> str:
    """The front's best test error next to the constant predictor's and a plain
    LogisticRegression's on the same split (baselines.reference_errors), with a plain sentence
    when the front does worse than either (`remedy`: what to change when it is undertrained);
    the numbers also go to `summary`."""
    refs = reference_errors(problem)
    best = {s: min((r[s]["error"] for r in front_rows), default=None) for s in ("val", "test")}
    for s in ("val", "test"):
        summary[f"error_{s}_front_best"] = best[s]
        summary.update({f"error_{s}_{k}": v[s] for k, v in refs.items()})
    lines = [
        "| model | val error | test error |",
        "|---|---|---|",
        f"| evolved front, lowest error on each split | {_fmt(best['val'])} | {_fmt(best['test'])} |",
        f"| constant predictor (training majority class) | {_fmt(refs['constant']['val'])} | "
        f"{_fmt(refs['constant']['test'])} |",
        "| plain LogisticRegression (scikit-learn defaults, same features and split) | "
        f"{_fmt(refs['logistic_regression']['val'])} | {_fmt(refs['logistic_regression']['test'])} |",
        "",
        f"Near-constant front models (≥ 99% one class on test): {summary.get('n_front_near_constant', 0)} "
        f"of {len(front_rows)}.",
    ]
    if best["test"] is not None:
        lines += ["", _verdict(best, refs, remedy)]
    if ref[0] <= refs["constant"]["test"] and problem.objective_names[0] == "error":
        lines += [
            "",
            f"Note: the reference point's error {ref[0]:g} is not above the constant predictor's "
            f"{refs['constant']['test']:.4f}, so models no better than constant add no hypervolume.",
        ]
    return "\n".join(lines)


def _verdict(best: dict[str, float], refs: dict[str, dict[str, float]], remedy: str) -> str:
    """One sentence: is the front's best test error at or below both references, and if not, is
    that undertraining (worse on validation too) or selection on validation (better there)?"""
    names = {"constant": "the constant predictor's", "logistic_regression": "the plain LogisticRegression's"}
    worse = [k for k in names if best["test"] > refs[k]["test"]]
    if not worse:
        return "The front's best test error is at or below both references."
    head = f"**The front's best test error ({best['test']:.4f}) is worse than {' and '.join(names[k] for k in worse)}**"
    if any(best["val"] > refs[k]["val"] for k in worse):
        return f"{head}: it is worse on validation too, so its accurate end is undertrained for this table ({remedy})."
    return (
        f"{head}, though on validation it is at or below them ({best['val']:.4f}): the front was selected "
        "on the validation split, and the gap on test is that selection's optimism, not undertraining."
    )
