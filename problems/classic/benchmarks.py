"""Classic test problems (ZDT1–3, DTLZ2) from pymoo, for checking the engine against pymoo itself."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field
from pymoo.problems import get_problem

from evofair.core.problem import Objective, VectorProblem
from evofair.core.registry import Args, component

MAX_VARS = 100_000  # a sane bound, checked with the recipe: 1e11 variables would only exhaust memory


class ZDTParams(Args):
    n_var: int = Field(30, ge=2, le=MAX_VARS)


class _PymooVectorProblem(VectorProblem):
    """Wraps a pymoo test problem. Its functions are deterministic, so val and test coincide, and
    row-wise (each row of X evaluated on its own), so a generation is one batch."""

    pymoo_name: str = ""
    splits_coincide = True
    rowwise = True

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self._p = self._make()
        self.n_var = self._p.n_var
        self.xl, self.xu = np.asarray(self._p.xl, float), np.asarray(self._p.xu, float)
        self.objectives = tuple(Objective(f"f{i + 1}") for i in range(self._p.n_obj))

    def _make(self):
        return get_problem(self.pymoo_name, n_var=self.params.n_var)

    def evaluate(self, genomes: Sequence[np.ndarray], split):
        F = self._p.evaluate(np.atleast_2d(np.asarray(genomes, dtype=float)), return_values_of=["F"])
        return {o.name: F[:, j] for j, o in enumerate(self.objectives)}


@component("problem", "zdt1", ZDTParams)
class ZDT1(_PymooVectorProblem):
    """ZDT1: convex front, 2 objectives (pymoo)."""

    name = "zdt1"
    pymoo_name = "zdt1"
    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (1.1, 1.1)


@component("problem", "zdt2", ZDTParams)
class ZDT2(ZDT1):
    """ZDT2: concave front (pymoo)."""

    name = "zdt2"
    pymoo_name = "zdt2"


@component("problem", "zdt3", ZDTParams)
class ZDT3(ZDT1):
    """ZDT3: disconnected front (pymoo)."""

    name = "zdt3"
    pymoo_name = "zdt3"


class DTLZParams(Args):
    n_var: int = Field(12, ge=3, le=MAX_VARS)
    n_obj: int = Field(3, ge=2, le=100)


@component("problem", "dtlz2", DTLZParams)
class DTLZ2(_PymooVectorProblem):
    """DTLZ2: spherical front, any number of objectives (pymoo)."""

    name = "dtlz2"
    pymoo_name = "dtlz2"
    objectives = (Objective("f1"), Objective("f2"), Objective("f3"))
    default_hv_ref = (1.1, 1.1, 1.1)

    def _make(self):
        return get_problem("dtlz2", n_var=self.params.n_var, n_obj=self.params.n_obj)

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.default_hv_ref = (1.1,) * self._p.n_obj
