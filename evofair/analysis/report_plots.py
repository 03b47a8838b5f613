"""The report's matplotlib plots: plots/front.png (the front over every evaluated model) and
plots/hv.png (hypervolume per generation).

matplotlib is imported inside the functions, so reading a run never pays for it. The figures are
plain `matplotlib.figure.Figure`s drawn by Agg (no pyplot: no figure manager, no global state)
with fixed margins instead of `tight_layout` (which lays the figure out by drawing it once more);
each is rendered into memory, PNG-compressed at a low level (a report is written after every
run, and zlib's default level costs more than the bytes it saves), and written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evofair.analysis.report_constraints import feasible_mask
from evofair.core import constraints as cons
from evofair.core.individual import Individual
from evofair.store.safe_io import atomic_write_bytes


def _figure(width: float, height: float, bottom: float):
    """An Agg-drawn figure with one axes and fixed margins (room for the tick labels, the axis
    labels and the title at this size)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.14, right=0.97, bottom=bottom, top=0.91)
    return fig, fig.subplots()


def _title(ax, text: str) -> None:
    """The axes title at its usual place; an explicit `y` spares matplotlib measuring every tick
    label to decide whether the title must move up (it need not: no tick labels on top)."""
    ax.set_title(text, y=1.0)


def _values(inds: Sequence[Individual], names: Sequence[str], split: str) -> np.ndarray:
    """(len(inds), len(names)) metric values on `split`; NaN where a model lacks one."""
    per = [i.metrics.get(split) or {} for i in inds]
    return np.array([[m.get(n, np.nan) for m in per] for n in names], dtype=float).T.reshape(len(inds), len(names))


def _save_figure(fig, path: Path) -> None:
    """savefig into memory, then an atomic write: savefig(path) would follow a link planted there."""
    buf = io.BytesIO()
    fmt = path.suffix.lstrip(".") or "png"
    fig.savefig(buf, dpi=110, format=fmt, **({"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}))
    atomic_write_bytes(path, buf.getvalue(), within=path.parent.parent)


def plot_front(
    path: Path,
    problem,
    inds_all: Sequence[Individual],
    front: Sequence[Individual],
    extra_points: dict[str, np.ndarray] | None = None,
    split: str = "val",
    constraints: Sequence[cons.Constraint] = (),
    intervals: dict[str, Any] | None = None,
) -> None:
    """The first two objectives on `split`: every evaluated model faded, the front joined by a
    line, infeasible models marked, the problem's extra points (baselines) and, on the intervals'
    split, the front's error bars."""
    names = problem.objective_names[:2]
    fig, ax = _figure(6, 4.5, bottom=0.12)
    A = _values(inds_all, names, split) if inds_all else None
    ok_all = feasible_mask(constraints, inds_all, split)
    if A is not None and len(A):
        # Lines of markers, not scatter collections: Agg stamps one marker for all points (a
        # collection of 20,000 paths was most of the front plot's time).
        ax.plot(
            A[ok_all, 0],
            A[ok_all, 1],
            "o",
            ms=6**0.5,
            c="0.8",
            label="all evaluated" + (" (feasible)" if constraints else ""),
        )
        if constraints and (~ok_all).any():
            ax.plot(
                A[~ok_all, 0],
                A[~ok_all, 1],
                "x",
                ms=10**0.5,
                mew=0.8,
                c="#e6a0a0",
                label="infeasible (violates a constraint)",
            )
    P = _values(front, names, split)
    ok_front = feasible_mask(constraints, front, split)
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
    _title(ax, f"{problem.name}: Pareto front")
    _save_figure(fig, path)


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


def plot_hv(path: Path, gens: list[dict[str, Any]], ref) -> None:
    """Validation hypervolume of each generation's front, against the run's reference point."""
    fig, ax = _figure(6, 3.5, bottom=0.15)
    g = [x["generation"] for x in gens if x["hv_val"] is not None]
    hv = [x["hv_val"] for x in gens if x["hv_val"] is not None]
    ax.plot(g, hv, "-", c="C0")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (val)")
    _title(ax, f"HV per generation, reference point {tuple(ref) if ref is not None else '-'}")
    _save_figure(fig, path)
