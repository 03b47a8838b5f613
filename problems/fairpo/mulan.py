"""MULAN multi-label datasets: ARFF features and labels, with the label names from the .xml file.

Any MULAN dataset works by path: a folder holding ``NAME.xml``, ``NAME-train.arff`` and
``NAME-test.arff`` (dense or sparse ARFF, parsed by liac-arff — scipy.io.arff cannot read the
sparse rows enron uses). Labels are the attributes the .xml names, wherever they sit in the ARFF.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import arff
import numpy as np

from evofair.errors import UserError
from evofair.problems import shipped_data


@dataclass(frozen=True)
class MultiLabelData:
    name: str
    label_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    x_train: np.ndarray  # (n, d) float64
    y_train: np.ndarray  # (n, C) uint8
    x_test: np.ndarray
    y_test: np.ndarray


def resolve_dir(path: str, data_root: str | None = None) -> Path:
    """A dataset folder: absolute, else under `data_root`, the working directory, or evofair's shipped data."""
    p = Path(path)
    candidates = (
        [p]
        if p.is_absolute()
        else list(dict.fromkeys([*([Path(data_root) / p] if data_root else []), Path.cwd() / p, shipped_data(str(p))]))
    )
    for c in candidates:
        if c.is_dir():
            return c
        if c.is_file() and c.suffix == ".xml":
            return c.parent
    raise UserError(
        f"problem.args.data: no MULAN dataset folder {path!r} (looked in {', '.join(map(str, candidates))})"
    )


def label_names_from_xml(path: Path) -> list[str]:
    """Names of every <label> element (MULAN label hierarchies are flattened in document order)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise UserError(f"{path}: not a readable MULAN labels .xml ({exc})") from None
    names = [el.attrib["name"] for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "label" and "name" in el.attrib]
    if not names:
        raise UserError(f"{path}: no <label name=...> elements")
    return names


def _read_arff(path: Path, labels: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        with open(path) as fh:
            data = arff.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (arff.ArffException, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not a valid ARFF file ({exc})") from None
    names = [a[0] for a in data["attributes"]]
    missing = [n for n in labels if n not in names]
    if missing:
        raise UserError(f"{path}: label attributes named in the .xml are missing: {missing[:5]}")
    index = {n: i for i, n in enumerate(names)}
    label_idx = [index[n] for n in labels]
    feat_idx = [i for i, n in enumerate(names) if n not in set(labels)]
    for i in feat_idx:
        kind = data["attributes"][i][1]
        if isinstance(kind, list) and not set(kind) <= {"0", "1"}:
            raise UserError(
                f"{path}: feature {names[i]!r} is nominal with values {kind[:4]}; expected numeric or {{0,1}}"
            )
    try:
        table = np.array([[float(v) if v is not None else math.nan for v in row] for row in data["data"]])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: non-numeric value in data ({exc})") from None
    if table.ndim != 2 or len(table) == 0:
        raise UserError(f"{path}: no data rows")
    y = table[:, label_idx]
    if not np.isin(y, (0, 1)).all():
        raise UserError(f"{path}: label columns must be 0/1")
    x = np.nan_to_num(table[:, feat_idx], nan=0.0)
    return [names[i] for i in feat_idx], x, y.astype(np.uint8)


def load_mulan(path: str, data_root: str | None = None) -> MultiLabelData:
    folder = resolve_dir(path, data_root)
    xmls = sorted(folder.glob("*.xml"))
    if len(xmls) != 1:
        raise UserError(f"{folder}: expected exactly one MULAN .xml naming the labels, found {len(xmls)}")
    stem = xmls[0].stem
    labels = label_names_from_xml(xmls[0])
    f_tr, x_tr, y_tr = _read_arff(folder / f"{stem}-train.arff", labels)
    f_te, x_te, y_te = _read_arff(folder / f"{stem}-test.arff", labels)
    if f_tr != f_te:
        raise UserError(f"{folder}: train and test ARFF files have different features")
    return MultiLabelData(stem, tuple(labels), tuple(f_tr), x_tr, y_tr, x_te, y_te)


def carve_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of the training file: a fixed random cut, the same every run."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fraction * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def privileged_labels(
    y_train: np.ndarray,
    label_names: Sequence[str],
    *,
    fraction: float = 0.25,
    explicit: Sequence[str | int] | None = None,
) -> np.ndarray:
    """Indices of P: an explicit list (names or indices), else the rarest ⌈q·C⌉ labels on train.

    Frequency ties are broken by label index, so the partition is deterministic.
    """
    C = y_train.shape[1]
    if explicit:
        out = []
        for item in explicit:
            if isinstance(item, int) and not isinstance(item, bool):
                if not 0 <= item < C:
                    raise UserError(f"problem.args.privileged: label index {item} outside 0..{C - 1}")
                out.append(item)
            elif item in label_names:
                out.append(list(label_names).index(item))
            else:
                raise UserError(f"problem.args.privileged: unknown label {item!r}")
        idx = np.array(sorted(set(out)))
    else:
        k = max(1, math.ceil(fraction * C))
        freq = y_train.mean(axis=0)
        idx = np.sort(np.lexsort((np.arange(C), freq))[:k])
    if len(idx) >= C:
        raise UserError("problem.args.privileged: P must leave at least one non-privileged label")
    # A privileged label without a training positive has nothing to learn and no positive anchor for the
    # preference loss, and the rarest-first rule picks such labels first (min_positives 0 admits them):
    # refuse rather than report a "privileged" group that cannot be improved.
    empty = [str(label_names[i]) for i in idx if y_train[:, i].sum() == 0]
    if empty:
        raise UserError(
            f"problem.args.privileged: privileged label(s) {empty} have no positive in the training rows; "
            "raise problem.args.min_positives (it counts the whole training file, validation rows "
            "included) or name P explicitly"
        )
    return idx
