"""The memetic loop: ask → plan → realise (merge, mutate, refine) → evaluate → store → tell.

Data flows one way: the backend proposes, the executor computes, the store records, the
backend is told. Everything a user sees afterwards is read back from the store.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from evofair.core.constraints import feasible_first, total_violation, violations
from evofair.core.genome import genome_of
from evofair.core.heap import YOUNG_THRESHOLD, steps_unscanned
from evofair.core.indicators import hypervolume
from evofair.engine.backend import Backend
from evofair.engine.offspring import realise_generation, told_items
from evofair.store.run_store import RunStore
from evofair.tracking.callbacks import CallbackList, GenerationInfo, ModelInfo
from evofair.tracking.progress import GenerationProgress, progress_bar

log = logging.getLogger("evofair.engine")

BAD_F = 1e12  # stands in for a non-finite objective so survival can still rank the individual


class Engine:
    def __init__(
        self,
        recipe,
        problem,
        store: RunStore,
        executor,
        *,
        progress: bool = True,
        callbacks: CallbackList | None = None,
    ):
        self.recipe = recipe
        self.problem = problem
        self.store = store
        self.executor = executor
        self.progress = progress
        self.callbacks = callbacks or CallbackList()
        # offspring done / total within a generation (executors report it; shown as a bar or log lines)
        self.generation_progress = GenerationProgress(progress, recipe.algorithm.generations)
        self.genome = genome_of(problem)
        self.backend = make_backend(recipe, problem)
        self.hv_ref = recipe.hv_ref or problem.default_hv_ref
        self.constraints = recipe.parsed_constraints
        self._cv: dict[str, float] = {}  # constraint violation of the population's members, by id
        self.evaluations = 0
        self.seconds = 0.0

    # -- one generation ----------------------------------------------------------------------
    def step(self, generation: int) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        items = self.backend.ask()
        if not items:
            return None
        self.generation_progress.begin(generation)
        self.executor.on_progress = self.generation_progress
        try:
            made = realise_generation(self, self.genome, generation, items)
        finally:
            self.generation_progress.close()
            self.executor.on_progress = None
        individuals, metrics = made.individuals, made.metrics
        F = self.problem.minimised(metrics["val"])
        bad = ~np.all(np.isfinite(F), axis=1)
        for i in np.flatnonzero(bad):
            self.store.log_event(
                "non_finite_objective",
                "objective was NaN/inf; ranked last",
                generation=generation,
                individual=individuals[i].id,
            )
        F = np.where(np.isfinite(F), F, BAD_F)
        G = self.violations(metrics["val"], len(individuals))
        ids = [ind.id for ind in individuals]
        self.backend.tell(made.told, F, ids, G)
        pop_ids, pop_F = self.backend.population()
        self.evaluations += len(individuals)
        self.seconds += time.perf_counter() - t0
        self._remember_cv(ids, G, pop_ids)
        stats = {**self.front_stats(pop_ids, pop_F), "evaluations": self.evaluations, "seconds": self.seconds}
        self.store.commit_generation(generation, individuals, pop_ids, stats, self.backend.state(), made.batch)
        log.debug(
            "generation %d: hv_val %s, %d on the front, %d evaluations, %.1f s",
            generation,
            stats["hv_val"],
            stats["n_front"],
            stats["evaluations"],
            stats["seconds"],
        )
        if self.callbacks:  # after the commit: a failing callback leaves the store consistent
            self._tell_callbacks(generation, individuals, pop_ids, stats)
        return stats

    def _tell_callbacks(self, generation: int, individuals, pop_ids, stats) -> None:
        names = self.problem.objective_names
        models = tuple(
            ModelInfo(
                generation=generation,
                id=ind.id,
                parents=tuple(ind.parents),
                metrics={split: dict(per) for split, per in ind.metrics.items()},  # copies
                objectives={n: ind.metrics.get("val", {}).get(n) for n in names},
            )
            for ind in individuals
        )
        after = (
            f"; generation {generation} is committed: `evofair run --resume {self.store.root}` continues "
            "(fix the callback, or drop it with --set callbacks=[]: callbacks never change results)"
        )
        for model in models:
            self.callbacks.call("on_model_evaluated", model, after)
        info = GenerationInfo(
            generation=generation,
            generations=self.recipe.algorithm.generations,
            hv_val=stats["hv_val"],
            n_front=stats["n_front"],
            evaluations=stats["evaluations"],
            seconds=stats["seconds"],
            population=tuple(pop_ids),
            models=models,
        )
        self.callbacks.call("on_generation_end", info, after)

    # -- constraints -----------------------------------------------------------------------
    def violations(self, val_metrics, n: int) -> np.ndarray | None:
        """pymoo's G (n, n_constraints) from validation metrics; None for a run without constraints."""
        if not self.constraints:
            return None
        return violations(self.constraints, val_metrics, n)

    def _remember_cv(self, ids, G, pop_ids) -> None:
        if G is None:
            return
        self._cv.update(zip(ids, total_violation(G)))
        self._cv = {i: self._cv[i] for i in pop_ids}

    def front_stats(self, pop_ids, pop_F) -> dict[str, Any]:
        """The population's front, feasibility-first; HV counts its feasible members only (0 if none)."""
        cv = np.array([self._cv[i] for i in pop_ids]) if self.constraints else None
        front = feasible_first(pop_F, cv)
        scored = front if cv is None else front[cv[front] <= 0]
        hv = hypervolume(pop_F[scored], self.hv_ref) if self.hv_ref else None
        return {"hv_val": hv, "n_front": int(len(front))}

    # -- the run -----------------------------------------------------------------------------
    def _resume_point(self) -> int:
        """Continue after the last committed generation, rebuilding the backend from the store."""
        last = self.store.last_generation()
        if last is None:
            return 0
        pop = self.store.individuals(last["population"])
        F = self.problem.minimised({n: np.array([ind.value(n) for ind in pop]) for n in self.problem.objective_names})
        F = np.where(np.isfinite(F), F, BAD_F)
        n = len(pop)
        G = self.violations(
            {
                c.metric: np.array([ind.metrics.get("val", {}).get(c.metric, np.nan) for ind in pop])
                for c in self.constraints
            },
            n,
        )
        items = told_items(self.genome, pop)
        ids = [ind.id for ind in pop]
        self.backend.restore(items, F, ids, last["engine_state"], G)
        self._remember_cv(ids, G, ids)
        self.evaluations = last["evaluations"] or 0
        self.seconds = last["seconds"] or 0.0
        return last["generation"] + 1

    def run(self) -> None:
        """Run (or continue) the generations the recipe asks for; the results are in the store."""
        start = self._resume_point()
        total = self.recipe.algorithm.generations
        bar = progress_bar(total, self.recipe.name, unit="gen", enabled=self.progress, initial=start)
        try:
            # the collector rescans neither the heap nor a step's survivors; steps that train models
            # (checkpoint genomes) keep CPython's young threshold and free their cycles as they go
            young = YOUNG_THRESHOLD if self.genome.encoding == "array" else None
            with steps_unscanned(young) as step_done:
                for generation in range(start, total):
                    t0 = time.perf_counter()
                    stats = self.step(generation)
                    step_done(time.perf_counter() - t0)
                    if stats is None:
                        break
                    hv = f"{stats['hv_val']:.4f}" if stats["hv_val"] is not None else "-"
                    bar.set_postfix_str(f"evals={stats['evaluations']}, hv={hv}")
                    bar.update(1)
        finally:
            bar.close()


def make_backend(recipe, problem) -> Backend:
    if recipe.algorithm.backend == "deap":
        from evofair.engine.deap_backend import DeapBackend

        return DeapBackend(recipe, problem)
    from evofair.engine.pymoo_backend import PymooBackend

    return PymooBackend(recipe, problem)
