"""evofair's built-in problems (installed as `evofair.problems`), one package per method family:

- `classic`: ZDT/DTLZ benchmarks and a toy MLP problem (engine tests, demos);
- `fapareto`: FaPareto on BiasBios — classifier heads or LoRA fine-tunes of a text encoder;
- `fairclass`: `fair_classification` — the user's own table, target and sensitive columns;
- `fairpo`: FairPO on MULAN multi-label data — losses, the `fairpo` refiner, the paper's table;
- `hyperdpo`: HyperDPO on LETOR and HH-RLHF — listwise DPO, the `hyperdpo` refiner, tables.

Each family owns its loaders, model code, losses and experiments, and depends only on evofair's
contracts and on `evofair.operators`. Components are announced as entry points in pyproject.toml,
the same mechanism a third-party package uses (docs/writing-a-problem.md).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_data(folder: str) -> Path:
    """A dataset folder shipped with evofair: the repository's `data/` in a clone, the installed
    `evofair.datasets` package otherwise (the same files)."""
    return Path(str(resources.files("evofair.datasets").joinpath(folder)))
