"""`README.md` of an exported model: a Hugging Face model card built from `model_card.json`'s facts.

Why here, in the core: the facts a card states (objectives and every metric per split, the recipe's
constraints, the lineage) live in the run's store, which only `evofair.explorer.export` reads; the problem
knows what it wrote and how to load it. So a problem's `export_model` hook may return a
`model_card` entry, and `evofair.explorer.export` renders it here with the run's facts:

    {"front_matter": {"library_name": ..., "base_model": ..., "tags": [...], ...},
     "sections": {title: markdown},            # e.g. per-group metrics, how to load
     "device": {what: value}}                  # device/dtype facts the problem knows

The YAML front matter is what the Hub reads (library_name, base_model, tags); the body is for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

README_FILE = "README.md"
MAX_LINEAGE_ROWS = 40


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _cell(v: Any) -> str:
    return _num(v).replace("|", "\\|").replace("\n", " ")


def objectives_markdown(card: Mapping[str, Any]) -> str:
    metrics = card.get("metrics") or {}
    splits = [s for s in ("val", "test", "train") if s in metrics] + [
        s for s in metrics if s not in ("val", "test", "train")
    ]
    objectives = [o["name"] for o in card.get("objectives", [])]
    names = objectives + sorted({k for per in metrics.values() for k in per} - set(objectives))
    iv = card.get("intervals") or {}  # bootstrap intervals (evofair.analysis.uncertainty), when the problem gives them
    bounds = iv.get("metrics", {})
    extra = [f"{iv['split']} {iv['level']:.0%} interval"] if iv else []
    lines = [
        "| metric | objective | " + " | ".join(splits + extra) + " |",
        "|---|---|" + "---|" * (len(splits) + len(extra)),
    ]
    direction = {o["name"]: o.get("direction", "") for o in card.get("objectives", [])}
    for n in names:
        cells = [_cell(metrics[s].get(n)) for s in splits]
        if iv:
            cells.append(f"[{bounds[n][0]:.4f}, {bounds[n][1]:.4f}]" if n in bounds else "—")
        lines.append(f"| {n} | {direction.get(n, '—')} | " + " | ".join(cells) + " |")
    note = [f"Intervals: {iv['method']}, {iv['n_boot']} resamples of the {iv['split']} split."] if iv else []
    return "\n".join(
        [
            "Selection used the validate split (`val`); `test` was never used to choose a model.",
            "",
            *lines,
            *([""] + note if note else []),
        ]
    )


def constraints_markdown(card: Mapping[str, Any]) -> str:
    rows = card.get("constraints") or []
    if not rows:
        return "The recipe set no constraints."
    splits = [s for s in ("val", "test") if s in rows[0]]
    lines = [
        "| constraint | " + " | ".join(f"{s} value | holds on {s}" for s in splits) + " |",
        "|---|" + "---|---|" * len(splits),
    ]
    for r in rows:
        lines.append(
            f"| `{r['constraint']}` | "
            + " | ".join(f"{_cell(r.get(s))} | {'yes' if r.get(f'satisfied_{s}') else '**no**'}" for s in splits)
            + " |"
        )
    feasible = card.get("feasible")
    return "\n".join(
        lines + ["", f"Feasible on val: {'yes' if feasible else 'no' if feasible is not None else 'n/a'}."]
    )


def lineage_markdown(card: Mapping[str, Any]) -> str:
    lineage = card.get("lineage") or {}
    nodes, edges = lineage.get("nodes", []), lineage.get("edges", [])
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e["child"], []).append(e["parent"])
    head = [
        f"Made by **{card.get('made_by', '?')}** in generation {card.get('generation')} (seed {card.get('seed')}) "
        f"from {', '.join(card.get('parents') or []) or 'no parents (initial population)'}. Its ancestry has "
        f"{len(nodes)} models and {len(edges)} parent links (all of them in `model_card.json`, `lineage`).",
        "",
        "| model | generation | made by | parents |",
        "|---|---|---|---|",
    ]
    rows = [
        f"| {n['id']} | {_cell(n.get('generation'))} | {_cell(n.get('made_by'))} | "
        f"{', '.join(parents.get(n['id'], [])) or '—'} |"
        for n in nodes[:MAX_LINEAGE_ROWS]
    ]
    more = ["", f"… and {len(nodes) - MAX_LINEAGE_ROWS} older ancestors."] if len(nodes) > MAX_LINEAGE_ROWS else []
    return "\n".join(head + rows + more)


def device_markdown(card: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    """The run's device/dtype when the run recorded them (card key `compute`, from the store's meta),
    and what the problem states about the exported weights."""
    compute = card.get("compute") or {}
    lines = [f"- run {k.replace('_', ' ')}: {_cell(v)}" for k, v in compute.items() if v is not None]
    if not lines:
        lines = ["- run device/dtype: not recorded by this run"]
    lines += [f"- {k}: {_cell(v)}" for k, v in facts.items()]
    return "\n".join(lines)


def splits_markdown(splits: Mapping[str, Any]) -> str:
    """Where the card's validation and test rows are: the exported splits.json, and how to read it."""
    about = splits.get("about") or {}
    return "\n".join(
        [
            f"`{splits['file']}` names the rows of each split ({about.get('rows', 'row positions')}); "
            f"split: {about.get('split', 'as recorded')}. The test rows of the table, with pandas:",
            "",
            "```python",
            "import json, pandas as pd",
            f'test_rows = json.load(open("{splits["file"]}"))["rows"]["test"]',
            "test = pd.read_csv(DATA).iloc[test_rows]  # DATA: the run's data file (model_card.json, recipe)",
            "```",
        ]
    )


def model_card_markdown(card: Mapping[str, Any], hub: Mapping[str, Any]) -> str:
    """The README.md text: YAML front matter, then objectives, the problem's sections (per-group
    metrics first), constraints, lineage, device/dtype and the recipe."""
    front = yaml.safe_dump(dict(hub.get("front_matter") or {}), sort_keys=False, allow_unicode=True).strip()
    sections = dict(hub.get("sections") or {})
    problem = (card.get("problem") or {}).get("name", "?") if isinstance(card.get("problem"), dict) else "?"
    run = (card.get("run") or {}).get("name", "?")
    body = {"Objectives and metrics": objectives_markdown(card)}
    if "Per-group metrics" in sections:
        body["Per-group metrics"] = sections.pop("Per-group metrics")
    body["Constraints"] = constraints_markdown(card)
    body["Lineage"] = lineage_markdown(card)
    body["Device and dtype"] = device_markdown(card, hub.get("device") or {})
    body.update(sections)
    if card.get("splits"):
        body["Data split"] = splits_markdown(card["splits"])
    if card.get("recipe_yaml"):
        body["Recipe"] = (
            "The run's resolved recipe (`config.yaml`):\n\n```yaml\n" + card["recipe_yaml"].strip() + "\n```"
        )
    lines = [
        "---",
        front,
        "---",
        "",
        f"# {card.get('id')}: one model of the evofair run `{run}` ({problem})",
        "",
        f"A model from the accuracy–fairness Pareto front search of evofair, exported by "
        f"`evofair export` with its genome's sha256 `{card.get('weights_sha256')}`"
        f"{' (on the final front)' if card.get('on_final_front') else ''}. Everything below is read from the "
        "run's store; `model_card.json` has the same facts as JSON.",
        "",
    ]
    for title, text in body.items():
        lines += [f"## {title}", "", str(text).rstrip(), ""]
    return "\n".join(lines)
