"""Ray executor: actors keep the problem (data, base model, cached features) resident.

Tasks move plans and weights, never datasets. Each parent's weights are put in the object store
once per generation. Results come back in plan order, so the driver's store sees the same
sequence as with the serial executor.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from evofair.executors.base import Executor, ProblemFactory, chunks, evaluate_all_splits, merge_metrics
from evofair.individual import Weights
from evofair.pipeline import Operators, Plan, Realised, realise


class _Worker:
    """Body of a Ray actor: builds the problem once, then serves tasks."""

    def __init__(self, factory: ProblemFactory):
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.problem = factory.build().ensure_setup()
        self.ops = Operators.load(factory.paths)

    def realise(self, plan: Plan, *parents: Weights) -> Realised:
        return realise(plan, list(parents), self.problem, self.ops)

    def evaluate(self, genomes):
        return evaluate_all_splits(self.problem, genomes)

    def ping(self) -> int:
        return os.getpid()


class RayExecutor(Executor):
    def __init__(self, eval_chunk: int = 32, num_workers: int | None = None, address: str | None = None,
                 num_cpus: float = 1, num_gpus: float = 0, max_retries: int = 3):
        super().__init__(eval_chunk)
        self.num_workers = num_workers
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self._started_ray = False

    def start(self, factory: ProblemFactory, problem=None) -> None:
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs = {"address": self.address, "log_to_driver": False}
            ray.init(**kwargs)
            self._started_ray = True
        n = self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
        actor = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=self.max_retries,
                           max_task_retries=self.max_retries)(_Worker)
        self.workers = [actor.remote(factory) for _ in range(n)]
        ray.get([w.ping.remote() for w in self.workers])

    def _map(self, submit, items):
        """Submit items round-robin-by-availability to the actors; results in item order."""
        from ray.util import ActorPool

        return list(ActorPool(self.workers).map(submit, items))

    def realise(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        import ray

        refs = {}
        for plan in plans:
            for parent in plan.parents:
                if parent.key not in refs:
                    refs[parent.key] = ray.put(weights_of(parent.key))
        return self._map(lambda w, p: w.realise.remote(p, *[refs[r.key] for r in p.parents]), plans)

    def evaluate(self, genomes: Sequence[Any]):
        parts = self._map(lambda w, chunk: w.evaluate.remote(chunk),
                          [list(genomes[s]) for s in chunks(len(genomes), self.eval_chunk)])
        return merge_metrics(parts)

    def close(self) -> None:
        import ray

        for w in getattr(self, "workers", []):
            ray.kill(w)
        self.workers = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
