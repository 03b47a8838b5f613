"""The main job (`evofair run`, default recipe) from a cold feature cache, by phase
(goal: ≤ 180 s on 2 cores, what a newcomer waits for).

Runs the CLI exactly as a newcomer does, in a subprocess with `EVOFAIR_CACHE` pointing at a fresh
folder (so the encoder embeds every bio), then once more on the now warm cache. Phases come from the
timestamps in each run's `run.log` (it opens when the evolution starts):

- setup: process start → generation 0 logged (imports, data, model load, embedding when cold, and
  generation 0 itself, ~1 s);
- evolution: generation 0 logged → last generation logged; baselines: "after the run" → "writing
  the report"; report: the rest.

Prints seconds per phase for both runs, the cold run's share of the 180 s budget, and whether both
runs wrote the same front.csv bytes (the cache must not change the result).

    .venv/bin/python benchmarks/main_job_cold.py                # ~3–4 min on 2 idle cores
    .venv/bin/python benchmarks/main_job_cold.py --json out/cold.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 180.0
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _stamps(log: Path) -> list[tuple[float, str]]:
    out = []
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((t, line[m.end() :]))
    return out


def phases(run_dir: Path, start: float, end: float) -> dict[str, float]:
    """Seconds per phase from run.log (see module doc)."""
    lines = _stamps(run_dir / "run.log")
    gens = [t for t, text in lines if "generation " in text and "hv_val" in text]
    after = next(t for t, text in lines if "after the run" in text)
    report = next(t for t, text in lines if "writing the report" in text)
    return {
        "setup": gens[0] - start,
        "evolution": gens[-1] - gens[0],
        "baselines": report - after,
        "report": end - report,
        "total": end - start,
    }


def run_main_job(out: Path, cache: Path) -> dict[str, float]:
    env = {**os.environ, "EVOFAIR_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    start = time.time()
    subprocess.run([str(ROOT / ".venv" / "bin" / "evofair"), "run", "-q", "--out", str(out)], check=True, env=env)
    return phases(out, start, time.time())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="FILE", help="write both runs' phases")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold = run_main_job(tmp / "cold", tmp / "cache")
        warm = run_main_job(tmp / "warm", tmp / "cache")
        same = (tmp / "cold" / "front.csv").read_bytes() == (tmp / "warm" / "front.csv").read_bytes()
    print("| phase | cold cache (s) | warm cache (s) |\n|---|---|---|")
    for k in cold:
        print(f"| {k} | {cold[k]:.1f} | {warm[k]:.1f} |")
    print(
        f"\ncold total / budget {BUDGET_S:.0f} s = {cold['total'] / BUDGET_S:.2f}; "
        f"embedding ≈ setup(cold) − setup(warm) = {cold['setup'] - warm['setup']:.1f} s; "
        f"front.csv identical cold vs warm: {same}"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cold": cold, "warm": warm, "same_front": same}, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
