"""Everything in the driver process: the reference executor, and the fastest for small problems."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from evofair.core.individual import Weights
from evofair.core.registry import component
from evofair.engine.pipeline import Operators, Plan, Realised, realise_all
from evofair.executors.base import Executor, ExecutorArgs, chunks, evaluate_all_splits, merge_metrics


@component("executor", "serial", ExecutorArgs)
class SerialExecutor(Executor):
    """Everything in the driver process, one offspring after another (the reference)."""

    in_driver = True

    def start(self, factory, problem=None) -> None:
        self.problem = (problem or factory.build()).ensure_setup()
        self.ops = Operators.load(factory.paths if factory is not None else ())

    def realise_weights(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        # all plans at once: a problem that trains several offspring together gets them (pipeline.realise_all)
        phase = self.realise_phase(plans)
        return realise_all(
            plans,
            lambda p: [weights_of(r.key) for r in p.parents],
            self.problem,
            self.ops,
            lambda n: self.report(phase, n, len(plans)),
        )

    def evaluate(self, genomes: Sequence[Any]):
        parts = []
        size = max(1, len(genomes)) if getattr(self.problem, "rowwise", False) else self.eval_chunk
        for s in chunks(len(genomes), size):
            parts.append(evaluate_all_splits(self.problem, genomes[s]))
            self.report("evaluate", s.stop, len(genomes))
        return merge_metrics(parts)
