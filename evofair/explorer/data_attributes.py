"""HTML `data-*` attributes for Dash components.

The explorer marks what it shows (`data-metric`, `data-split`, `data-id`, counts) so a browser test
can check the page against the store. Dash takes such attributes as extra keyword arguments, which
Python only accepts by unpacking a dict; typed as `dict[str, Any]` that dict is checked like Dash's
own untyped `**kwargs`, where a `dict[str, str]` would be matched against every typed argument.
"""

from __future__ import annotations

from typing import Any


def data_attributes(**values: str) -> dict[str, Any]:
    """`data_attributes(split="val", metric="error")` → `{"data-split": "val", "data-metric": "error"}`,
    to unpack into a component: `html.Td(text, **data_attributes(split="val"))`."""
    return {f"data-{name}": value for name, value in values.items()}
