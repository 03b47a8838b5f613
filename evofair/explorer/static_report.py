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

from evofair.explorer.data import RunData, operator_label
from evofair.explorer.figures import hv_figure, lineage_figure, replay_figure

REPORT_NAME = "report.html"

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:20px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} pre{background:#f4f4f4;padding:8px;font-size:12px;overflow:auto}
.muted{color:#666;font-size:13px} details{margin:6px 0}"""


def _table(header: list[str], rows: list[list[str]], num_from: int = 0) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{html.escape(c)}</td>" if k >= num_from else f"<td>{html.escape(c)}</td>"
        for k, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _f(v: float) -> str:
    return "–" if v is None or v != v else f"{v:.4f}"


def render(data: RunData) -> str:
    snap = data.refresh()
    objs = snap.objective_names
    x, y = objs[0], objs[1] if len(objs) > 1 else objs[0]
    baselines = data.baselines()
    parts = [f"<h1>evofair run: {html.escape(data.name)}</h1>",
             f"<p class='muted'>{html.escape(str(data.root.resolve()))} · problem "
             f"{html.escape(str((data.recipe.get('problem') or {}).get('name')))} · "
             f"{0 if snap.last_generation is None else snap.last_generation + 1} generations, "
             f"{len(snap.individuals)} models evaluated"
             + (" · <b>run still in progress when this page was written</b>" if data.in_progress(snap) else "")
             + "</p>"]
    figs = []
    for split in ("val", "test"):
        fig = replay_figure(snap, x=x, y=y, split=split, baselines=baselines)
        fig.update_layout(title=dict(text=f"Front (selected on validation) drawn on {'validation' if split == 'val' else 'test'}",
                                     y=0.98, yanchor="top"), margin=dict(t=80), legend=dict(y=1.02))
        figs.append(fig)
    figs.append(hv_figure(snap, snap.last_generation, height=320))
    for k, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if k == 0 else False,
                                 auto_play=False, div_id=f"fig{k}", config={"displaylogo": False}))
    front = sorted(snap.front(), key=lambda i: [snap.value(i, n, "val") for n in objs])
    cols = [(n, s) for n in snap.metric_names for s in snap.splits]
    parts.append(f"<h2>Final front ({len(front)} models)</h2>")
    parts.append(_table(["id", "generation", "made by"] + [f"{n} ({s})" for n, s in cols],
                        [[i.id, str(i.generation), operator_label(i.operator)] +
                         [_f(snap.value(i, n, s)) for n, s in cols] for i in front], num_from=3))
    if baselines:
        bcols = sorted({(n, s) for r in baselines for s, per in r["metrics"].items() for n in per},
                       key=lambda t: (objs.index(t[0]) if t[0] in objs else len(objs), t[0],
                                      snap.splits.index(t[1]) if t[1] in snap.splits else 99))
        parts.append("<h2>Baselines</h2>")
        parts.append(_table(["method", "id"] + [f"{n} ({s})" for n, s in bcols],
                            [[r["method"], r["id"]] + [_f(r["metrics"].get(s, {}).get(n)) for n, s in bcols]
                             for r in baselines], num_from=2))
    parts.append("<h2>Lineage of the front models</h2>")
    for i in front:
        if not i.parents:
            parts.append(f"<p>{html.escape(i.id)}: an initial model ({html.escape(operator_label(i.operator))}).</p>")
            continue
        lin = snap.lineage(i.id, max_nodes=40)
        div = lineage_figure(lin).to_html(full_html=False, include_plotlyjs=False, div_id=f"lin-{i.id}",
                                          config={"displaylogo": False})
        edges = _table(["parent", "child", "how (operator, args, seed)"],
                       [[e["parent"], e["child"], e["label"]] for e in lin["edges"]])
        parts.append(f"<details><summary>{html.escape(i.id)}: {len(lin['nodes'])} models back to "
                     f"{len(lin['roots'])} root(s){' (truncated)' if lin['truncated'] else ''}</summary>{div}{edges}</details>")
    parts.append("<h2>Resolved recipe</h2><pre>" + html.escape(data.recipe_text()) + "</pre>")
    parts.append("<p class='muted'>Written by <code>evofair report</code>; the interactive version is "
                 "<code>evofair explore</code>.</p>")
    meta = json.dumps({"front": [i.id for i in front]})
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>evofair: {html.escape(data.name)}</title>"
            f"<style>{CSS}</style><script type='application/json' id='evofair-data'>{meta}</script></head>"
            f"<body>{''.join(parts)}</body></html>")


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    data = RunData(run_dir)
    out = Path(out) if out else data.root / REPORT_NAME
    if out.is_dir():
        out = out / REPORT_NAME
    text = render(data)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        from evofair.errors import UserError

        raise UserError(f"--out {out}: cannot write ({exc.strerror})") from None
    return out
