"""Same recipe + seed ⇒ the same front: run recipes and compare front.csv's sha256 with a record.

    .venv/bin/python benchmarks/front_checksums.py                # run, compare, print
    .venv/bin/python benchmarks/front_checksums.py --write FILE   # record new checksums

The record, benchmarks/results/front_sha256.txt, holds the current fronts; a refactoring that
claims "behaviour unchanged" must leave them as they are, and a change that alters results on
purpose re-records them (`--write`) and says so. front_sha256_before_redesign.txt is the record
from before the package layout moved to plugins (every front was byte-identical after the move).
The bootstrap-interval columns of front.csv are left out of the digest (`front_digest`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE / "results" / "front_sha256.txt"
RECIPES = ("zdt1", "zdt1_deap", "toy", "fapareto_biasbios", "fairpo_memetic_yeast", "hyperdpo_memetic_mq2008")


def front_digest(path: Path) -> str:
    """sha256 of front.csv without the bootstrap-interval columns (`<metric>_test_lo/_hi`):
    they are added outputs, so the fitness-determined front keeps its recorded checksum. The
    remaining columns are written back exactly as evofair.analysis.report writes them (csv module, CRLF)."""
    data = path.read_bytes()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    keep = [k for k, name in enumerate(rows[0] if rows else []) if not name.endswith(("_test_lo", "_test_hi"))]
    if rows and len(keep) < len(rows[0]):
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows([[row[k] for k in keep] for row in rows])
        data = buf.getvalue().encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", nargs="*", default=list(RECIPES))
    ap.add_argument("--write", type=Path, help="write the checksums here instead of comparing")
    args = ap.parse_args(argv)
    expected = {}
    if RECORD.exists():
        for line in RECORD.read_text().splitlines():
            digest, name = line.split()
            expected[name.split("/")[0]] = digest
    rows, bad = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            out = Path(tmp) / name
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "evofair.cli", "run", name, "--out", str(out), "--quiet"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            digest = front_digest(out / "front.csv")
            same = expected.get(name) == digest
            bad += not same and not args.write
            rows.append(f"{digest}  {name}/front.csv")
            print(
                f"{name:26s} {time.perf_counter() - t:6.1f} s  {digest[:16]}  "
                f"{'same as recorded' if same else 'DIFFERENT from recorded' if name in expected else 'no record'}"
            )
    if args.write:
        args.write.write_text("\n".join(rows) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
