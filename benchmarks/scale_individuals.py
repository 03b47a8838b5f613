"""Do a run's costs grow linearly with its individuals? ZDT1 runs of 10,000 and 100,000.

Every command that reads a run (report, the explorer's refresh, verify, resume) reads all of its
individuals, so a per-individual cost that grows with the run (a scan per generation, a rescan of
everything decoded so far) shows as a superlinear step between the sizes. For each size (NSGA-II,
population 100, size/100 generations) this times the run itself (report included), its report
(report.md, the CSV tables and plots) written again, the static HTML report (`evofair report DIR
--out FILE`: verify's checks, the explorer's data, plotly figures with a replay frame per
generation), the explorer's data refresh, `evofair verify` and `evofair run --resume` adding one
generation, then prints each one's cost per individual at the large size over that at the small
size (goal ≤ 1.2; resume mostly costs the same at both sizes, so its ratio is far below 1).

    .venv/bin/python benchmarks/scale_individuals.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evofair  # noqa: E402
from evofair.analysis.report import write_report  # noqa: E402
from evofair.analysis.run_reader import open_store  # noqa: E402
from evofair.cli import main as cli  # noqa: E402
from evofair.explorer.data import RunData  # noqa: E402
from evofair.lifecycle.rebuild import build_problem  # noqa: E402
from evofair.lifecycle.recipe import parse_recipe, read_recipe_file  # noqa: E402

POP = 100


def timed(fn) -> float:
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = fn()
    if rc not in (None, 0):
        raise SystemExit(f"{fn}: exit {rc}")
    return time.perf_counter() - t


def rewrite_report(raw: dict, run: Path, out: Path) -> None:
    """The run's own report (report.md, front.csv, archive.csv, history.csv, plots), written again."""
    recipe = parse_recipe(raw)
    with open_store(run) as store:
        write_report(store, build_problem(recipe), recipe, out)


def measure(n: int, tmp: Path) -> dict[str, float]:
    raw = read_recipe_file(ROOT / "runs" / "zdt1.yaml")
    generations = n // POP
    raw["algorithm"].update(pop_size=POP, generations=generations)
    out = tmp / f"zdt1-{n}"
    return {
        "run": timed(lambda: evofair.run(raw, out, progress=False) and None),
        "report": timed(lambda: rewrite_report(raw, out, tmp / f"report-{n}")),
        "html report": timed(lambda: cli(["report", str(out), "--out", str(tmp / f"report-{n}.html")])),
        "explorer refresh": timed(lambda: RunData(out) and None),
        "verify": timed(lambda: cli(["verify", str(out)])),
        "resume": timed(
            lambda: cli(["run", "--resume", str(out), "--quiet", "--set", f"algorithm.generations={generations + 1}"])
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000])
    args = ap.parse_args()
    small, large = args.sizes
    with tempfile.TemporaryDirectory() as tmp:
        measure(POP * 2, Path(tmp))  # warm-up: imports, matplotlib's font cache
        times = {n: measure(n, Path(tmp)) for n in (small, large)}
    print(f"{'step':<18}{small:>12,}{large:>12,}  per-individual ratio (goal <= 1.2)")
    for step in times[small]:
        a, b = times[small][step], times[large][step]
        print(f"{step:<18}{a:>11.2f}s{b:>11.2f}s  {(b / large) / (a / small):.2f}")


if __name__ == "__main__":
    main()
