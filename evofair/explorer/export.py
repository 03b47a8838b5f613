"""`evofair export DIR ID --to PATH`: one model of a run as a self-contained directory.

What is written (only into PATH, which must not exist or be an empty directory):

- `genome.safetensors`: the genome exactly as stored (the same bytes, so its sha256 equals the
  store's `weights_hash`; `safetensors.torch.load_file` reads it). Vector genomes (ZDT...) are
  written as `genome.json` instead;
- whatever the problem's optional hook writes for a model a user can load directly:

      problem.export_model(weights: dict[str, Tensor], path: Path) -> dict | None

  e.g. BiasBios writes the base encoder plus the trained head (or LoRA adapters, merged or
  alongside) so that `transformers`/`peft` `from_pretrained(path)` loads it. The hook is called on
  a problem built from the run's config.yaml but *not set up*; it calls `self.ensure_setup()` if it
  needs data. What it returns is recorded under `"export"` in the model card. It must not write
  `genome.safetensors` or `model_card.json`. A `"model_card"` entry in what it returns (front
  matter and sections, see evofair/explorer/hf_card.py) is taken out and rendered, with the run's facts, as
  `README.md`, a Hugging Face model card (the LoRA genome's export does this);
- `splits.json`: the run's rows per split (evofair/analysis/splits_file.py), when its problem
  recorded them, so the card's validation and test numbers can be recomputed from the data file;
- `model_card.json`: id, objectives and every metric on every split, how it was made (operator,
  arguments, seeds), its full lineage back to the roots, the resolved recipe, the genome's sha256.

Nothing is half-written: everything goes into a temporary sibling directory which is renamed to
PATH at the end (and removed on any error).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from evofair.analysis.run_check import refuse_damaged
from evofair.core.problem import Exportable, RebuildsWeights
from evofair.errors import UserError, WeightsIntegrityError, require_new_dir
from evofair.explorer.data import RunData
from evofair.explorer.model_card import model_card_data
from evofair.store.weights_files import weights_bytes

GENOME_FILE = "genome.safetensors"
CARD_FILE = "model_card.json"
README_FILE = "README.md"


def check_target(to: str | os.PathLike) -> Path:
    """`--to` as a new directory to create, or a one-line `UserError`: not empty text (the current
    folder), not a symbolic link (the export would land wherever it points), a name the file
    system takes."""
    if not str(to).strip():
        raise UserError("--to: empty; expected the directory to create")
    path = Path(to).expanduser()
    shown = str(to) if len(str(to)) <= 60 else str(to)[:57] + "..."
    try:
        if path.is_symlink():
            raise UserError(f"--to {shown}: a symbolic link (export creates a new directory, never writes through one)")
        require_new_dir(path, "--to")
        parent_exists = path.parent.is_dir()
    except OSError as exc:  # e.g. a name longer than the file system takes
        raise UserError(f"--to {shown}: cannot be used ({exc.strerror or exc})") from None
    if not parent_exists:
        raise UserError(f"--to {shown}: parent directory {path.parent} does not exist")
    return path


def export_model(
    run_dir: str | os.PathLike, iid: str, to: str | os.PathLike, *, problem=None, data: RunData | None = None
) -> Path:
    """Write model `iid` of the run in `run_dir` to the new directory `to`; returns `to`."""
    to = check_target(to)
    refuse_damaged(run_dir, "")  # an edited or damaged run's model is not exported as a result
    data = data or RunData(run_dir, problem=problem)
    card = model_card_data(data, iid, max_lineage=None)
    ind = data.snapshot.get(iid)
    genome_bytes = None
    with data.store() as store:
        card["compute"] = store.get_meta("compute")  # device and dtype the run used (None: not recorded)
    if ind.weights_hash is not None:
        with data.store() as store:
            path = store.weights_path(ind.weights_hash)
            try:
                genome_bytes = path.read_bytes()
            except FileNotFoundError:
                raise UserError(f"{path}: weights file missing") from None
        actual = hashlib.sha256(genome_bytes).hexdigest()
        if actual != ind.weights_hash:
            raise WeightsIntegrityError(f"{path}: content hash {actual[:12]}… does not match its name")
    elif ind.x is not None and isinstance(data.problem, RebuildsWeights):  # a vector that stands for weights
        rebuilt = data.problem
        getattr(rebuilt, "ensure_setup", lambda: None)()  # its anchors, in a merge recipe's case
        genome_bytes = weights_bytes(rebuilt.weights_of(ind.x))
        card["weights_sha256"] = hashlib.sha256(genome_bytes).hexdigest()
    tmp = to.parent / f".{to.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()  # (not mkdtemp: its 0700 mode would stay on the renamed directory)
    except OSError as exc:
        raise UserError(f"--to {to}: cannot write ({exc.strerror})") from None
    try:
        files = []
        if genome_bytes is not None:
            (tmp / GENOME_FILE).write_bytes(genome_bytes)
            files.append(GENOME_FILE)
        if ind.x is not None:
            (tmp / "genome.json").write_text(json.dumps({"x": list(ind.x)}))
            files.append("genome.json")
        hook = data.problem.export_model if isinstance(data.problem, Exportable) else None
        exported = None
        if hook is not None and genome_bytes is not None:
            from safetensors.torch import load as st_load

            exported = hook(st_load(genome_bytes), tmp)
        hub_card = exported.pop("model_card", None) if isinstance(exported, dict) else None
        extra_readme = exported.pop("readme", None) if isinstance(exported, dict) else None
        card["splits"] = copy_splits(data, tmp)
        card.update(
            {
                "run": {"dir": str(data.root.resolve()), "name": data.name},
                "problem": data.recipe.get("problem"),
                "recipe": yaml.safe_load(data.recipe_text()) if (data.root / "config.yaml").exists() else None,
                "recipe_yaml": data.recipe_text(),
                "export": exported,
                "files": sorted(files + [p.name for p in tmp.iterdir() if p.name not in files]) + [CARD_FILE],
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "evofair_version": _version(),
            }
        )
        card["files"] = sorted(card["files"] + [README_FILE])
        if hub_card is not None:  # the problem's model is loadable: a Hugging Face model card
            from evofair.explorer.hf_card import model_card_markdown

            (tmp / README_FILE).write_text(model_card_markdown(card, hub_card))
        else:
            (tmp / README_FILE).write_text(readme(card) + (f"\n{extra_readme}" if extra_readme else ""))
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=1, default=str))
        if to.exists():
            to.rmdir()  # checked empty above
        os.rename(tmp, to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return to


def copy_splits(data: RunData, to: Path) -> dict[str, Any] | None:
    """The run's splits.json (its rows per split), checked against the sha256 the run recorded;
    returns what the model card says about it (None: the run recorded no splits)."""
    from evofair.analysis.splits_file import SPLITS_FILE, SPLITS_META, read_splits

    if not (data.root / SPLITS_FILE).is_file():
        return None
    with data.store() as store:
        about = read_splits(data.root, store.get_meta(SPLITS_META)).get("about")
    shutil.copyfile(data.root / SPLITS_FILE, to / SPLITS_FILE)
    return {"file": SPLITS_FILE, "about": about}


def readme(card: dict[str, Any]) -> str:
    """The model card for people: every metric on every split, with its bootstrap interval on test."""
    iv = card.get("intervals") or {}
    bounds = iv.get("metrics", {})
    splits = list(card["metrics"])
    names = list(dict.fromkeys(n for s in splits for n in card["metrics"][s]))
    objectives = {o["name"]: o["direction"] for o in card.get("objectives", [])}
    level = f"{iv['level']:.0%}" if iv else ""
    lines = [
        f"# Model {card['id']} of run {card.get('run', {}).get('name', '?')}",
        "",
        f"Made by {card['made_by']} (generation {card['generation']}); genome sha256 `{card['weights_sha256']}`. "
        "Everything below is also in `model_card.json`.",
        "",
        "| metric | " + " | ".join(splits) + (f" | {iv['split']} {level} interval |" if iv else " |"),
        "|---|" + "---|" * (len(splits) + bool(iv)),
    ]
    for n in names:
        label = f"{n} ({'lower' if objectives[n] == 'min' else 'higher'} is better)" if n in objectives else n
        cells = [f"{v:.4f}" if isinstance(v := card["metrics"][s].get(n), float) else "–" for s in splits]
        if iv:
            cells.append(f"[{bounds[n][0]:.4f}, {bounds[n][1]:.4f}]" if n in bounds else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if iv:
        lines.append(
            f"Intervals: {iv['method']}, {iv['n_boot']} resamples of the {iv['split']} split; a model whose "
            "interval overlaps this one's is not distinguishable from it on that metric."
        )
    else:
        lines.append("No confidence intervals: the run's problem gives no per-example outputs (point estimates only).")
    return "\n".join(lines + _problem_sections(card)) + "\n"


def _problem_sections(card: dict[str, Any]) -> list[str]:
    """The problem's own card (per-group numbers, decision thresholds) as sections: what a model
    reads at prediction time, such as the sensitive attribute, belongs on the page people read and
    not only in model_card.json."""
    lines: list[str] = []
    for title, rows in (card.get("problem_card") or {}).items():
        lines += ["", f"## {title}", ""]
        if isinstance(rows, str):
            lines.append(rows)
        elif rows:
            cols = list(dict.fromkeys(k for row in rows for k in row))
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(str(row.get(c, "–")) for c in cols) + " |" for row in rows]
    return lines


def _version() -> str:
    """The installed evofair's version (from its metadata: importing the package itself would pull in
    the whole API, a layer above the explorer)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evofair")
    except PackageNotFoundError:
        return "?"


def summary(to: Path) -> str:
    card: dict[str, Any] = json.loads((to / CARD_FILE).read_text())
    return f"wrote {to} ({', '.join(card['files'])})"
