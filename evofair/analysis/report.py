"""Everything written after a run, read back from the store: intervals.json, the CSVs, the plots
and report.md (`write_report`).

Which models make the front and the archive is decided in `evofair.analysis.run_reader` (one
definition for the report, `evofair.load` and the explorer); `final_front`, `sorted_front` and
`archive` are importable from here too. The CSVs are `evofair.analysis.tables`, the plots
`evofair.analysis.report_plots`, the constraint counts `evofair.analysis.report_constraints`.

Problems may add sections (baselines, per-group tables) through `problem.report_sections(store,
out)`, which returns markdown and may write extra files next to the standard ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis import near_constant
from evofair.analysis.report_constraints import constraints_section, feasible_mask, violation
from evofair.analysis.report_plots import plot_front, plot_hv
from evofair.analysis.run_reader import archive, final_front, minimised, sorted_front  # noqa: F401 (API: fronts)
from evofair.analysis.tables import interval_columns, objective_columns, write_tables
from evofair.core import constraints as cons
from evofair.core.indicators import hypervolume
from evofair.core.individual import Individual
from evofair.core.problem import ReportSections
from evofair.store.run_store import RunStore
from evofair.store.safe_io import atomic_write_text


def run_intervals(store: RunStore, problem, recipe, out: Path, front: Sequence[Individual]) -> dict[str, Any] | None:
    """Bootstrap intervals of the front and the baselines on test, written to intervals.json (None:
    the problem gives no per-example outputs, or the recipe turned intervals off)."""
    from evofair.analysis import uncertainty

    cfg = getattr(recipe, "intervals", None)
    if cfg is None or not cfg.enabled or not uncertainty.supports_intervals(problem):
        return None
    doc = uncertainty.run_intervals(
        problem,
        store,
        front,
        out,
        level=cfg.level,
        n_boot=cfg.n_boot,
        seed=uncertainty.bootstrap_seed(recipe.seed),
        names=problem.metric_names,
    )
    atomic_write_text(out / uncertainty.INTERVALS_FILE, json.dumps(doc, indent=1), within=out)
    return doc


def intervals_note(problem, recipe, intervals: dict[str, Any] | None) -> str:
    if intervals is not None:
        return (
            f"Test intervals: {intervals['level']:.0%} percentile bootstrap, {intervals['n_boot']} resamples "
            "stratified by group × class, the same resamples for every model (paired); every metric of every "
            "front model and baseline head is in `intervals.json`, the objectives' also in `front.csv` "
            "(`<metric>_test_lo/_hi`) and as error bars in `plots/front.png`."
        )
    cfg = getattr(recipe, "intervals", None)
    if cfg is not None and not cfg.enabled:
        return "No confidence intervals: turned off in the recipe (`intervals.enabled: false`)."
    return (
        f"No confidence intervals: problem `{problem.name}` gives no per-example outputs "
        "(`evofair.core.problem.PerExampleOutputs`), so its numbers are point estimates."
    )


def write_report(store: RunStore, problem, recipe, out: Path, timings: dict[str, float] | None = None) -> None:
    """Write a finished run's files into `out`: intervals.json (problems with per-example outputs),
    front.csv, archive.csv, history.csv, plots/front.png, plots/hv.png and report.md."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    everyone = store.individuals()  # read once: tables and plots both need every individual
    constraints = recipe.parsed_constraints
    intervals = run_intervals(store, problem, recipe, out, sorted_front(store, problem, constraints))
    tables = write_tables(store, problem, out, everyone, constraints, intervals)
    front, gens = tables["front"], tables["generations"]
    flags = near_constant.front_flags(store, problem, front)
    near_constant.write_flags(out, flags)
    ref = recipe.hv_ref or problem.default_hv_ref
    sections = problem.report_sections(store, out, recipe) if isinstance(problem, ReportSections) else {}
    plot_front(
        out / "plots" / "front.png",
        problem,
        everyone,
        front,
        extra_points=sections.get("points"),
        split=sections.get("plot_split", "val"),
        constraints=constraints,
        intervals=intervals,
    )
    plot_hv(out / "plots" / "hv.png", gens, ref)
    lines = _summary_lines(problem, recipe, front, len(tables["archive"]), gens, ref, flags)
    compute = store.get_meta("compute")
    if compute:
        lines.append(f"- Computed on {compute.get('device')} ({compute.get('device_name')}), {compute.get('dtype')}.")
    if constraints:
        lines += constraints_section(constraints, everyone, front)
    if timings:
        lines += ["", "## Phases", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += ["", "## Final front", "", intervals_note(problem, recipe, intervals), ""]
    lines += _front_table(problem, front, constraints, intervals, flags)
    events = store.events()
    if events:
        lines += ["", "## Events", ""] + [
            f"- {e['kind']} (gen {e['generation']}, {e['individual']}): {e['message']}" for e in events[:50]
        ]
    for title, body in sections.get("markdown", {}).items():
        lines += ["", f"## {title}", "", body]
    lines += ["", "Plots: `plots/front.png`, `plots/hv.png`. Tables: `front.csv`, `archive.csv`, `history.csv`."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n", within=out)


def _summary_lines(
    problem,
    recipe,
    front: Sequence[Individual],
    n_archive: int,
    gens: list[dict[str, Any]],
    ref,
    flags: dict[str, bool] | None = None,
) -> list[str]:
    """report.md's title and summary: the recipe in one sentence, evaluations, front and archive
    sizes (with how many front models are near-constant), and the front's hypervolume on
    validation and on test."""
    constraints = recipe.parsed_constraints
    lines = [
        f"# evofair run: {recipe.name}",
        "",
        f"Problem `{problem.name}`, algorithm {recipe.algorithm.name} ({recipe.algorithm.backend}), "
        f"population {recipe.algorithm.pop_size}, {recipe.algorithm.generations} generations, seed {recipe.seed}, "
        f"executor {recipe.executor.name}.",
        "",
    ]
    if not gens:
        return lines
    last = gens[-1]
    lines += [
        f"- Evaluations: {last['evaluations']}; engine time {last['seconds']:.1f} s.",
        f"- Final front: {len(front)} models{near_constant.summary_phrase(flags)}; "
        f"archive of all non-dominated models: {n_archive}.",
    ]
    if flags and all(flags.values()):
        lines.append(
            "- **Every front model is near-constant**: its fairness gaps are near 0 only because it predicts "
            "one class; this front is no accuracy–fairness trade-off (train the models longer, or check the target)."
        )
    if ref is not None:
        lines.append(
            f"- Hypervolume (validation, minimised objectives, reference point {tuple(ref)}): {last['hv_val']:.6f}."
        )
        scored = [i for i, ok in zip(front, feasible_mask(constraints, front, "val")) if ok]
        F_test = minimised(problem.objectives, scored, "test")
        lines.append(
            f"- Hypervolume of the same front on the test split: {hypervolume(F_test, ref):.6f}"
            + (" (feasible members only, as on validation)." if constraints else ".")
        )
    return lines


def _front_table(
    problem,
    front: Sequence[Individual],
    constraints: Sequence[cons.Constraint],
    intervals: dict[str, Any] | None,
    flags: dict[str, bool] | None = None,
) -> list[str]:
    """report.md's table of the final front: objectives on every split, feasibility and CV with
    constraints, test intervals with intervals, and a near-constant flag when the problem gives
    per-example predictions."""
    cv_val, cv_test = violation(constraints, front, "val"), violation(constraints, front, "test")
    extra = ["feasible (val)", "CV (val)", "CV (test)"] if constraints else []
    iv_names = interval_columns(problem, constraints) if intervals is not None else []
    extra += [f"test {n} [lo, hi]" for n in iv_names]
    if flags is not None:
        extra.append(f"near-constant ({near_constant.SPLIT})")
    lines = [
        "| id | generation | " + " | ".join([f"{n} ({s})" for n, s in objective_columns(problem)] + extra) + " |",
        "|---|---|" + "---|" * (len(objective_columns(problem)) + len(extra)),
    ]
    for k, ind in enumerate(front):
        cells = [f"{ind.metrics.get(s, {}).get(n, float('nan')):.4f}" for n, s in objective_columns(problem)]
        if constraints:
            cells += ["yes" if cv_val[k] <= 0 else "no", f"{cv_val[k]:.4g}", f"{cv_test[k]:.4g}"]
        mine = intervals["models"].get(ind.id, {}) if intervals is not None else {}
        cells += [f"[{mine[n][0]:.4f}, {mine[n][1]:.4f}]" if n in mine else "–" for n in iv_names]
        if flags is not None:
            cells.append("**yes**" if flags.get(ind.id) else "no")
        lines.append(f"| {ind.id} | {ind.generation} | " + " | ".join(cells) + " |")
    return lines


def confusion_table(pred, y, groups, class_names: Sequence[str]) -> str:
    """Markdown: per group and true class, its size, the predicted counts and the TPR (FaPareto's
    report and exported model cards)."""
    from evofair.analysis.metrics import confusion_rows

    rows = confusion_rows(pred, y, groups, class_names, classes=np.arange(len(class_names)))
    names = [f"pred_{c}" for c in class_names]
    lines = ["| group | true | n | " + " | ".join(names) + " | TPR |", "|---|---|---|" + "---|" * len(names) + "---|"]
    lines += [
        f"| {r['group']} | {r['true']} | {r['n']} | " + " | ".join(str(r[k]) for k in names) + f" | {r['tpr']:.4f} |"
        for r in rows
    ]
    return "\n".join(lines)
