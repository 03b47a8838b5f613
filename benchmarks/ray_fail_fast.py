"""How fast a Ray request that cannot work becomes one line instead of a hang.

Seconds from the call to the `UserError`, in this process, for: a GCS address where nothing
listens; one that accepts connections but never answers; a Jobs API endpoint that never answers
(`EVOFAIR_HTTP_TIMEOUT_S=2`); and a recipe asking for 0.5 GPU per actor on a local Ray without GPUs
(Ray's own start-up timed separately). Before these changes the middle two and the last hung.

    .venv/bin/python benchmarks/ray_fail_fast.py
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from evofair.errors import UserError

RECIPE = {
    "name": "fail_fast",
    "problem": {"name": "toy_mlp", "args": {"n_train": 64, "n_eval": 32}},
    "algorithm": {"pop_size": 4, "generations": 2},
    "operators": {"crossover": {"name": "uniform"}, "mutation": {"name": "gaussian", "args": {"sigma": 0.05}}},
    "executor": {"name": "ray", "num_gpus_per_task": 0.5},
}


@contextlib.contextmanager
def silent_port():
    """A socket that accepts connections and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def loop():
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in held:
            conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_to_error(fn) -> tuple[float, str]:
    t = time.perf_counter()
    try:
        fn()
    except UserError as exc:
        return time.perf_counter() - t, " ".join(str(exc).split())[:110]
    raise AssertionError("expected a UserError")


def main() -> None:
    import evofair
    from evofair.executors import ray_jobs as jobs

    rows = []
    with tempfile.TemporaryDirectory() as tmp:

        def run(address: str | None, out: str):
            recipe = copy.deepcopy(RECIPE)
            recipe["executor"]["address"] = address
            evofair.run(recipe, Path(tmp) / out, progress=False)

        rows.append(("GCS address, nothing listening", *seconds_to_error(lambda: run(f"127.0.0.1:{free_port()}", "a"))))
        with silent_port() as port:
            rows.append(("GCS address, accepts but silent", *seconds_to_error(lambda: run(f"127.0.0.1:{port}", "b"))))
            os.environ["EVOFAIR_HTTP_TIMEOUT_S"] = "2"
            rows.append(
                (
                    "Jobs API, accepts but silent (timeout 2 s)",
                    *seconds_to_error(lambda: jobs.job_info(f"http://127.0.0.1:{port}", "raysubmit_x")),
                )
            )
        import ray

        t = time.perf_counter()
        try:
            ray.init(num_cpus=2, num_gpus=0, include_dashboard=False)
            print(f"(local Ray start-up, not counted below: {time.perf_counter() - t:.1f} s)")
            rows.append(("0.5 GPU per actor, Ray without GPUs", *seconds_to_error(lambda: run(None, "c"))))
        except Exception as exc:  # a loaded machine: Ray gives its raylet 30 s to register
            print(f"(local Ray did not start: {' '.join(str(exc).split())[:120]})")
        finally:
            ray.shutdown()
        left = [p.name for p in Path(tmp).iterdir()]
    print("| case | seconds to the one-line error | message (start) |\n|---|---|---|")
    for name, seconds, message in rows:
        print(f"| {name} | {seconds:.2f} | {message} |")
    print(f"run folders left behind: {left or 'none'}")


if __name__ == "__main__":
    main()
