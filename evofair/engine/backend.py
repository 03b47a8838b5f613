"""The engine's view of an evolutionary algorithm: ask for offspring, tell their objectives.

A backend owns selection and variation; it never evaluates. Items are real vectors (vector
problems) or `Plan`/`GenomeRef` objects (weights problems). Every item carries the id of the
stored individual once told, so the engine can record the surviving population by id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class Backend(ABC):
    @abstractmethod
    def ask(self) -> list[Any]:
        """Offspring to realise and evaluate (the initial population on the first call)."""

    @abstractmethod
    def tell(self, items: Sequence[Any], F: np.ndarray, ids: Sequence[str], G: np.ndarray | None = None) -> None:
        """The realised offspring (GenomeRef or x), their minimised objectives and store ids, and
        with `constraints:` their violations G (n, n_constraints; feasible where every g <= 0)."""

    @abstractmethod
    def population(self) -> tuple[list[str], np.ndarray]:
        """Ids and minimised objectives of the current population."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """JSON-able state needed, with the population, to continue after a restart."""

    @abstractmethod
    def restore(
        self,
        items: Sequence[Any],
        F: np.ndarray,
        ids: Sequence[str],
        state: dict[str, Any],
        G: np.ndarray | None = None,
    ) -> None:
        """Continue from a stored population (the inverse of `population` + `state`); G is
        recomputed from the stored metrics and the recipe, as `tell` got it."""


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
