"""What the page shows for the current inputs: a generation's front, the user's bounds and who
meets them (`current_view`), and the summary line above the front figure.

The view and the ranking callbacks both derive their output from `current_view`, so the
highlighted points and the ranked table always agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from dash import html
from dash.development.base_component import Component

from evofair.core.constraints import Constraint
from evofair.core.individual import Individual
from evofair.explorer.data import RunData
from evofair.explorer.data_attributes import data_attributes
from evofair.explorer.interval_overlap import indistinguishable
from evofair.explorer.snapshot import Snapshot


class View(NamedTuple):
    """What the page shows for the current inputs: a generation's front and the user's bounds."""

    snap: Snapshot
    generation: int | None
    constraints: list[Constraint]
    front: list[Individual]
    scope: list[Individual]  # the models the bounds apply to (the front, or all evaluated)
    meets: list[Individual] | None  # those meeting every bound, best first (None: no bound set)
    rank_by: str


def current_view(
    data: RunData,
    generation: int | None,
    bound_values: list[Any],
    bound_ids: list[dict[str, Any]],
    scope: str,
    split: str,
    rank_by: str | None,
) -> View:
    """The view of the newest snapshot for the page's inputs: `bound_values` are the bound boxes'
    values and `bound_ids` their pattern-matching ids (which metric each bounds)."""
    snap = data.snapshot
    if generation is not None and snap.last_generation is not None:
        generation = min(int(generation), snap.last_generation)
    constraints: list[Constraint] = []
    for item, value in zip(bound_ids, bound_values):
        if value is not None and value != "":
            metric = item["id"]["metric"]
            constraints.append(Constraint(metric, "<=" if snap.direction(metric) == "min" else ">=", float(value)))
    front = snap.front(generation)
    scope_inds = front if scope == "front" else snap.evaluated(generation)
    meets = snap.satisfying(scope_inds, constraints, split, rank_by) if constraints else None
    rank_name = rank_by or next(
        (n for n in snap.objective_names if n not in {c.metric for c in constraints}), snap.objective_names[0]
    )
    return View(snap, generation, constraints, front, scope_inds, meets, rank_name)


def front_summary(data: RunData, view: View, split: str, selected: str | None) -> html.Span:
    """The line above the front: its size, the recipe's and the user's constraints, the intervals."""
    snap, front, generation = view.snap, view.front, view.generation
    g = snap.last_generation if generation is None else generation
    if g is None:
        return html.Span(
            "No generation committed yet: waiting for the run…", id="summary-text", **data_attributes(front="0")
        )
    summary: list[str | Component] = [
        html.B(f"Generation {g}: front of {len(front)} models"),
        f" (selected on validation, drawn on {'test' if split == 'test' else 'validation'}) · "
        f"{len(snap.evaluated(generation))} models evaluated so far",
    ]
    if snap.constraints:  # the recipe's own constraints (selection was feasibility-first)
        n_ok = int(snap.feasible(front, split).sum())
        summary.append(
            html.Span(
                f" · recipe constraints {', '.join(map(str, snap.constraints))}: "
                f"{n_ok} of {len(front)} front models feasible on {split}"
                + (
                    " (nothing feasible: the least violating are shown)"
                    if front and not snap.feasible(front, "val").any()
                    else ""
                ),
                id="front-feasible",
                **data_attributes(feasible=str(n_ok)),
            )
        )
    if view.meets is not None:  # the user set a bound
        summary.append(f" · {', '.join(map(str, view.constraints))}: {len(view.meets)} of {len(view.scope)} meet all")
    summary += intervals_summary(data, snap, front, split, selected)
    return html.Span(summary, id="summary-text", **data_attributes(front=str(len(front))))


def intervals_summary(
    data: RunData, snap: Snapshot, front: list[Individual], split: str, selected: str | None
) -> list[html.Span]:
    """One line on the test intervals: shown as error bars, and how many front models the selected one
    cannot be told apart from."""
    ivs = data.intervals()
    if ivs is None:
        return [
            html.Span(
                " · no confidence intervals (the problem gives no per-example outputs)",
                id="intervals-note",
                className="muted",
            )
        ]
    if split != ivs["split"]:
        return [html.Span(f" · {ivs['level']:.0%} intervals: show the {ivs['split']} split", id="intervals-note")]
    text = f" · error bars: {ivs['level']:.0%} bootstrap intervals on {ivs['split']}"
    if selected and selected in ivs["models"]:
        close = indistinguishable(ivs, [i.id for i in front], selected, snap.objective_names)
        return [
            html.Span(
                text + f"; {len(close)} front model(s) indistinguishable from {selected} (shaded)",
                id="intervals-note",
                **data_attributes(indistinguishable=str(len(close))),
            )
        ]
    return [html.Span(text + "; open a front model to shade those indistinguishable from it", id="intervals-note")]
