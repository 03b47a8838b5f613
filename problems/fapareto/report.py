"""FaPareto's report sections (the problem's `report_sections` hook), all on the *test* split:

hypervolume of the evolved front and of each baseline under one stated reference point, the
front's error–ΔTPR correlation (paper: −0.81), HV per generation, the chosen models' per-group
confusion numbers, flags for near-constant models, the training budgets and the setup phases.
The same numbers go to `summary.json` so benchmarks read them instead of parsing markdown.

Selection rule, the same for every method: a set of models is first reduced to its members that
are non-dominated on the validate split; only those are scored on test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.metrics import is_near_constant
from evofair.analysis.report import archive, confusion_table, final_front
from evofair.core.indicators import hypervolume
from evofair.problems.common.baselines import read_baselines
from evofair.problems.common.lora_baselines import LABELS as LORA_LABELS
from evofair.problems.common.lora_baselines import LORA_METHODS, budget_sentence
from evofair.problems.common.selection_rule import hv_of, objective_matrix, val_selected
from evofair.store.safe_io import atomic_write_text

PAPER_CORRELATION = -0.81


def _corr(F: np.ndarray) -> float | None:
    if len(F) < 3 or np.std(F[:, 0]) == 0 or np.std(F[:, 1]) == 0:
        return None
    return float(np.corrcoef(F[:, 0], F[:, 1])[0, 1])


def confusion_markdown(problem, pred: np.ndarray, split: str) -> str:
    data = problem.splits[split]
    return confusion_table(pred, data.y, data.g, problem.class_names)


def front_vs_union_interval(problem, store, front, base, ref, recipe) -> dict[str, Any] | None:
    """The paired bootstrap of HV(front) − HV(union of (a)+(b)) and of the front's correlation
    (evofair.analysis.uncertainty.front_vs_union), with the run's seed and `intervals:` settings; None when
    the recipe turned intervals off or the problem has no per-example outputs."""
    from evofair.analysis import uncertainty

    cfg = getattr(recipe, "intervals", None)
    if cfg is None or not cfg.enabled or not uncertainty.supports_intervals(problem):
        return None
    union = [m for m in base["models"] if m["method"] in uncertainty.UNION_METHODS and m.get("weights_hash")]
    idx = uncertainty.split_indices(problem, cfg.n_boot, uncertainty.bootstrap_seed(recipe.seed))
    res = uncertainty.front_vs_union(
        problem,
        [store.get_weights(i.weights_hash) for i in front],
        [i.metrics for i in front],
        [store.get_weights(m["weights_hash"]) for m in union],
        [m["metrics"] for m in union],
        ref,
        idx,
        cfg.level,
    )
    return {**res, "level": cfg.level, "n_boot": cfg.n_boot}


def _verdict(paired: dict[str, Any]) -> str:
    if paired["lo"] > 0:
        return "the front is ahead beyond resampling noise"
    if paired["hi"] < 0:
        return "the baselines are ahead beyond resampling noise"
    return "the interval contains 0: no difference beyond resampling noise"


def _fmt_hv(x: float) -> str:
    return f"{x:.6f}"


def lora_report_lines(problem, base: dict[str, Any], ref, hv_front: float, summary: dict[str, Any]) -> list[str]:
    """With LoRA fine-tune baselines (lora_baselines.py): the HV row of their union, then the ratio
    and budget sentence; their per-method rows come from the loop over methods."""
    rec = base["budget"].get("lora")
    if not rec:
        return []
    union = [m["metrics"] for m in base["models"] if m["method"] in LORA_METHODS]
    hv_t, n = hv_of(problem, union, ref, "test")
    hv_v, _ = hv_of(problem, union, ref, "val")
    n_cand = sum(base["budget"].get("candidates", {}).get(m, 0) for m in LORA_METHODS)
    summary.update(hv_lora_union_test=hv_t, ratio_front_vs_lora_union=(hv_front / hv_t) if hv_t > 0 else None)
    ratio = f"{hv_front / hv_t:.3f}" if hv_t > 0 else "n/a (union HV is 0)"
    return [
        f"| union of {LORA_LABELS['lora_vanilla']} and {LORA_LABELS['lora_scalarisation']} (fine-tunes) | "
        f"{n_cand} | {n} | {_fmt_hv(hv_t)} | {_fmt_hv(hv_v)} |",
        "",
        f"Evolved front vs union of the LoRA fine-tunes, test HV ratio: **{ratio}** ({_fmt_hv(hv_front)} vs "
        f"{_fmt_hv(hv_t)}). " + budget_sentence(rec),
    ]


def report_sections(problem, store, out: Path, recipe) -> dict[str, Any]:
    """The problem's `report_sections` hook: markdown sections, plotted baseline points, and
    summary.json with the same numbers (see the module docstring)."""
    ref = tuple(recipe.hv_ref or problem.default_hv_ref)
    names = problem.objective_names
    summary: dict[str, Any] = {"hv_ref": list(ref), "objectives": names}
    front = sorted(final_front(store, problem), key=lambda i: [i.metrics["val"][n] for n in names])
    base = read_baselines(out)
    table, points = hv_table(problem, store, recipe, front, base, ref, summary)
    md = {
        "FaPareto vs baselines (test split)": "\n".join(
            [
                f"Hypervolume of minimised ({', '.join(names)}) with reference point **{ref}** (a constant predictor has "
                "error ≈ 0.43 and earns nothing). The same selection rule for every method: the evolution's candidates "
                "are the models it evaluated (the front: its final population; the archive: all of them), the baselines' "
                "candidates are every epoch of every head; each set is reduced to its members non-dominated on the "
                "validate split, and only those are scored on test.",
                "",
            ]
            + table
        )
    }
    weights = [store.get_weights(i.weights_hash) for i in front]
    P_test = problem.predictions(weights, "test") if weights else np.zeros((0, 0), dtype=int)
    flags = is_near_constant(P_test) if len(P_test) else np.zeros(0, bool)
    md["Front on the test split"] = front_section(problem, recipe, front, weights, flags, base, summary)
    md["Hypervolume per generation"] = generations_section(problem, store, ref, summary)
    md["Chosen models: per-group confusion (test)"] = chosen_models_section(
        problem, store, front, flags, P_test, base, ref
    )
    info = getattr(problem, "setup_info", {})
    if info:
        md["Setup (inside the `setup` phase)"] = setup_section(problem, info)
        summary["setup"] = info
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float), within=out)
    return {"markdown": md, "points": points, "plot_split": "test"}


def hv_table(
    problem, store, recipe, front, base: dict[str, Any] | None, ref, summary: dict[str, Any]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """The HV table of the evolved front and archive against each baseline method (and the
    sentences under it), and each method's test points for the plot."""
    arch = archive(store, problem)
    front_rows = [i.metrics for i in front]
    hv_front = hypervolume(objective_matrix(problem, front_rows, "test"), ref)
    hv_arch = hypervolume(objective_matrix(problem, [i.metrics for i in arch], "test"), ref)
    hv_front_val = hypervolume(objective_matrix(problem, front_rows, "val"), ref)
    summary.update(
        hv_front_test=hv_front,
        hv_front_val=hv_front_val,
        hv_archive_test=hv_arch,
        n_front=len(front),
        n_archive=len(arch),
    )
    table = [
        "| set | candidates | val-non-dominated | HV test | HV val |",
        "|---|---|---|---|---|",
        f"| evolved front (final population) | {len(front)} | {len(front)} | {_fmt_hv(hv_front)} | "
        f"{_fmt_hv(hv_front_val)} |",
        f"| evolved archive (all non-dominated ever, val) | {len(arch)} | {len(arch)} | {_fmt_hv(hv_arch)} | "
        f"{_fmt_hv(hypervolume(objective_matrix(problem, [i.metrics for i in arch], 'val'), ref))} |",
    ]
    if base is None:
        return table, {}
    rows, points = baseline_rows(problem, base, ref, summary)
    union = [m["metrics"] for m in base["models"] if m["method"] in ("vanilla", "scalarisation")]
    hv_u, _ = hv_of(problem, union, ref, "test")
    lora_lines = lora_report_lines(problem, base, ref, hv_front, summary)
    ratio = f"{hv_front / hv_u:.3f}" if hv_u > 0 else "n/a (union HV is 0)"
    table += (
        rows
        + lora_lines[:1]
        + [
            "",
            f"Evolved front vs union of (a)+(b), test HV ratio: **{ratio}** ({_fmt_hv(hv_front)} vs {_fmt_hv(hv_u)}).",
        ]
    )
    paired = front_vs_union_interval(problem, store, front, base, ref, recipe)
    if paired is not None:
        summary.update(
            hv_diff_test=paired["diff"],
            hv_diff_lo=paired["lo"],
            hv_diff_hi=paired["hi"],
            corr_test_lo=paired.get("corr_lo"),
            corr_test_hi=paired.get("corr_hi"),
        )
        table += [
            "",
            f"Front vs baselines, paired bootstrap: HV(front) − HV(union of (a)+(b)) on test = "
            f"**{paired['diff']:+.6f}**, {paired['level']:.0%} interval [{paired['lo']:+.6f}, "
            f"{paired['hi']:+.6f}] ({paired['n_boot']} test resamples stratified by group × class, the "
            f"same resamples for both sets; {_verdict(paired)}).",
        ]
    b = base["budget"]
    table += [
        "",
        f"Training budget: the evolution's local learning used {int(b['examples'])} training examples "
        f"({b['examples'] / b['n_train']:.1f} epochs over {int(b['refined_models'])} refined models); each "
        f"baseline method (a), (b) got {int(b['baseline_examples_per_method'])} or more "
        f"({b['baseline_epochs_per_head']} epochs per head).",
    ] + lora_lines[1:]
    return table, points


