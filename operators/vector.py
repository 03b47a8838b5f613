"""Real-vector operators for problems such as ZDT/DTLZ: pymoo's own SBX and polynomial mutation."""

from __future__ import annotations

from pydantic import Field
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM

from evofair.core.registry import Args, component


class SBXArgs(Args):
    eta: float = Field(15, gt=0)
    prob: float = Field(0.9, ge=0, le=1)


@component("vector_crossover", "sbx", SBXArgs)
def sbx(args: SBXArgs):
    """Simulated binary crossover (pymoo's defaults for NSGA-II)."""
    return SBX(eta=args.eta, prob=args.prob)


class PMArgs(Args):
    eta: float = Field(20, gt=0)
    prob_var: float | None = Field(None, gt=0, le=1, description="per-variable probability (None: 1/n_var)")


@component("vector_mutation", "pm", PMArgs)
def pm(args: PMArgs):
    """Polynomial mutation (pymoo's defaults for NSGA-II)."""
    return PM(eta=args.eta, prob_var=args.prob_var)
