"""`evofair report DIR`: the explorer's plots as one self-contained HTML file (no server).

The page embeds plotly.js once (so it opens offline and can be mailed around), then: the front
per generation with a replay slider (plotly animation frames) on validation and on test, the
hypervolume per generation, the final front as a table with every metric on every split, the
lineage of each front model, and the resolved recipe. It reads the store read-only, like the
explorer, and writes only the output file (atomically).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from evofair.analysis.near_constant import read_flags
from evofair.core.individual import Individual
from evofair.explorer import weights_warning
from evofair.explorer.data import RunData
from evofair.explorer.history_figures import hv_figure, replay_figure
from evofair.explorer.lineage import operator_label
from evofair.explorer.lineage_figure import lineage_figure
from evofair.explorer.snapshot import Snapshot

REPORT_NAME = "report.html"

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:20px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} pre{background:#f4f4f4;padding:8px;font-size:12px;overflow:auto}
.muted{color:#666;font-size:13px} details{margin:6px 0} .warn{color:#a40}"""


def _table(header: list[str], rows: list[list[str]], num_from: int = 0) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{html.escape(c)}</td>" if k >= num_from else f"<td>{html.escape(c)}</td>"
            for k, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def script_json(value) -> str:
    """JSON safe inside a <script> block: `<`, `>` and `&` as \\u escapes, so a string from the
    run (a model id `</script><script>...`) cannot close the block; JSON.parse reads it unchanged."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _f(v: float) -> str:
    return "–" if v is None or v != v else f"{v:.4f}"


def render(data: RunData) -> str:
    """The whole page: header, front replays and HV, the final front, baselines, lineage, recipe."""
    snap = data.refresh()
    objs = snap.objective_names
    baselines = data.baselines()
    front = sorted(snap.front(), key=lambda i: [snap.value(i, n, "val") for n in objs])
    parts = _header(data, snap)
    parts += _figures(snap, baselines)
    parts += _front_table(snap, front, read_flags(data.root))
    if baselines:
        parts += _baselines_table(snap, baselines)
    parts += _lineage(snap, front)
    parts.append("<h2>Resolved recipe</h2><pre>" + html.escape(data.recipe_text()) + "</pre>")
    parts.append(
        "<p class='muted'>Written by <code>evofair report</code>; the interactive version is "
        "<code>evofair explore</code>.</p>"
    )
    meta = script_json({"front": [i.id for i in front]})
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>evofair: {html.escape(data.name)}</title>"
        f"<style>{CSS}</style><script type='application/json' id='evofair-data'>{meta}</script></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def _header(data: RunData, snap: Snapshot) -> list[str]:
    """The run's name, folder, problem and size, and a warning about damaged front weights."""
    parts = [
        f"<h1>evofair run: {html.escape(data.name)}</h1>",
        f"<p class='muted'>{html.escape(str(data.root.resolve()))} · problem "
        f"{html.escape(str((data.recipe.get('problem') or {}).get('name')))} · "
        f"{0 if snap.last_generation is None else snap.last_generation + 1} generations, "
        f"{len(snap.individuals)} models evaluated"
        + (" · <b>run still in progress when this page was written</b>" if data.in_progress(snap) else "")
        + "</p>",
    ]
    warning = weights_warning(data)
    if warning:
        parts.append(f"<p class='warn'><b>Warning:</b> {html.escape(warning)}</p>")
    return parts


def _figures(snap: Snapshot, baselines: list[dict[str, Any]]) -> list[str]:
    """The front replayed per generation on validation and on test, then HV per generation; the
    first figure carries plotly.js inline, the others reuse it."""
    objs = snap.objective_names
    x, y = objs[0], objs[1] if len(objs) > 1 else objs[0]
    figs = []
    for split in ("val", "test"):
        fig = replay_figure(snap, x=x, y=y, split=split, baselines=baselines)
        fig.update_layout(
            title=dict(
                text=f"Front (selected on validation) drawn on {'validation' if split == 'val' else 'test'}",
                y=0.98,
                yanchor="top",
            ),
            margin=dict(t=80),
            legend=dict(y=1.02),
        )
        figs.append(fig)
    figs.append(hv_figure(snap, snap.last_generation, height=320))
    return [
        fig.to_html(
            full_html=False,
            include_plotlyjs="inline" if k == 0 else False,
            auto_play=False,
            div_id=f"fig{k}",
            config={"displaylogo": False},
        )
        for k, fig in enumerate(figs)
    ]


