"""The recipe's constraints as the after-run files show them: each model's total violation, which
models are feasible, and report.md's Constraints section.

One place for the arithmetic so that front.csv, plots/front.png and report.md count the same
models as feasible (on a split, CV = Σ max(0, g) ≤ 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evofair.core import constraints as cons
from evofair.core.individual import Individual
from evofair.core.problem import SPLITS


def violation(constraints: Sequence[cons.Constraint], inds: Sequence[Individual], split: str) -> np.ndarray:
    """Each model's total violation CV on `split`; zeros without constraints (everyone feasible)."""
    cv = cons.of_individuals(constraints, inds, split)
    return np.zeros(len(inds)) if cv is None else cv


def feasible_mask(constraints: Sequence[cons.Constraint], inds: Sequence[Individual] | None, split: str) -> np.ndarray:
    """Which of `inds` satisfy every constraint on `split` (all of them without constraints)."""
    return violation(constraints, inds or [], split) <= 0


def _value(ind: Individual, metric: str, split: str) -> float:
    v = ind.metrics.get(split, {}).get(metric)
    return float("nan") if v is None else float(v)


def constraints_section(
    constraints: Sequence[cons.Constraint], everyone: Sequence[Individual], front: Sequence[Individual]
) -> list[str]:
    """report.md lines: how many evaluated and front models satisfy each constraint, on validation
    and on test, and a warning when nothing on the front is feasible."""

    def count(inds: Sequence[Individual], c: cons.Constraint, split: str) -> int:
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
        (name, s): int(feasible_mask(constraints, inds, s).sum())
        for name, inds in (("everyone", everyone), ("front", front))
        for s in SPLITS
    }
    lines.append(
        f"| all of them | {all_ok['everyone', 'val']} | {all_ok['everyone', 'test']} | "
        f"{all_ok['front', 'val']} | {all_ok['front', 'test']} |"
    )
    if front and not all_ok["front", "val"]:
        least = violation(constraints, front, "val").min()
        lines += [
            "",
            f"**No evaluated model satisfies every constraint on validation.** The final front below "
            f"shows the least violating model(s) of the last population instead (CV = {least:.4g}), "
            "as pymoo reports its optimum when nothing is feasible.",
        ]
    return lines
