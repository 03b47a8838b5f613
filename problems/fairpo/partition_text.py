"""How a FairPO report names its privileged labels P, and how P was chosen.

P is either named by the recipe (`problem.args.privileged`) or chosen by the rule "the rarest
⌈q·C⌉ labels on train" (`privileged_fraction` q; problems/fairpo/mulan.py `privileged_labels`). A
reader judging a privileged-group gain must know which: a P picked by the rule is the data's rarest
labels, a named P is the user's choice and may not be rare at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def privileged_line(params, names: Sequence[str], n_labels: int, freq: Sequence[float] | None = None) -> str:
    """'Privileged labels P (how chosen): A, B.' — with each label's train frequency when given."""
    shown = ", ".join(f"{n} ({f:.3f})" for n, f in zip(names, freq)) if freq is not None else ", ".join(names)
    if params.privileged:
        how = f"named by the recipe (`privileged`), {len(names)} of {n_labels} labels"
    else:
        q = params.privileged_fraction
        how = f"rarest ⌈{q:g}·C⌉ = {max(1, math.ceil(q * n_labels))} of {n_labels} labels on train"
    freq_note = ", train frequency" if freq is not None else ""
    return f"Privileged labels P ({how}{freq_note}): {shown}."