def _front_table(snap: Snapshot, front: list[Individual], near: dict[str, Any] | None = None) -> list[str]:
    """The final front with every metric on every split and the operators that made each model;
    with the report's near_constant.json, each model's near-constant flag and their count."""
    cols = [(n, s) for n in snap.metric_names for s in snap.splits]
    flagged, scored = set((near or {}).get("near_constant", [])), set((near or {}).get("front", []))
    flag = [f"near-constant ({near['split']})"] if near else []
    count = f", {len(flagged & {i.id for i in front})} near-constant" if near else ""
    return [
        f"<h2>Final front ({len(front)} models{count})</h2>",
        _table(
            ["id", "generation", "made by"] + [f"{n} ({s})" for n, s in cols] + flag,
            [
                [i.id, str(i.generation), operator_label(i.operator)]
                + [_f(snap.value(i, n, s)) for n, s in cols]
                + ([("yes" if i.id in flagged else "no") if i.id in scored else "–"] if near else [])
                for i in front
            ],
            num_from=3,
        ),
    ]


def _baselines_table(snap: Snapshot, baselines: list[dict[str, Any]]) -> list[str]:
    """baselines.csv's rows, objectives first, every metric they have on every split."""
    objs = snap.objective_names
    bcols = sorted(
        {(n, s) for r in baselines for s, per in r["metrics"].items() for n in per},
        key=lambda t: (
            objs.index(t[0]) if t[0] in objs else len(objs),
            t[0],
            snap.splits.index(t[1]) if t[1] in snap.splits else 99,
        ),
    )
    return [
        "<h2>Baselines</h2>",
        _table(
            ["method", "id"] + [f"{n} ({s})" for n, s in bcols],
            [[r["method"], r["id"]] + [_f(r["metrics"].get(s, {}).get(n)) for n, s in bcols] for r in baselines],
            num_from=2,
        ),
    ]


def _lineage(snap: Snapshot, front: list[Individual]) -> list[str]:
    """Each front model's ancestry, folded: its lineage figure and its table of edges."""
    parts = ["<h2>Lineage of the front models</h2>"]
    for k, i in enumerate(front):
        if not i.parents:
            parts.append(f"<p>{html.escape(i.id)}: an initial model ({html.escape(operator_label(i.operator))}).</p>")
            continue
        lin = snap.lineage(i.id, max_nodes=40)
        # plotly writes div_id raw into the element and its script: never a run-supplied string
        div = lineage_figure(lin).to_html(
            full_html=False, include_plotlyjs=False, div_id=f"lin-{k}", config={"displaylogo": False}
        )
        edges = _table(
            ["parent", "child", "how (operator, args, seed)"],
            [[e["parent"], e["child"], e["label"]] for e in lin["edges"]],
        )
        parts.append(
            f"<details><summary>{html.escape(i.id)}: {len(lin['nodes'])} models back to "
            f"{len(lin['roots'])} root(s){' (truncated)' if lin['truncated'] else ''}</summary>{div}{edges}</details>"
        )
    return parts


def write_report(
    run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, data: RunData | None = None
) -> Path:
    """Write the report to `out` (a new file, or a new name in an existing folder) or, without
    `out`, to DIR/report.html (evofair's own file there, replaced). An explicit `--out` never
    overwrites anything, as `export --to` does not: `--out RUN/evofair.sqlite` would lose the run."""
    from evofair.errors import UserError
    from evofair.store.safe_io import atomic_write_text

    data = data or RunData(run_dir)
    if out is None:
        out, within = data.root / REPORT_NAME, data.root
    else:
        out, within = Path(out), None
        if out.is_dir():
            out = out / REPORT_NAME
        if out.exists() or out.is_symlink():
            raise UserError(f"--out {out}: exists (evofair report never overwrites a file; choose a new name)")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
    text = render(data)
    warning = weights_warning(data)
    if warning:
        import sys

        print(f"evofair report: warning: {warning}", file=sys.stderr)
    try:
        atomic_write_text(out, text, within=within, replace=within is not None)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror})") from None
    return out
