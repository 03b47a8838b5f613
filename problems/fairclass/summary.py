"""The "Data and groups" section of report.md: where the data came from and which groups were compared.

A fairness number means little without the groups behind it: this section lists every group with
its rows per split, and which small groups `min_group_size` merged into "other".
"""

from __future__ import annotations

from typing import Any


def data_markdown(problem) -> str:
    info: dict[str, Any] = problem.describe()
    p = problem.params
    data = info.get("data", {})
    if "csv_sha256" in data:
        source = f"an in-memory DataFrame ({data['rows']} rows × {data['columns']} columns, sha256 of its CSV bytes `{data['csv_sha256']}`)"
    else:
        source = f"`{data.get('path')}` ({data.get('rows')} rows × {data.get('columns')} columns, sha256 `{data.get('sha256')}`)"
    lines = [f"- Data: {source}."]
    if info.get("dropped_missing"):
        lines.append(
            f"- Dropped {info['dropped_missing']} rows with a missing target/sensitive/text value (`drop_missing`)."
        )
    lines.append(
        f"- Split: {info.get('split')}; rows train {info['n_train']}, val {info['n_val']}, test {info['n_test']}."
    )
    classes = ", ".join(f"`{c}`" for c in problem.class_names)
    positive = f"; positive `{p.positive}`" if problem.pos_label is not None else "; no positive label (multi-class)"
    lines.append(f"- Target `{p.target}`: classes {classes}{positive}.")
    feats = info.get("features")
    if feats:
        lines.append(
            f"- Tabular features ({feats['dims']} inputs): numeric {', '.join(feats['numeric']) or '—'}; "
            f"categorical (one-hot) {', '.join(feats['categorical']) or '—'}."
        )
    if "text" in info:
        lines.append(
            f"- Text column `{info['text']['column']}` embedded by the encoder (feature cache "
            f"{'hit' if info['text'].get('hit') else 'miss'})."
        )
    lines.append(f"- Model: {p.model.kind}, layer sizes {info['head']}.")
    lines.append(
        f"- Sensitive columns {', '.join(f'`{c}`' for c in p.sensitive)}, groups {p.groups}, "
        f"min_group_size {p.min_group_size}."
    )
    merged = info.get("merged_groups") or {}
    if merged:
        lines.append(
            "- Merged into `other` (training rows): " + ", ".join(f"`{g}` ({n})" for g, n in merged.items()) + "."
        )
    for column, values in (info.get("merged_values") or {}).items():
        lines.append(
            f"- Values of `{column}` merged into `other` (training rows): "
            + ", ".join(f"`{v}` ({n})" for v, n in values.items())
            + "."
        )
    lines += ["", "| group | train | val | test |", "|---|---|---|---|"]
    lines += [f"| {_cell(g)} | {c['train']} | {c['val']} | {c['test']} |" for g, c in info.get("groups", {}).items()]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Group labels join values with "|", which would end a markdown table cell."""
    return str(text).replace("|", "\\|")
