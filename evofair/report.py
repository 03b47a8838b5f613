"""Everything written after a run, read back from the store: CSVs, plots, report.md.

Problems may add sections (baselines, per-group tables) through `problem.report_sections(store,
out)`, which returns markdown and may write extra files next to the standard ones.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evofair.indicators import hypervolume, non_dominated
from evofair.individual import Individual
from evofair.problem import SPLITS, ReportSections
from evofair.safe_io import atomic_write_bytes, atomic_write_text
from evofair.store import RunStore


def _objective_matrix(problem, inds: Sequence[Individual], split: str) -> np.ndarray:
    if not inds:
        return np.zeros((0, len(problem.objectives)))
    return problem.minimised({n: np.array([i.metrics.get(split, {}).get(n, np.nan) for i in inds])
                              for n in problem.objective_names})


def final_front(store: RunStore, problem) -> list[Individual]:
    """Non-dominated members (validation objectives) of the last generation's population."""
    last = store.last_generation()
    if last is None:
        return []
    pop = store.individuals(last["population"])
    return [pop[i] for i in non_dominated(_objective_matrix(problem, pop, "val"))]


def archive(store: RunStore, problem, inds: Sequence[Individual] | None = None) -> list[Individual]:
    """Every individual ever evaluated that no other evaluated individual dominates (validation)."""
    inds = store.individuals() if inds is None else inds
    return [inds[i] for i in non_dominated(_objective_matrix(problem, inds, "val"))]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _save_figure(fig, path: Path) -> None:
    """savefig into memory, then an atomic write: savefig(path) would follow a link planted there."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buf.getvalue(), within=path.parent.parent)


def objective_columns(problem) -> list[tuple[str, str]]:
    return [(name, split) for name in problem.objective_names for split in SPLITS]


def individual_rows(problem, inds: Sequence[Individual]) -> tuple[list[str], list[list[Any]]]:
    cols = objective_columns(problem)
    header = ["id", "generation"] + [f"{n}_{s}" for n, s in cols]
    rows = [[i.id, i.generation] + [_fmt(i.metrics.get(s, {}).get(n)) for n, s in cols] for i in inds]
    return header, rows


def _fmt(v: float | None) -> Any:
    return "" if v is None or not np.isfinite(v) else repr(float(v))


def write_tables(store: RunStore, problem, out: Path, everyone: Sequence[Individual]) -> dict[str, Any]:
    front = sorted(final_front(store, problem), key=lambda i: [i.metrics["val"][n] for n in problem.objective_names])
    header, rows = individual_rows(problem, front)
    _write_csv(out / "front.csv", header, rows)
    arch = archive(store, problem, everyone)
    header, rows = individual_rows(problem, arch)
    _write_csv(out / "archive.csv", header, rows)
    gens = store.generations()
    _write_csv(out / "history.csv", ["generation", "hv_val", "n_front", "evaluations", "seconds"],
               [[g["generation"], _fmt(g["hv_val"]), g["n_front"], g["evaluations"], _fmt(g["seconds"])]
                for g in gens])
    return {"front": front, "archive": arch, "generations": gens}


def plot_front(path: Path, problem, inds_all, front, extra_points: dict[str, np.ndarray] | None = None,
               split: str = "val") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = problem.objective_names[:2]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    A = np.array([[i.metrics.get(split, {}).get(n, np.nan) for n in names] for i in inds_all]) if inds_all else None
    if A is not None and len(A):
        ax.scatter(A[:, 0], A[:, 1], s=6, c="0.8", label="all evaluated")
    P = np.array([[i.metrics.get(split, {}).get(n, np.nan) for n in names] for i in front])
    if len(P):
        order = np.argsort(P[:, 0])
        ax.plot(P[order, 0], P[order, 1], "o-", c="C3", ms=4, label="front")
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
    tables = write_tables(store, problem, out, everyone)
    front, gens = tables["front"], tables["generations"]
    ref = recipe.hv_ref or problem.default_hv_ref
    sections = problem.report_sections(store, out, recipe) if isinstance(problem, ReportSections) else {}
    plot_front(out / "plots" / "front.png", problem, everyone, front,
               extra_points=sections.get("points"), split=sections.get("plot_split", "val"))
    plot_hv(out / "plots" / "hv.png", gens, ref)
    lines = [f"# evofair run: {recipe.name}", "",
             f"Problem `{problem.name}`, algorithm {recipe.algorithm.name} ({recipe.algorithm.backend}), "
             f"population {recipe.algorithm.pop_size}, {recipe.algorithm.generations} generations, seed {recipe.seed}, "
             f"executor {recipe.executor.name}.", ""]
    if gens:
        last = gens[-1]
        lines += [f"- Evaluations: {last['evaluations']}; engine time {last['seconds']:.1f} s.",
                  f"- Final front: {len(front)} models; archive of all non-dominated models: {len(tables['archive'])}."]
        if ref is not None:
            lines.append(f"- Hypervolume (validation, minimised objectives, reference point {tuple(ref)}): "
                         f"{last['hv_val']:.6f}.")
            F_test = _objective_matrix(problem, front, "test")
            lines.append(f"- Hypervolume of the same front on the test split: {hypervolume(F_test, ref):.6f}.")
    if timings:
        lines += ["", "## Phases", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += ["", "## Final front", "", "| id | generation | " + " | ".join(
        f"{n} ({s})" for n, s in objective_columns(problem)) + " |",
        "|---|---|" + "---|" * len(objective_columns(problem))]
    for ind in front:
        lines.append(f"| {ind.id} | {ind.generation} | " + " | ".join(
            f"{ind.metrics.get(s, {}).get(n, float('nan')):.4f}" for n, s in objective_columns(problem)) + " |")
    events = store.events()
    if events:
        lines += ["", "## Events", ""] + [f"- {e['kind']} (gen {e['generation']}, {e['individual']}): {e['message']}"
                                         for e in events[:50]]
    for title, body in sections.get("markdown", {}).items():
        lines += ["", f"## {title}", "", body]
    lines += ["", "Plots: `plots/front.png`, `plots/hv.png`. Tables: `front.csv`, `archive.csv`, `history.csv`."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n", within=out)
