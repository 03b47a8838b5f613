"""Re-create data/adult/adult.csv.gz and data/compas/compas.csv from the upstream files.

    python3 scripts/derive_fair_tabular_data.py SOURCE_DIR

SOURCE_DIR holds `adult/` (the UCI files adult.data.gz, adult.test.gz, adult.names) and
`compas/compas-two-years-nopii.csv`; each PROVENANCE.md names the upstream snapshot and sha256.

Standard library only, deterministic (the gzip header carries no timestamp or file name), so the
sha256 in each PROVENANCE.md is reproducible. Every step is stated in those PROVENANCE.md files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# COMPAS: the columns shipped (no names, dates of birth, case numbers; no COMPAS score or text)
COMPAS_COLUMNS = [
    "sex",
    "age",
    "age_cat",
    "race",
    "juv_fel_count",
    "juv_misd_count",
    "juv_other_count",
    "priors_count",
    "c_charge_degree",
    "two_year_recid",
]


def adult_header(names_text: str) -> list[str]:
    """The 15 names of adult.names' attribute list (from `age:` on); the label `class` is renamed `income`."""
    lines = names_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("age:"))
    cols = []
    for line in lines[start:]:
        m = re.match(r"^([a-z-]+): ", line)
        if not m:
            break
        cols.append(m.group(1))
    assert len(cols) == 15 and cols[-1] == "class", cols
    return cols[:-1] + ["income"]


def adult_rows(text: str, strip_dot: bool) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("|"):
            continue  # blank trailing lines; adult.test's first line "|1x3 Cross validator"
        cells = [c.strip() for c in line.split(",")]
        assert len(cells) == 15, line
        if strip_dot:
            cells[-1] = cells[-1].rstrip(".")
        rows.append(["" if c == "?" else c for c in cells])  # "?" = missing → an empty cell
    return rows


def derive_adult(src: Path, dst: Path) -> None:
    header = adult_header((src / "adult.names").read_text())
    train = adult_rows(gzip.decompress((src / "adult.data.gz").read_bytes()).decode(), strip_dot=False)
    test = adult_rows(gzip.decompress((src / "adult.test.gz").read_bytes()).decode(), strip_dot=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(train + test)
    raw = buf.getvalue().encode()
    with open(dst, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    print(
        f"{dst}: {len(train)} + {len(test)} rows, csv sha256 {hashlib.sha256(raw).hexdigest()}, "
        f"file sha256 {hashlib.sha256(dst.read_bytes()).hexdigest()}"
    )


def derive_compas(src: Path, dst: Path) -> None:
    with open(src / "compas-two-years-nopii.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        first = {name: header.index(name) for name in header}  # duplicated names: the first column
        rows = list(reader)
    kept = []
    for r in rows:
        days = r[first["days_b_screening_arrest"]]
        if days == "" or not -30 <= int(days) <= 30:
            continue
        if r[first["is_recid"]] == "-1" or r[first["c_charge_degree"]] == "O" or r[first["score_text"]] == "N/A":
            continue
        kept.append([r[first[c]] for c in COMPAS_COLUMNS])
    assert len(kept) == 6172, len(kept)
    with open(dst, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COMPAS_COLUMNS)
        writer.writerows(kept)
    print(f"{dst}: {len(kept)} of {len(rows)} rows, sha256 {hashlib.sha256(dst.read_bytes()).hexdigest()}")


def main(argv: list[str]) -> None:
    if len(argv) != 1 or not (Path(argv[0]) / "adult").is_dir():
        sys.exit("usage: python3 scripts/derive_fair_tabular_data.py SOURCE_DIR (holding adult/ and compas/)")
    source = Path(argv[0])
    derive_adult(source / "adult", ROOT / "data" / "adult" / "adult.csv.gz")
    derive_compas(source / "compas", ROOT / "data" / "compas" / "compas.csv")


if __name__ == "__main__":
    main(sys.argv[1:])