def baseline_rows(
    problem, base: dict[str, Any], ref, summary: dict[str, Any]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """One HV row per baseline method, then the union of (a) and (b) (all epochs, and the last
    epoch only); and each method's test points for the plot."""
    by_method: dict[str, list[dict]] = {}
    for m in base["models"]:
        by_method.setdefault(m["method"], []).append(m)
    labels = {
        "vanilla": "(a) vanilla CE heads",
        "scalarisation": "(b) CE + λ·TPR-gap surrogate",
        "threshold": "(c) ThresholdOptimizer on (a)",
        **LORA_LABELS,
    }
    rows, points = [], {}
    for method, models in by_method.items():
        metrics = [m["metrics"] for m in models]
        hv_t, n_sel = hv_of(problem, metrics, ref, "test")
        hv_v, _ = hv_of(problem, metrics, ref, "val")
        summary[f"hv_{method}_test"] = hv_t
        n_cand = base["budget"].get("candidates", {}).get(method, len(models))
        rows.append(f"| {labels.get(method, method)} | {n_cand} | {n_sel} | {_fmt_hv(hv_t)} | {_fmt_hv(hv_v)} |")
        F = objective_matrix(problem, metrics, "test") * np.array([o.sign for o in problem.objectives])
        points[labels.get(method, method)] = F[:, :2]
    union = [m["metrics"] for m in base["models"] if m["method"] in ("vanilla", "scalarisation")]
    hv_u, n_u = hv_of(problem, union, ref, "test")
    hv_uv, _ = hv_of(problem, union, ref, "val")
    hv_front = summary["hv_front_test"]
    summary.update(hv_union_ab_test=hv_u, ratio_front_vs_union=(hv_front / hv_u) if hv_u > 0 else None)
    n_cand = sum(base["budget"].get("candidates", {}).get(m, 0) for m in ("vanilla", "scalarisation"))
    rows.append(f"| union of (a) and (b) | {n_cand} | {n_u} | {_fmt_hv(hv_u)} | {_fmt_hv(hv_uv)} |")
    last = [
        c
        for c in base.get("candidates", [])
        if c["method"] in ("vanilla", "scalarisation") and c.get("epoch") == base["budget"]["baseline_epochs_per_head"]
    ]
    if last:
        hv_l, n_l = hv_of(problem, [c["metrics"] for c in last], ref, "test")
        hv_lv, _ = hv_of(problem, [c["metrics"] for c in last], ref, "val")
        summary["hv_union_ab_last_epoch_test"] = hv_l
        rows.append(
            f"| union of (a) and (b), last epoch only | {len(last)} | {n_l} | {_fmt_hv(hv_l)} | {_fmt_hv(hv_lv)} |"
        )
    return rows, points


def _front_objectives(front, names: Sequence[str], split: str) -> np.ndarray:
    """The front's first two objectives on `split`, as measured (n, 2)."""
    return np.array([[i.metrics[split][n] for n in names[:2]] for i in front]) if front else np.zeros((0, 2))


def front_section(
    problem, recipe, front, weights, flags: np.ndarray, base: dict[str, Any] | None, summary: dict[str, Any]
) -> str:
    """The front's error–fairness correlation, its models' test metrics (reported-only ones too)
    and near-constant flags."""
    names = problem.objective_names
    r_test, r_val = _corr(_front_objectives(front, names, "test")), _corr(_front_objectives(front, names, "val"))
    summary.update(corr_test=r_test, corr_val=r_val)
    fmt = lambda r: "n/a (fewer than 3 distinct points)" if r is None else f"{r:+.3f}"
    summary["n_front_near_constant"] = int(flags.sum())
    extra = ["eod", "dpd", "dtpr_rms"]
    cols = names + [e for e in extra if e not in names]
    carries = bool(weights) and "fair_weight" in weights[0]
    corr_iv = ""
    if summary.get("corr_test_lo") is not None and r_test is not None and np.isfinite(summary["corr_test_lo"]):
        corr_iv = (
            f" [{summary['corr_test_lo']:+.3f}, {summary['corr_test_hi']:+.3f}] "
            f"({recipe.intervals.level:.0%} bootstrap interval, the same test resamples)"
        )
    lines = [
        f"Pearson correlation of {names[0]} and {names[1]} across the {len(front)} front models: "
        f"test {fmt(r_test)}{corr_iv}, val {fmt(r_val)} (paper: {PAPER_CORRELATION}).",
        "",
        "| id | "
        + " | ".join(f"{n} (test)" for n in cols)
        + " | near-constant |"
        + (" fairness weight w |" if carries else ""),
        "|---|" + "---|" * (len(cols) + 1 + carries),
    ]
    for ind, flag, w in zip(front, flags, weights):
        vals = [ind.metrics["test"].get(n, float("nan")) for n in cols]
        lines.append(
            f"| {ind.id} | "
            + " | ".join(f"{v:.4f}" for v in vals)
            + f" | {'**yes**' if flag else 'no'} |"
            + (f" {float(w['fair_weight'][0]):.3f} |" if carries else "")
        )
    if carries:
        lines += [
            "",
            "Local learning minimised cross-entropy + w·(soft TPR gap), each model with the weight w it "
            "carries in its genome (inherited through merges, mutated with the other weights).",
        ]
    if base is not None:
        nc = [m["id"] for m in base["models"] if m.get("near_constant_test")]
        lines += [
            "",
            f"Near-constant models (≥ 99% one class on test): front {int(flags.sum())} of {len(front)}; "
            f"baselines {len(nc)}" + (f" ({', '.join(nc[:10])})" if nc else "") + ".",
        ]
    return "\n".join(lines)


def generations_section(problem, store, ref, summary: dict[str, Any]) -> str:
    """HV of each generation's population front on val (as the run measured it) and on test."""
    lines = ["| generation | HV val (population front) | HV test (same models) | front size |", "|---|---|---|---|"]
    hv_gen = []
    for gen in store.generations():
        pop = store.individuals(gen["population"])
        keep = val_selected(problem, [i.metrics for i in pop])
        hv_t = hypervolume(objective_matrix(problem, [pop[k].metrics for k in keep], "test"), ref)
        hv_gen.append(hv_t)
        lines.append(f"| {gen['generation']} | {gen['hv_val']:.6f} | {hv_t:.6f} | {len(keep)} |")
    summary["hv_test_per_generation"] = hv_gen
    return "\n".join(lines)


def chosen_models(problem, front, flags: np.ndarray, ref) -> list[tuple[str, int]]:
    """(title, index into the front) of the lowest-error, the fairest and the knee model, among the
    models that matter for the HV: not near-constant and inside the reference box on val."""
    if not front:
        return []
    names = problem.objective_names
    inside = [
        k
        for k in range(len(front))
        if not flags[k]
        and np.all(problem.minimised({n: np.array([front[k].metrics["val"][n]]) for n in names})[0] < np.asarray(ref))
    ]
    ok = inside or [k for k in range(len(front)) if not flags[k]] or list(range(len(front)))
    Fv = _front_objectives(front, names, "val")[ok]
    knee = ok[int(np.argmin((Fv / np.asarray(ref[:2])).sum(1)))]
    where = "inside the reference box" if inside else "not near-constant"
    return [
        ("lowest val error on the front", ok[int(np.argmin(Fv[:, 0]))]),
        (f"lowest val {names[1]} on the front ({where})", ok[int(np.argmin(Fv[:, 1]))]),
        ("knee of the front (min of error/ref + ΔTPR/ref on val)", knee),
    ]


def chosen_models_section(
    problem, store, front, flags: np.ndarray, P_test: np.ndarray, base: dict[str, Any] | None, ref
) -> str:
    """Per-group confusion on test of the chosen front models and of the best vanilla head."""
    names = problem.objective_names
    parts = []
    for title, k in chosen_models(problem, front, flags, ref):
        ind = front[k]
        vals = ", ".join(f"{n} {ind.metrics['test'][n]:.4f}" for n in names)
        parts += [f"**{title}: {ind.id}** (test: {vals})", "", confusion_markdown(problem, P_test[k], "test"), ""]
    vanilla = [m for m in base["models"] if m["method"] == "vanilla"] if base is not None else []
    if vanilla:
        best = min(vanilla, key=lambda m: m["metrics"]["val"][names[0]])
        pred = problem.predictions_of_head(store.get_weights(best["weights_hash"]), "test")
        vals = ", ".join(f"{n} {best['metrics']['test'][n]:.4f}" for n in names)
        parts += [
            f"**baseline (a), lowest val error: {best['id']}** (test: {vals})",
            "",
            confusion_markdown(problem, pred, "test"),
            "",
        ]
    return "\n".join(parts) if parts else "No models."


def setup_section(problem, info: dict[str, Any]) -> str:
    """What the `setup` phase did: the feature cache, hashing, embedding, split sizes."""
    hit = info.get("hit")
    lines = [
        f"- Features: {'read from the cache' if hit else 'computed and cached'} "
        f"({info.get('cache_dir')}/{str(info.get('key', ''))[:12]}…).",
        f"- Hashing model files and texts for the cache key: {info.get('hash_seconds', 0):.1f} s.",
        (
            f"- Embedding {info.get('n_embedded', 0)} bios: {info.get('embed_seconds', 0):.1f} s "
            f"({info.get('workers')} worker process(es), encoder loading included)."
            if not hit
            else "- Embedding: none (cache hit)."
        ),
    ]
    lines.append("- " + ", ".join(f"{s}: {len(d)} bios" for s, d in problem.splits.items()) + ".")
    return "\n".join(lines)
