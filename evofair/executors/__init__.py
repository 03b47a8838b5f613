"""Executors: where offspring are realised and evaluated (serial in the driver, or Ray actors).

The contract is in `evofair.executors.base`; `make_executor` builds the one a recipe names.
"""

from __future__ import annotations

from evofair.executors.base import (Executor, ProblemFactory, WorkerError, chunks,  # noqa: F401
                                    evaluate_all_splits, merge_metrics)


def make_executor(cfg) -> Executor:
    """Build the executor a recipe's `executor` section names."""
    if cfg.name == "serial":
        from evofair.executors.serial import SerialExecutor

        return SerialExecutor(eval_chunk=cfg.eval_chunk)
    from evofair.executors.ray_executor import RayExecutor

    return RayExecutor(eval_chunk=cfg.eval_chunk, num_workers=cfg.num_workers, address=cfg.address,
                       num_cpus=cfg.num_cpus_per_task, num_gpus=cfg.num_gpus_per_task,
                       resources=cfg.resources_per_task, max_retries=cfg.max_retries,
                       placement_timeout_s=cfg.placement_timeout_s, start_timeout_s=cfg.start_timeout_s,
                       shared_store=cfg.shared_store)
