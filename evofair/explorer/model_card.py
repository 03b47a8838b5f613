"""One model's card as plain JSON-able data: what the page's card shows and what `evofair export`
writes to model_card.json (and renders into README.md), built once here so the two never differ.

Built on `RunData` (the run reader with live snapshots): its snapshot, the run's intervals.json
and the problem's optional `model_card` hook.
"""

from __future__ import annotations

import json
from typing import Any

from evofair.core.individual import Individual
from evofair.core.problem import ModelCards
from evofair.explorer.data import RunData
from evofair.explorer.lineage import operator_label, operator_steps
from evofair.explorer.snapshot import json_float


def model_card_data(
    run: RunData, iid: str, *, with_problem_card: bool = True, max_lineage: int | None = 80
) -> dict[str, Any]:
    """Everything known about one model: how it was made, every metric on every split, its
    constraints and lineage, its test intervals and (optionally) the problem's own card."""
    snap = run.snapshot
    ind = snap.get(iid)
    card: dict[str, Any] = {
        "id": ind.id,
        "generation": ind.generation,
        "seed": ind.seed,
        "parents": list(ind.parents),
        "made_by": operator_label(ind.operator),
        "steps": operator_steps(ind.operator),
        "operator": json.loads(json.dumps(ind.operator, default=str)),
        "weights_sha256": ind.weights_hash,
        "x": list(ind.x) if ind.x is not None else None,
        "objectives": [{"name": n, "direction": d} for n, d in snap.objectives],
        "metrics": {s: {k: json_float(v) for k, v in per.items()} for s, per in ind.metrics.items()},
        "on_final_front": ind.id in {i.id for i in snap.front()},
        "constraints": snap.constraint_rows(ind),
        "feasible": bool(snap.feasible([ind], "val")[0]) if snap.constraints else None,
        "lineage": snap.lineage(iid, max_nodes=max_lineage),
        "intervals": run.intervals_of(iid),
    }
    if with_problem_card:
        card["problem_card"], card["problem_card_error"] = problem_card(run, ind)
    return card


def problem_card(run: RunData, ind: Individual) -> tuple[dict[str, Any] | None, str | None]:
    """The problem's own `model_card(individual, store)` (per-group confusion numbers...).

    Hook contract: returns {title: rows} where rows is a list of flat dicts (a table) or a
    string (markdown). The problem is built but not set up; the hook calls
    `self.ensure_setup()` itself if it needs data. Errors are reported, never raised, so a
    broken hook cannot take the explorer down.
    """
    hook = run.problem.model_card if isinstance(run.problem, ModelCards) else None
    if hook is None:
        return None, None
    try:
        with run.store() as store:
            return dict(hook(ind, store) or {}), None
    except Exception as exc:  # noqa: BLE001 - shown to the user instead
        return None, f"{type(run.problem).__name__}.model_card failed: {exc.__class__.__name__}: {exc}"
