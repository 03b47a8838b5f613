"""Everything written after a run, read back from the store: CSVs, plots, report.md.

Which models make the front and the archive is decided in `evofair.analysis.run_reader` (one
definition for the report, `evofair.load` and the explorer); `final_front`, `sorted_front` and
`archive` are importable from here too.

Problems may add sections (baselines, per-group tables) through `problem.report_sections(store,
out)`, which returns markdown and may write extra files next to the standard ones.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.run_reader import archive, final_front, minimised, sorted_front  # noqa: F401 (API: fronts)
from evofair.core import constraints as cons
from evofair.core.indicators import hypervolume
from evofair.core.individual import Individual
from evofair.core.problem import SPLITS, ReportSections
from evofair.store.run_store import RunStore
from evofair.store.safe_io import atomic_write_bytes, atomic_write_text


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    """A table as front.csv and archive.csv hold it (the csv module's dialect, CRLF)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    atomic_write_text(path, csv_text(header, rows))


def _save_figure(fig, path: Path) -> None:
    """savefig into memory, then an atomic write: savefig(path) would follow a link planted there."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buf.getvalue(), within=path.parent.parent)


def objective_columns(problem) -> list[tuple[str, str]]:
    return [(name, split) for name in problem.objective_names for split in SPLITS]


def individual_rows(
    problem,
    inds: Sequence[Individual],
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """CSV rows; with constraints also `feasible` (on validation, as selected), `cv_val`, `cv_test`;
    with `intervals` (intervals.json's document) `<metric>_test_lo/_hi` of the objectives and
    constrained metrics."""
    cols = objective_columns(problem)
    header = ["id", "generation"] + [f"{n}_{s}" for n, s in cols]
    rows = [[i.id, i.generation] + [_fmt(i.metrics.get(s, {}).get(n)) for n, s in cols] for i in inds]
    if constraints:
        cv = {s: cons.of_individuals(constraints, inds, s) for s in SPLITS}
        header += ["feasible", "cv_val", "cv_test"]
        for k, row in enumerate(rows):
            row += ["true" if cv["val"][k] <= 0 else "false", repr(float(cv["val"][k])), repr(float(cv["test"][k]))]
    if intervals is not None:
        names = interval_columns(problem, constraints)
        header += [f"{n}_test_{end}" for n in names for end in ("lo", "hi")]
        for ind, row in zip(inds, rows):
            mine = intervals["models"].get(ind.id, {})
            row += [_fmt(mine[n][k]) if n in mine else "" for n in names for k in (0, 1)]
    return header, rows


def interval_columns(problem, constraints: Sequence[cons.Constraint] = ()) -> list[str]:
    """The metrics whose test intervals front.csv and report.md show: objectives, then constrained ones."""
    return list(dict.fromkeys(problem.objective_names + [c.metric for c in constraints]))


def _fmt(v: float | None) -> Any:
    return "" if v is None or not np.isfinite(v) else repr(float(v))


def write_tables(
    store: RunStore,
    problem,
    out: Path,
    everyone: Sequence[Individual],
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    front = sorted_front(store, problem, constraints)
    header, rows = individual_rows(problem, front, constraints, intervals)
    _write_csv(out / "front.csv", header, rows)
    arch = archive(store, problem, everyone, constraints)
    header, rows = individual_rows(problem, arch, constraints)
    _write_csv(out / "archive.csv", header, rows)
    gens = store.generations()
    _write_csv(
        out / "history.csv",
        ["generation", "hv_val", "n_front", "evaluations", "seconds"],
        [[g["generation"], _fmt(g["hv_val"]), g["n_front"], g["evaluations"], _fmt(g["seconds"])] for g in gens],
    )
    return {"front": front, "archive": arch, "generations": gens}


def plot_front(
    path: Path,
    problem,
    inds_all,
    front,
    extra_points: dict[str, np.ndarray] | None = None,
    split: str = "val",
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = problem.objective_names[:2]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    A = np.array([[i.metrics.get(split, {}).get(n, np.nan) for n in names] for i in inds_all]) if inds_all else None
    ok_all = _feasible_mask(constraints, inds_all, split)
    if A is not None and len(A):
        ax.scatter(
            A[ok_all, 0], A[ok_all, 1], s=6, c="0.8", label="all evaluated" + (" (feasible)" if constraints else "")
        )
        if constraints and (~ok_all).any():
            ax.scatter(
                A[~ok_all, 0],
                A[~ok_all, 1],
                s=10,
                c="#e6a0a0",
                marker="x",
                linewidths=0.8,
                label="infeasible (violates a constraint)",
            )
    P = np.array([[i.metrics.get(split, {}).get(n, np.nan) for n in names] for i in front])
    ok_front = _feasible_mask(constraints, front, split)
    if len(P) and ok_front.any():
        F = P[ok_front]
        order = np.argsort(F[:, 0])
        ax.plot(F[order, 0], F[order, 1], "o-", c="C3", ms=4, label="front" + (" (feasible)" if constraints else ""))
    if intervals is not None and split == intervals.get("split") and len(P):
        _error_bars(ax, P, [intervals["models"].get(i.id, {}) for i in front], names, intervals["level"])
    if len(P) and (~ok_front).any():
        ax.scatter(
            P[~ok_front, 0],
            P[~ok_front, 1],
            s=40,
            facecolors="none",
            edgecolors="C3",
            marker="s",
            label="front member infeasible" + (" on this split" if split != "val" else ""),
        )
    for k, (label, pts) in enumerate((extra_points or {}).items()):
        pts = np.asarray(pts)
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], marker="xs^vD"[k % 5], s=30, label=label)
    ax.set_xlabel(f"{names[0]} ({split})")
    ax.set_ylabel(f"{names[1]} ({split})")
    ax.legend(fontsize=8)
    ax.set_title(f"{problem.name}: Pareto front")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _error_bars(ax, P: np.ndarray, ivs: Sequence[dict[str, list[float]]], names: Sequence[str], level: float) -> None:
    """matplotlib errorbar of each front point: its bootstrap interval on both plotted metrics."""

    def err(j: int) -> np.ndarray:
        lo = np.array([iv.get(names[j], [np.nan, np.nan])[0] for iv in ivs])
        hi = np.array([iv.get(names[j], [np.nan, np.nan])[1] for iv in ivs])
        return np.nan_to_num(np.stack([P[:, j] - lo, hi - P[:, j]]).clip(min=0))

    ax.errorbar(
        P[:, 0],
        P[:, 1],
        xerr=err(0),
        yerr=err(1),
        fmt="none",
        ecolor="C3",
        alpha=0.45,
        elinewidth=0.8,
        capsize=1.5,
        label=f"front, {level:.0%} bootstrap intervals",
    )


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


def constraints_section(constraints, everyone: Sequence[Individual], front: Sequence[Individual]) -> list[str]:
    """How many evaluated and front models satisfy each constraint, on validation and on test."""

    def count(inds, c, split):
        return sum(c.holds(_value(i, c.metric, split)) for i in inds)

    lines = [
        "",
        "## Constraints",
        "",
        "Selection was feasibility-first on the validation split (pymoo's constraint handling: feasible "
        "models by dominance, then infeasible ones by their total violation CV = Σ max(0, g)).",
        "",
        f"| constraint | evaluated, val (of {len(everyone)}) | evaluated, test | "
        f"front, val (of {len(front)}) | front, test |",
        "|---|---|---|---|---|",
    ]
    for c in constraints:
        lines.append(
            f"| `{c.text}` | {count(everyone, c, 'val')} | {count(everyone, c, 'test')} | "
            f"{count(front, c, 'val')} | {count(front, c, 'test')} |"
        )
    all_ok = {
        (name, s): int(_feasible_mask(constraints, inds, s).sum())
        for name, inds in (("everyone", everyone), ("front", front))
        for s in SPLITS
    }
    lines.append(
        f"| all of them | {all_ok['everyone', 'val']} | {all_ok['everyone', 'test']} | "
        f"{all_ok['front', 'val']} | {all_ok['front', 'test']} |"
    )
    if front and not all_ok["front", "val"]:
        least = cons.of_individuals(constraints, front, "val").min()
        lines += [
            "",
            f"**No evaluated model satisfies every constraint on validation.** The final front below "
            f"shows the least violating model(s) of the last population instead (CV = {least:.4g}), "
            "as pymoo reports its optimum when nothing is feasible.",
        ]
    return lines


def _value(ind: Individual, metric: str, split: str) -> float:
    v = ind.metrics.get(split, {}).get(metric)
    return float("nan") if v is None else float(v)


def _feasible_mask(constraints, inds, split: str) -> np.ndarray:
    cv = cons.of_individuals(constraints, inds or [], split)
    return np.ones(len(inds or []), dtype=bool) if cv is None else cv <= 0


def plot_hv(path: Path, gens: list[dict[str, Any]], ref) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    g = [x["generation"] for x in gens if x["hv_val"] is not None]
    hv = [x["hv_val"] for x in gens if x["hv_val"] is not None]
    ax.plot(g, hv, "-", c="C0")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (val)")
    ax.set_title(f"HV per generation, reference point {tuple(ref) if ref is not None else '-'}")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def write_report(store: RunStore, problem, recipe, out: Path, timings: dict[str, float] | None = None) -> None:
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    everyone = store.individuals()  # read once: tables and plots both need every individual
    constraints = recipe.parsed_constraints
    intervals = run_intervals(store, problem, recipe, out, sorted_front(store, problem, constraints))
    tables = write_tables(store, problem, out, everyone, constraints, intervals)
    front, gens = tables["front"], tables["generations"]
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
    lines = [
        f"# evofair run: {recipe.name}",
        "",
        f"Problem `{problem.name}`, algorithm {recipe.algorithm.name} ({recipe.algorithm.backend}), "
        f"population {recipe.algorithm.pop_size}, {recipe.algorithm.generations} generations, seed {recipe.seed}, "
        f"executor {recipe.executor.name}.",
        "",
    ]
    if gens:
        last = gens[-1]
        lines += [
            f"- Evaluations: {last['evaluations']}; engine time {last['seconds']:.1f} s.",
            f"- Final front: {len(front)} models; archive of all non-dominated models: {len(tables['archive'])}.",
        ]
        if ref is not None:
            lines.append(
                f"- Hypervolume (validation, minimised objectives, reference point {tuple(ref)}): {last['hv_val']:.6f}."
            )
            scored = [i for i, ok in zip(front, _feasible_mask(constraints, front, "val")) if ok]
            F_test = minimised(problem.objectives, scored, "test")
            lines.append(
                f"- Hypervolume of the same front on the test split: {hypervolume(F_test, ref):.6f}"
                + (" (feasible members only, as on validation)." if constraints else ".")
            )
    compute = store.get_meta("compute")
    if compute:
        lines.append(f"- Computed on {compute.get('device')} ({compute.get('device_name')}), {compute.get('dtype')}.")
    if constraints:
        lines += constraints_section(constraints, everyone, front)
    if timings:
        lines += ["", "## Phases", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    cv = {s: cons.of_individuals(constraints, front, s) for s in SPLITS}
    extra = ["feasible (val)", "CV (val)", "CV (test)"] if constraints else []
    iv_names = interval_columns(problem, constraints) if intervals is not None else []
    extra += [f"test {n} [lo, hi]" for n in iv_names]
    lines += [
        "",
        "## Final front",
        "",
        intervals_note(problem, recipe, intervals),
        "",
        "| id | generation | " + " | ".join([f"{n} ({s})" for n, s in objective_columns(problem)] + extra) + " |",
        "|---|---|" + "---|" * (len(objective_columns(problem)) + len(extra)),
    ]
    for k, ind in enumerate(front):
        cells = [f"{ind.metrics.get(s, {}).get(n, float('nan')):.4f}" for n, s in objective_columns(problem)]
        if constraints:
            cells += ["yes" if cv["val"][k] <= 0 else "no", f"{cv['val'][k]:.4g}", f"{cv['test'][k]:.4g}"]
        mine = intervals["models"].get(ind.id, {}) if intervals is not None else {}
        cells += [f"[{mine[n][0]:.4f}, {mine[n][1]:.4f}]" if n in mine else "–" for n in iv_names]
        lines.append(f"| {ind.id} | {ind.generation} | " + " | ".join(cells) + " |")
    events = store.events()
    if events:
        lines += ["", "## Events", ""] + [
            f"- {e['kind']} (gen {e['generation']}, {e['individual']}): {e['message']}" for e in events[:50]
        ]
    for title, body in sections.get("markdown", {}).items():
        lines += ["", f"## {title}", "", body]
    lines += ["", "Plots: `plots/front.png`, `plots/hv.png`. Tables: `front.csv`, `archive.csv`, `history.csv`."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n", within=out)


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
