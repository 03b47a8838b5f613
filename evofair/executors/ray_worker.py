"""The body of a Ray actor: the problem built once and kept resident, tasks served against it.

Kept apart from the driver's side (`ray_executor`) because it is what runs on the cluster's
nodes: it needs the problem and the operators, never the driver's store or its sizing logic.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evofair.core.individual import Weights
from evofair.engine.pipeline import Operators, Plan, Realised, realise_all, refine_stacks
from evofair.errors import UserError
from evofair.executors.base import evaluate_all_splits

PROBE = ".evofair-probe-"  # in the run's weights/ folder while the driver checks what the actors see
WORKER_CACHE = 16  # genomes an actor keeps in memory: parents are reused across a generation's plans


def answer_probe(root: str, token: str, index: int) -> bool:
    """On an actor: whether the driver's probe file is here with its token; if so, leave an answer
    file the driver must then see (both directions of a shared filesystem)."""
    from evofair.store.safe_io import atomic_write_bytes

    weights = Path(root) / "weights"
    try:
        if (weights / f"{PROBE}{token}").read_text() != token:
            return False
        atomic_write_bytes(weights / f"{PROBE}{token}-{index}", token.encode(), within=root)
        return True
    except (OSError, UserError):
        return False


class RayWorker:
    """Body of a Ray actor: builds the problem once, then serves tasks."""

    def __init__(self, factory):
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.problem = factory.build().ensure_setup()
        self.ops = Operators.load(factory.paths)
        self.cache: OrderedDict[str, Weights] = OrderedDict()

    def realise(self, plan: Plan, *parents: Weights) -> Realised:
        """One plan alone (a group of one: `realise_all`, so a stack of one where the problem stacks)."""
        return self.realise_group([plan], [r.key for r in plan.parents], *parents)[0]

    def realise_group(self, plans: Sequence[Plan], keys: Sequence[str], *parents: Weights) -> list[Realised]:
        """One group of `Executor.plan_groups`, as the serial executor realises it; `parents` are the
        weights of the parents named by `keys`, each once."""
        by_key = dict(zip(keys, parents, strict=True))
        return realise_all(plans, lambda p: [by_key[r.key] for r in p.parents], self.problem, self.ops)

    def refine_stacks(self, plans: Sequence[Plan]) -> dict[str, int]:
        return refine_stacks(plans, self.problem, self.ops)

    def evaluate(self, genomes):
        return evaluate_all_splits(self.problem, genomes)

    # -- the shared-store path: keys in, keys out ----------------------------------------------
    def answer_probe(self, root: str, token: str, index: int) -> bool:
        return answer_probe(root, token, index)

    def _stored(self, root: str, key: str) -> Weights:
        from evofair.store.weights_files import read_weights_file

        if key not in self.cache:
            self._keep(key, read_weights_file(Path(root), key))  # hash checked against the name
        self.cache.move_to_end(key)
        return dict(self.cache[key])

    def _keep(self, key: str, weights: Weights) -> None:
        self.cache[key] = weights
        self.cache.move_to_end(key)
        while len(self.cache) > WORKER_CACHE:
            self.cache.popitem(last=False)

    def realise_stored(self, root: str, plan: Plan) -> Realised:
        return self.realise_stored_group(root, [plan])[0]

    def realise_stored_group(self, root: str, plans: Sequence[Plan]) -> list[Realised]:
        """`realise_group` with parents read from and offspring written to the run's store."""
        from safetensors.torch import load as st_load

        from evofair.store.weights_files import write_weights_file

        out = []
        parents_of = lambda p: [self._stored(root, r.key) for r in p.parents]  # noqa: E731
        for made in realise_all(plans, parents_of, self.problem, self.ops):
            assert made.weights is not None
            key, data = write_weights_file(Path(root), made.weights)
            # kept as the stored bytes decode, so whichever actor evaluates it sees the same tensors
            self._keep(key, dict(st_load(data)))
            out.append(Realised(None, made.log, key))
        return out

    def evaluate_stored(self, root: str, keys: Sequence[str]):
        return evaluate_all_splits(self.problem, [self._stored(root, k) for k in keys])

    def ping(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "node_id": ctx.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}


def error_summary(exc: BaseException) -> str:
    """The last line of a worker's traceback: the exception type and message."""
    cause = getattr(exc, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).strip().splitlines()[-1]
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "…"
