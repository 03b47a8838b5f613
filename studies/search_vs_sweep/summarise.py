"""Per-task summaries over the rows of one or more `--json` files of search_vs_sweep.py or
recipe_vs_sweep.py (seeds run in several invocations are summarised together):

    .venv/bin/python studies/search_vs_sweep/summarise.py studies/search_vs_sweep/results/recipe_vs_sweep_*.json

For every ratio the rows hold: mean ± standard error over seeds and the median; the seeds whose
paired-bootstrap interval lies above or below 0; and the interval's mean half-width relative to
the sweep's test HV (how large a lead one seed can show).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: (label, numerator, denominator) of each ratio, where the rows hold both
RATIOS = (
    ("pipeline / sweep, equal budget", "hv_pipeline", "hv_sweep_equal"),
    ("pipeline / sweep, twice", "hv_pipeline", "hv_sweep_double"),
    ("recipe / sweep, equal budget", "hv_recipe", "hv_sweep_equal"),
    ("recipe / sweep, twice", "hv_recipe", "hv_sweep_double"),
    ("recipe / merge, same budget", "hv_recipe", "hv_merge_equal"),
    ("merge at that budget / sweep", "hv_merge_equal", "hv_sweep_equal"),
)
#: (label, low key, high key) of each paired interval
INTERVALS = (("vs sweep", "diff_lo", "diff_hi"), ("recipe vs merge", "diff_merge_lo", "diff_merge_hi"))


def ratio_line(label: str, values: np.ndarray) -> str:
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"  {label}: {values.mean():.3f} ± {se:.3f} (median {np.median(values):.3f})"


def summarise(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["seed"])
        lines.append(f"{task}: {len(mine)} seeds ({', '.join(str(r['seed']) for r in mine)})")
        for label, num, den in RATIOS:
            pairs = [(r[num], r[den]) for r in mine if r.get(num) is not None and r.get(den)]
            if len(pairs) == len(mine):
                lines.append(ratio_line(label, np.array([a / b for a, b in pairs])))
        for label, lo, hi in INTERVALS:
            if all(r.get(lo) is not None for r in mine):
                above = [r["seed"] for r in mine if r[lo] > 0]
                below = [r["seed"] for r in mine if r[hi] < 0]
                width = np.mean([(r[hi] - r[lo]) / 2 / r["hv_sweep_equal"] for r in mine])
                lines.append(
                    f"  intervals {label}: above {above or 'none'}, below {below or 'none'}; "
                    f"mean half-width / sweep HV {width:.3f}"
                )
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args(argv)
    rows = [r for f in args.files for r in json.loads(f.read_text())]
    print("\n".join(summarise(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
