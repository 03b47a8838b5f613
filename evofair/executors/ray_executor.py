"""Ray executor: actors keep the problem (data, base model, cached features) resident.

Tasks move plans and weights, never datasets. Results come back in plan order, so the driver's
store sees the same sequence as with the serial executor. A realise task is one plan, or one group
of `Executor.plan_groups` (offspring the problem trains together, e.g. stacked LoRA adapters),
which the actor realises with `pipeline.realise_all` exactly as the serial executor does.

Weights take one of two paths, decided by `attach_store` once the actors are up:
- shared store (the run directory is on a filesystem every actor sees: the driver's machine, or a
  shared mount at the same path): actors read parents from the store and write each offspring there
  themselves (content-addressed, hashed on the actor); only keys cross the object store and the
  driver only commits keys and metrics. Detected, not assumed: the driver writes a probe file with
  a random token in `weights/`, each actor must read it and write its own answer there, and the
  driver must see every answer;
- otherwise (a remote cluster without shared storage, or `executor.shared_store: off`): each
  parent's weights are put in the object store once per generation, offspring weights come back to
  the driver, which writes them and sends them out again for evaluation.
`wire` counts the weight bytes and keys that crossed, per run (an `object_store` event).

Sizing (`connect`, before the driver writes anything; the pure functions are in `ray_cluster`): the
number of actors is what the cluster's live nodes can place given every resource an actor asks for
(CPUs, GPUs, custom resources), or the recipe's `num_workers`. The actors are reserved as one
placement group with a timeout, so a request the cluster cannot place is a one-line `UserError`
within seconds, never a hang.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from evofair.core import failpoints
from evofair.core.individual import Weights
from evofair.core.registry import component
from evofair.engine.pipeline import Plan, Realised
from evofair.errors import UserError
from evofair.executors.base import Executor, ExecutorArgs, Made, WorkerError, chunks, merge_metrics, tensor_bytes
from evofair.executors.ray_cluster import describe, probe, size_actors, task_demand
from evofair.executors.ray_worker import PROBE, RayWorker, error_summary

log = logging.getLogger("evofair.ray")
PROBE_TIMEOUT_S = 60.0


class RayArgs(ExecutorArgs):
    """`executor: {name: ray, ...}`: where the cluster is and what each actor asks of it."""

    address: str | None = Field(
        None, description="the Ray head's GCS HOST:PORT, ray://HOST:PORT or auto; unset: start a local Ray"
    )
    num_workers: int | None = Field(None, ge=1, description="actors; unset: as many as the cluster can place")
    num_cpus_per_task: float = Field(1, gt=0, le=1024)
    num_gpus_per_task: float | None = Field(
        None,
        ge=0,
        le=64,
        description="GPUs per Ray actor; unset: 1 when the "
        "cluster has GPUs (one actor per GPU), else 0; 0 keeps actors off GPUs",
    )
    resources_per_task: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per actor, e.g. {accelerator_type:H100: 0.001}"
    )
    max_retries: int = Field(3, ge=0, description="restarts of a dead actor (and retries of its task)")
    placement_timeout_s: float = Field(
        60, gt=0, description="seconds to wait for the cluster to free the actors' resources"
    )
    start_timeout_s: float = Field(
        1800, gt=0, description="seconds each actor may take to build its problem (data, features)"
    )
    shared_store: Literal["auto", "off"] = Field(
        "auto",
        description="auto: workers read parents from and write offspring to the run directory when "
        "every worker sees it (checked at start; a local cluster or a shared mount), only keys pass through "
        "the driver; off: weights always travel through the driver and Ray's object store",
    )

    @field_validator("resources_per_task")
    @classmethod
    def _custom_resources(cls, resources):
        for name, amount in resources.items():
            if name in ("CPU", "GPU", "memory", "object_store_memory") or not name.strip():
                raise PydanticCustomError(
                    "resource",
                    f"{name!r}: set CPUs and GPUs with num_cpus_per_task / "
                    "num_gpus_per_task; this is for custom resources only",
                )
            if not 0 < amount < float("inf"):
                raise PydanticCustomError("resource", f"{name}: expected an amount > 0, got {amount}")
        return resources


@component("executor", "ray", RayArgs)
class RayExecutor(Executor):
    """Ray actors, each holding the problem resident, on this machine or a cluster (`address`)."""

    def __init__(
        self,
        eval_chunk: int = 32,
        num_workers: int | None = None,
        address: str | None = None,
        num_cpus_per_task: float = 1,
        num_gpus_per_task: float | None = None,
        max_retries: int = 3,
        resources_per_task: Mapping[str, float] | None = None,
        placement_timeout_s: float = 60,
        start_timeout_s: float = 1800,
        shared_store: str = "auto",
    ):
        super().__init__(eval_chunk)
        self.shared_store_mode = shared_store  # "auto": probe the run directory; "off": weights via the driver
        self.root: str | None = None
        self.num_workers = num_workers
        self.address = address
        self.num_cpus = num_cpus_per_task
        self.num_gpus = num_gpus_per_task
        self.resources = dict(resources_per_task or {})
        self.max_retries = max_retries
        self.placement_timeout_s = placement_timeout_s
        self.start_timeout_s = start_timeout_s
        self._started_ray = False
        self.workers: list = []
        self.placement: list[dict[str, Any]] = []  # each actor's pid, node and GPU ids, from its ping
        self._pg: Any = None  # a ray PlacementGroup once reserved
        self.n_actors = 0
        self.demand: dict[str, float] = {}

    # -- reaching and sizing the cluster ---------------------------------------------------------
    def connect(self) -> None:
        """Join (or start) Ray and size the actors; every failure is a one-line `UserError`."""
        import ray

        if not ray.is_initialized():
            if self.address:
                probe(self.address)
            # log_to_driver: what workers print (warnings, their own logs) reaches the driver's output;
            # Ray's own INFO lines are quieted.
            kwargs: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING}
            kwargs.update({"address": self.address} if self.address else {"include_dashboard": False})
            try:
                ray.init(**kwargs)
            except Exception as exc:  # ConnectionError, a node that timed out starting, ...: one line
                text = " ".join(str(exc).split())[:300]
                raise UserError(
                    f"executor.address {self.address or '(local)'}: cannot join the Ray cluster ({text})"
                ) from None
            self._started_ray = True
        try:
            nodes = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
            gpus = self.num_gpus
            if gpus is None:  # one actor per GPU on a GPU cluster; `num_gpus_per_task: 0` opts out
                gpus = 1.0 if any(n.get("GPU", 0) > 0 for n in nodes) else 0.0
            self.demand = task_demand(self.num_cpus, gpus, self.resources)
            self.n_actors = size_actors(nodes, self.demand, self.num_workers)
            self._reserve()
        except BaseException:
            self.close()
            raise

    def _reserve(self) -> None:
        """One placement group for all actors: placed together within the timeout, or a one-line error."""
        import ray
        from ray.util.placement_group import placement_group

        self._pg = pg = placement_group([dict(self.demand) for _ in range(self.n_actors)], strategy="SPREAD")
        if not pg.wait(timeout_seconds=self.placement_timeout_s):
            available = ray.available_resources()
            raise UserError(
                f"executor: the Ray cluster could not place {self.n_actors} actors asking for "
                f"{describe(self.demand)} within {self.placement_timeout_s:g} s (available now: "
                f"{describe({r: available.get(r, 0.0) for r in self.demand})}; other jobs hold the "
                "rest?); set executor.num_workers lower or executor.placement_timeout_s higher"
            )

    def start(self, factory, problem=None) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self._pg is None:
            self.connect()
        custom = {k: v for k, v in self.demand.items() if k not in ("CPU", "GPU")}
        actor = ray.remote(RayWorker)
        options = dict(
            num_cpus=self.demand.get("CPU", 0),
            num_gpus=self.demand.get("GPU", 0),
            resources=custom or None,
            max_restarts=self.max_retries,
            max_task_retries=self.max_retries,
        )
        self.workers = [
            actor.options(
                **options,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=self._pg, placement_group_bundle_index=i
                ),
            ).remote(factory)
            for i in range(self.n_actors)
        ]
        try:
            self.placement = ray.get([w.ping.remote() for w in self.workers], timeout=self.start_timeout_s)
        except GetTimeoutError:
            raise UserError(
                f"executor: the {self.n_actors} Ray actors did not finish building the problem within "
                f"{self.start_timeout_s:g} s (executor.start_timeout_s)"
            ) from None
        except RayActorError as exc:
            raise WorkerError(
                f"a Ray worker failed while building the problem: {error_summary(exc)}", str(exc)
            ) from None
        log.info("Ray: %d actors, each %s", self.n_actors, describe(self.demand))

    def attach_store(self, root) -> None:
        """Take the shared-store path if every actor reads the driver's probe file in the run's
        `weights/` folder and the driver reads every actor's answer there; else keep weights on the wire."""
        import ray
        from ray.exceptions import GetTimeoutError

        from evofair.store.safe_io import atomic_write_bytes

        self.shared_store, self.root = False, None
        if self.shared_store_mode == "off" or not self.workers:
            return
        root = Path(root).resolve()  # actors do not share the driver's working directory
        weights, token = root / "weights", secrets.token_hex(8)
        probe = weights / f"{PROBE}{token}"
        answers = [weights / f"{PROBE}{token}-{i}" for i in range(len(self.workers))]
        weights.mkdir(exist_ok=True)
        atomic_write_bytes(probe, token.encode(), within=root)
        try:
            seen = ray.get(
                [w.answer_probe.remote(str(root), token, i) for i, w in enumerate(self.workers)],
                timeout=PROBE_TIMEOUT_S,
            )
            shared = all(seen) and all(a.is_file() and a.read_text() == token for a in answers)
        except GetTimeoutError:
            shared = False
        finally:
            for path in [probe, *answers]:
                path.unlink(missing_ok=True)
        if shared:
            self.shared_store, self.root = True, str(root)
        log.info(
            "Ray: %s",
            "workers read and write weights in the run directory (shared store)"
            if shared
            else "the run directory is not shared with every worker: weights travel through the driver",
        )

    # -- work --------------------------------------------------------------------------------
    def _map(self, submit, items, phase: str | None = None, sizes: Sequence[int] | None = None):
        """Submit items round-robin-by-availability to the actors; results in item order. A task that
        raises on a worker, or a worker that died more than max_retries times, is one `WorkerError`.
        With `phase`, progress is reported as results arrive (`sizes`: how many units each item is).
        The tensors in the items and the results are counted in `wire`."""
        from ray.exceptions import RayActorError, RayTaskError
        from ray.util import ActorPool

        self.wire.weight_bytes_out += tensor_bytes(items)
        sizes = list(sizes) if sizes is not None else [1] * len(items)
        total, done, results = sum(sizes), 0, []
        try:
            for result in ActorPool(self.workers).map(submit, items):
                results.append(result)
                done += sizes[len(results) - 1]
                if phase is not None:
                    self.report(phase, done, total)
            self.wire.weight_bytes_in += tensor_bytes(results)
            return results
        except RayTaskError as exc:
            text = str(exc)
            log.error("a task failed on a Ray worker:\n%s", text)
            raise WorkerError(f"a task failed on a Ray worker: {error_summary(exc)}", text) from None
        except RayActorError as exc:
            text = str(exc)
            log.info("a Ray worker died:\n%s", text)  # Ray's account of the death: for the run's events
            raise WorkerError(
                f"a Ray worker died and executor.max_retries={self.max_retries} restarts are used up ({error_summary(exc)})",
                text,
            ) from None

    # -- through the driver (the base class's `realise`/`evaluate_stored` build on these) ----------
    def realise_weights(self, plans: Sequence[Plan], weights_of: Callable[[str], Weights]) -> list[Realised]:
        import ray

        refs = {}
        for plan in plans:
            for parent in plan.parents:
                if parent.key not in refs:
                    weights = weights_of(parent.key)
                    self.wire.weight_bytes_out += tensor_bytes(weights)
                    refs[parent.key] = ray.put(weights)
        self.wire.offspring += len(plans)

        def submit(w, group: list[Plan]):
            if len(group) == 1:  # one task per plan, as without stacking
                return w.realise.remote(group[0], *[refs[r.key] for r in group[0].parents])
            keys = list(dict.fromkeys(r.key for p in group for r in p.parents))
            return w.realise_group.remote(group, keys, *[refs[k] for k in keys])

        return self._realise_groups(plans, submit)

    def refine_stacks(self, plans: Sequence[Plan]) -> dict[str, int]:
        """Asked of one actor: every actor builds the same problem from the same factory."""
        return self._map(lambda w, ps: w.refine_stacks.remote(ps), [list(plans)])[0]

    def _realise_groups(self, plans: Sequence[Plan], submit) -> list[Realised]:
        """One task per `plan_groups` group (`submit(actor, group)`: a plan alone returns one
        `Realised`, a group a list), results back in plan order."""
        groups = self.plan_groups(plans)
        made = self._map(
            submit, [[plans[i] for i in g] for g in groups], self.realise_phase(plans), [len(g) for g in groups]
        )
        return self.ungroup(groups, [m if isinstance(m, list) else [m] for m in made])

    def evaluate(self, genomes: Sequence[Any]):
        batches = [list(genomes[s]) for s in chunks(len(genomes), self.eval_chunk)]
        parts = self._map(lambda w, chunk: w.evaluate.remote(chunk), batches, "evaluate", [len(b) for b in batches])
        return merge_metrics(parts)

    # -- shared store: the actors read and write the run's weights, only keys pass ---------------
    def realise(self, plans: Sequence[Plan], store) -> list[Made]:
        if not self.shared_store:
            return super().realise(plans, store)
        self.wire.offspring += len(plans)
        self.wire.keys += sum(len(p.parents) + 1 for p in plans)  # parents' keys out, the child's back
        made = self._realise_groups(
            plans,
            lambda w, g: (
                w.realise_stored.remote(self.root, g[0]) if len(g) == 1 else w.realise_stored_group.remote(self.root, g)
            ),
        )
        failpoints.hit("kill_after_worker_writes")  # files on disk, no row yet: orphans until committed
        out = []
        for r in made:
            assert r.key is not None  # each actor returns the key of the weights it wrote
            out.append(Made(r.key, r.log))
        store.require_weights([m.key for m in out])
        return out

    def evaluate_stored(self, keys: Sequence[str], store):
        if not self.shared_store:
            return super().evaluate_stored(keys, store)
        self.wire.keys += len(keys)
        batches = [list(keys[s]) for s in chunks(len(keys), self.eval_chunk)]
        parts = self._map(
            lambda w, chunk: w.evaluate_stored.remote(self.root, chunk), batches, "evaluate", [len(b) for b in batches]
        )
        return merge_metrics(parts)

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            for w in self.workers:
                ray.kill(w)
            if self._pg is not None:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(self._pg)
        self.workers, self._pg = [], None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
        super().close()
