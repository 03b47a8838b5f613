"""Coefficients per layer block: which tensors each block of a merge recipe mixes.

With `blocks: [prefix, ...]` a recipe holds one coefficient per anchor *for each block* (as
Sakana's evolutionary merge weighs each layer's sources separately), so one layer may come
mostly from an accurate anchor and another from a fair one. A tensor belongs to the first block
whose prefix names it (the prefix itself, or the prefix then "."); a tensor no prefix names (a
head's carried fairness weight, say) is mixed by the first block's coefficients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from evofair.errors import UserError


def tensors_by_block(names: Iterable[str], prefixes: Sequence[str]) -> list[list[str]]:
    """Each block's tensor names, in name order; a prefix that names no tensor is a recipe error."""
    names = sorted(names)
    blocks: list[list[str]] = [[] for _ in prefixes]
    for name in names:
        blocks[next((b for b, p in enumerate(prefixes) if _names(p, name)), 0)].append(name)
    for b, prefix in enumerate(prefixes):
        if not any(_names(prefix, name) for name in blocks[b]):
            shown = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
            raise UserError(
                f"problem.args.blocks[{b}]: {prefix!r} names no tensor of the anchors that an earlier prefix "
                f"has not taken (expected a prefix of: {shown})"
            )
    return blocks


def _names(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")
