"""Reaching and sizing a Ray cluster: pure functions of its resources, and a fast check of its address.

Sizing: the number of actors is what the cluster's live nodes can place given every resource an
actor asks for (CPUs, GPUs, custom resources), or the recipe's `num_workers`; a request that cannot
be placed is a one-line `UserError`. The address is probed over TCP and gRPC first, because
`ray.init` retries an address that nothing answers for a minute or more. Tested without Ray.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping, Sequence

from evofair.errors import UserError

CONNECT_TIMEOUT_S = 5.0  # a GCS that does not accept a TCP connection in 5 s is not there
# Ray keeps resource amounts in units of 1/10,000; this absorbs float error in amount/request.
_EPS = 1e-6


def task_demand(num_cpus: float, num_gpus: float, resources: Mapping[str, float] | None = None) -> dict[str, float]:
    """The resources one actor asks for, zeros left out (Ray bundles refuse zero amounts)."""
    demand = {"CPU": float(num_cpus), "GPU": float(num_gpus), **{k: float(v) for k, v in dict(resources or {}).items()}}
    return {k: v for k, v in demand.items() if v > 0}


def placeable(nodes: Sequence[Mapping[str, float]], demand: Mapping[str, float]) -> int:
    """How many actors asking for `demand` fit on these nodes, each actor whole on one node."""
    return sum(min(math.floor(node.get(r, 0.0) / amount + _EPS) for r, amount in demand.items()) for node in nodes)


def describe(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "nothing"


def size_actors(nodes: Sequence[Mapping[str, float]], demand: Mapping[str, float], num_workers: int | None) -> int:
    """Actor count for this cluster, or a one-line `UserError` when the request cannot be placed."""
    capacity = placeable(nodes, demand)
    if capacity == 0:
        totals = {r: sum(n.get(r, 0.0) for n in nodes) for r in demand}
        largest = {r: max((n.get(r, 0.0) for n in nodes), default=0.0) for r in demand}
        raise UserError(
            f"executor: no node of the Ray cluster can place an actor asking for {describe(demand)} "
            f"(cluster total {describe(totals)}; largest node {describe(largest)}); lower "
            "num_cpus_per_task / num_gpus_per_task / resources_per_task, or add such a node"
        )
    if num_workers is not None and num_workers > capacity:
        raise UserError(
            f"executor.num_workers {num_workers}: the Ray cluster can place at most {capacity} actors "
            f"asking for {describe(demand)} each; set num_workers <= {capacity} or leave it unset"
        )
    return num_workers or capacity


def gcs_host_port(address: str) -> tuple[str, int] | None:
    """(host, port) to probe for a Ray address, or None for `auto`/`local` (Ray finds those itself)."""
    if address in ("auto", "local"):
        return None
    _, sep, rest = address.partition("://")  # ray://HOST:PORT or HOST:PORT
    if not sep:
        rest = address
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"executor.address {address}: expected HOST:PORT of the Ray head's GCS (6379 by default, "
            "as `ray start --head` prints it), ray://HOST:PORT, or auto"
        )
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection first: `ray.init` retries an address that nothing answers for a minute or more."""
    target = gcs_host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UserError(
            f"executor.address {address}: cannot connect ({reason}); is the Ray head up, and is this "
            "its GCS port (6379 by default)?"
        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return  # a plaintext handshake would fail against a TLS GCS
    import grpc  # the GCS (and the ray:// client server) speak gRPC: a port that accepts but never
    # completes an HTTP/2 handshake would make ray.init retry for minutes

    channel = grpc.insecure_channel(f"{target[0]}:{target[1]}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise UserError(
            f"executor.address {address}: something accepts connections there but does not answer as "
            f"a Ray GCS within {timeout:g} s; is this the head's GCS port (6379 by default)?"
        ) from None
    finally:
        channel.close()
