"""How a model was made, in words, and its ancestry back to the initial models.

Shared by the page (cards, lineage graph), the static report and export's model card, so a step
reads the same everywhere: 'crossover ties(density=0.5) seed 123'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evofair.core.individual import Individual

OPERATOR_STEPS = ("init", "crossover", "mutation", "refine")


def format_args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())


def operator_steps(operator: Mapping[str, Any]) -> list[str]:
    """One line per step of how a model was made: 'crossover ties(density=0.5) seed 123'."""
    out = []
    for step in OPERATOR_STEPS:
        rec = operator.get(step)
        if rec:
            out.append(f"{step} {rec.get('name', '?')}({format_args(rec.get('args', {}))}) seed {rec.get('seed')}")
    return out


def operator_label(operator: Mapping[str, Any]) -> str:
    return "+".join(operator[s]["name"] for s in OPERATOR_STEPS if operator.get(s)) or "copy"


def ancestry(individuals: Mapping[str, Individual], iid: str, max_nodes: int | None = None) -> dict[str, Any]:
    """The ancestry of `iid` back to the roots (breadth first; at most `max_nodes` nodes).

    nodes: {id, generation, made_by, steps}; edges: {parent, child, position, label} where the
    label is how the child was made from its parents (operator, its arguments and seed).
    """
    order, seen, truncated = _breadth_first(individuals, iid, max_nodes)
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for nid in order:
        ind = individuals.get(nid)
        if ind is None:  # a parent outside the store (should not happen; verify reports it)
            nodes.append({"id": nid, "generation": None, "made_by": "?", "steps": []})
            continue
        nodes.append(
            {
                "id": nid,
                "generation": ind.generation,
                "made_by": operator_label(ind.operator),
                "steps": operator_steps(ind.operator),
            }
        )
        label = "; ".join(s for s in operator_steps(ind.operator) if not s.startswith("init"))
        for pos, parent in enumerate(ind.parents):
            if parent in seen:
                edges.append({"parent": parent, "child": nid, "position": pos, "label": label})
    roots = [n["id"] for n in nodes if n["id"] in individuals and not individuals[n["id"]].parents]
    return {"nodes": nodes, "edges": edges, "roots": roots, "truncated": truncated}


def _breadth_first(
    individuals: Mapping[str, Individual], iid: str, max_nodes: int | None
) -> tuple[list[str], set[str], bool]:
    """(ids in visiting order, the set of them, whether `max_nodes` cut the walk short)."""
    seen, queue, order = {iid}, [iid], []
    truncated = False
    while queue:
        cur = queue.pop(0)
        order.append(cur)
        for parent in individuals[cur].parents if cur in individuals else ():
            if parent not in seen:
                if max_nodes is not None and len(seen) >= max_nodes:
                    truncated = True
                    continue
                seen.add(parent)
                queue.append(parent)
    return order, seen, truncated
