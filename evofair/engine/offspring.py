"""From asked items to stored, evaluated individuals: the engine's half of a generation.

The backend asks for items (vectors, or `Plan`s/`GenomeRef`s for checkpoints); this module has the
executor compute them and builds the `Individual`s the store commits and the backend is told
about. The genome only describes (its encoding decides the path); the executor alone decides
whether checkpoint weights travel through the driver or through a store its workers share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from evofair.core.genome import ArrayGenome, Genome
from evofair.core.individual import Individual, array_individual, individual_id
from evofair.core.seeding import derive_seed, derive_seeds
from evofair.engine.pipeline import GenomeRef, OpCall
from evofair.engine.plans import as_plan
from evofair.store.columns import Batch

Metrics = dict[str, dict[str, np.ndarray]]


def metrics_row(metrics: Metrics, i: int) -> dict[str, dict[str, float]]:
    return {split: {name: float(values[i]) for name, values in per.items()} for split, per in metrics.items()}


class Offspring(NamedTuple):
    """A generation's evaluated offspring: the individuals, the items to tell the backend, the
    metrics by split and (array genomes) the individuals as the arrays they were made from, which
    the store commits without a pass over the individuals."""

    individuals: list[Individual]
    told: list[Any]
    metrics: Metrics
    batch: Batch | None = None


def realise_generation(engine, genome: Genome, generation: int, items: Sequence[Any]) -> Offspring:
    """Make, store and evaluate asked items."""
    if genome.encoding == "array":
        return _realise_arrays(engine, genome, generation, items)
    return _realise_checkpoints(engine, generation, items)


def told_items(genome: Genome, individuals: Sequence[Individual]) -> list[Any]:
    """The items a backend was told for stored individuals (to rebuild it when a run resumes)."""
    if genome.encoding == "array":
        return [genome.decode(ind.x) for ind in individuals]  # type: ignore[attr-defined]
    return [GenomeRef(ind.id, str(ind.weights_hash)) for ind in individuals]


def _realise_arrays(engine, genome, generation: int, items: Sequence[Any]) -> Offspring:
    X = np.asarray(items, dtype=genome.vtype)
    metrics = engine.executor.evaluate(X)
    n = len(X)
    stored = None
    if n and type(genome).encode is ArrayGenome.encode:  # the stored form of all rows at once, as encode makes it
        stored = X.reshape(n, -1).astype(float)
        encoded = [tuple(row) for row in stored.tolist()]
    else:
        encoded = [genome.encode(X[i]) for i in range(n)]
    seeds = derive_seeds(engine.recipe.seed, generation, n)
    prefix = individual_id(generation, 0)[:-4]  # individual_id's "g{generation:04d}i", then the index
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    columns = metric_columns(metrics)
    individuals = [
        array_individual(ids[i], generation, seeds[i], encoded[i], row)
        for i, row in enumerate(metrics_rows(metrics, n, columns))
    ]
    # The batch holds the very values the individuals were built from, so reading it back gives
    # them unchanged; a split without metrics would be dropped by that read, so it gets none.
    batch = None
    if stored is not None and all(metrics.values()):
        batch = Batch(generation, ids, np.asarray(seeds, dtype=np.int64), stored, columns)
    return Offspring(individuals, list(X), metrics, batch)


def metric_columns(metrics: Metrics) -> list[tuple[str, str, np.ndarray]]:
    """Each (split, metric)'s values as one float64 column, in the metrics' order."""
    return [
        (split, name, np.asarray(values, dtype=float)) for split, per in metrics.items() for name, values in per.items()
    ]


def metrics_rows(
    metrics: Metrics, n: int, columns: list[tuple[str, str, np.ndarray]] | None = None
) -> list[dict[str, dict[str, float]]]:
    """`metrics_row` of rows 0..n-1, each column (`metric_columns`) converted to floats once."""
    rows: list[dict[str, dict[str, float]]] = [{split: {} for split in metrics} for _ in range(n)]
    for split, name, values in metric_columns(metrics) if columns is None else columns:
        for row, v in zip(rows, values.tolist()):
            row[split][name] = v
    return rows


def refine_call(recipe, generation: int, index: int) -> OpCall | None:
    """The local search an offspring gets, with its own derived seed (generation 0: `refine_initial`)."""
    ops = recipe.operators
    cfg = ops.initial_refine if generation == 0 else ops.refine
    if cfg is None:
        return None
    return OpCall(cfg.name, cfg.args, derive_seed(recipe.seed, generation, index, "refine"))


def _realise_checkpoints(engine, generation: int, items: Sequence[Any]):
    store, executor = engine.store, engine.executor
    plans = [as_plan(it).with_refine(refine_call(engine.recipe, generation, i)) for i, it in enumerate(items)]
    made = executor.realise(plans, store)
    keys = [m.key for m in made]
    metrics = executor.evaluate_stored(keys, store)
    individuals, refs = [], []
    for i, (plan, m) in enumerate(zip(plans, made)):
        iid = individual_id(generation, i)
        if "refine_rejected" in m.log:
            store.log_event("refine_rejected", m.log["refine_rejected"], generation=generation, individual=iid)
        individuals.append(
            Individual(
                id=iid,
                generation=generation,
                parents=tuple(p.id for p in plan.parents),
                operator={**plan.record(), **({"log": m.log} if m.log else {})},
                seed=derive_seed(engine.recipe.seed, generation, i),
                weights_hash=m.key,
                metrics=metrics_row(metrics, i),
            )
        )
        refs.append(GenomeRef(iid, m.key))
    return Offspring(individuals, refs, metrics)
