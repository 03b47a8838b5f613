"""Screen front-selection rules on saved candidate pools: one training run per task and seed,
every rule judged on it (a row per rule, in the benchmark's --json format, one file per rule).

    .venv/bin/python studies/search_vs_sweep/screen_selection.py --tasks biasbios_head adult compas \\
        --seed-list 1 2 --rules plain stability:0.5 shrunk:10 thin:8 --cache pools/ \\
        --out studies/search_vs_sweep/results

Any other option is the benchmark's (search_vs_sweep.py) and sets up the runs as there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_vs_sweep as svs  # noqa: E402
from rule_seed import cached_pools, ceilings, rule_row  # noqa: E402
from tasks import tasks  # noqa: E402


def write_rows(path: Path, rows: list[dict]) -> None:
    """Rows into `path`, replacing the rows of the same task and seed already there and keeping the
    others, so runs over different seeds or tasks add up to one file per rule."""
    new = {(r["task"], r["seed"]) for r in rows}
    old = [r for r in json.loads(path.read_text()) if (r["task"], r["seed"]) not in new] if path.is_file() else []
    order = list(tasks())
    merged = sorted([*old, *rows], key=lambda r: (order.index(r["task"]) if r["task"] in order else 99, r["seed"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed-list", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rules", nargs="*", default=["plain", "stability:0.5", "shrunk:10", "thin:8"])
    ap.add_argument("--cache", type=Path, required=True, help="folder of the pools (reused when present)")
    ap.add_argument("--out", type=Path, help="folder for selection_<rule>.json")
    ap.add_argument("--ceilings", action="store_true", help="also print each pool's test-oracle HV")
    own, rest = ap.parse_known_args(argv)
    args = svs.parse(rest)
    rows: dict[str, list[dict]] = {r: [] for r in own.rules}
    for name in args.tasks:
        for seed in own.seed_list:
            pools, meta = cached_pools(tasks()[name], seed, args, own.cache)
            if own.ceilings:
                c = ceilings(tasks()[name], pools, meta)
                print(
                    f"{name:>14} {seed:>2} test-oracle HV: pipeline population {c['hv_population']:.5f}, every recipe "
                    f"{c['hv_all']:.5f}, sweep {c['hv_sweep_equal']:.5f} (ratio {c['hv_all'] / c['hv_sweep_equal']:.3f}); "
                    f"best test error {c['min_error_population']:.4f} / {c['min_error_all']:.4f} / {c['min_error_sweep_equal']:.4f}",
                    flush=True,
                )
            for spec in own.rules:
                r = rule_row(tasks()[name], pools, meta, spec, args.n_boot)
                rows[spec].append(r)
                print(
                    f"{name:>14} {seed:>2} {spec:>18} ratio= {r['ratio_equal'] or 0:6.3f} ×2 {r['ratio_double'] or 0:6.3f} "
                    f"[{r['diff_lo']:+.5f}, {r['diff_hi']:+.5f}]  vs plain sweep {r['ratio_equal_vs_plain_sweep'] or 0:6.3f} "
                    f"[{r['diff_lo_vs_plain_sweep']:+.5f}, {r['diff_hi_vs_plain_sweep']:+.5f}]  n={r['n_front']}/{r['n_front_sweep_equal']} own {r['gain_vs_plain'] or 0:.3f}",
                    flush=True,
                )
    for spec, rs in rows.items():
        for name in args.tasks:
            mine = [r for r in rs if r["task"] == name]
            if mine:
                print(
                    f"{name:>14} {spec:>18} mean ratio= {np.mean([r['ratio_equal'] or 0 for r in mine]):.3f} "
                    f"×2 {np.mean([r['ratio_double'] or 0 for r in mine]):.3f} "
                    f"vs plain sweep {np.mean([r['ratio_equal_vs_plain_sweep'] or 0 for r in mine]):.3f} "
                    f"own gain {np.mean([r['gain_vs_plain'] or 0 for r in mine]):.3f}"
                )
        if own.out:
            write_rows(own.out / f"selection_{spec.replace(':', '').replace('@', '_').replace('.', '')}.json", rs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
