"""The anytime plot: test hypervolume against training examples spent, sweep and pipeline, per seed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_anytime(rows: list[dict], path: Path, *, title: str) -> None:
    """One line per seed for the λ-sweep (its HV after every epoch) and the pipeline's points after
    every round (joined), on a shared axis of training examples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, r in enumerate(rows):
        color = f"C{k % 10}"
        sweep = r["anytime_sweep"]
        ax.plot(
            [n for n, _ in sweep],
            [hv for _, hv in sweep],
            color=color,
            alpha=0.55,
            lw=1.2,
            label="λ-sweep" if k == 0 else None,
        )
        pipe = r["anytime_pipeline"]
        ax.plot(
            [b for b, _, _ in pipe],
            [hv for _, _, hv in pipe],
            color=color,
            marker="o",
            lw=2.0,
            label="merge pipeline (each round)" if k == 0 else None,
        )
    ax.set_xlabel("training examples")
    ax.set_ylabel("test hypervolume (validate-selected)")
    ax.set_title(f"{title}: {len(rows)} seeds, one colour per seed")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
