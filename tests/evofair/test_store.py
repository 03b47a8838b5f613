"""The run store: content-addressed weights, atomic generations, faithful round trips, read-only."""

from __future__ import annotations

import hashlib
import math
import sqlite3

import pytest
import torch

from evofair.core.individual import Individual
from evofair.errors import UserError, WeightsIntegrityError
from evofair.store.run_store import DB_NAME, ReadOnlyStoreError, RunStore


def weights(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "layer.weight": torch.randn(4, 3, generator=gen),
        "layer.bias": torch.randn(4, generator=gen),
        "half": torch.randn(5, generator=gen).to(torch.bfloat16),
        "steps": torch.tensor([seed, 7]),
    }


def files(root) -> list:
    return sorted(p for p in (root / "weights").rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "run")
    yield s
    s.close()


# -- weights -------------------------------------------------------------------------------------
def test_identical_weights_are_stored_once(store):
    w = weights(1)
    reordered = {k: w[k].clone() for k in reversed(list(w))}  # same content, other dict and tensors
    d1, d2 = store.put_weights(w), store.put_weights(reordered)
    d3 = store.put_weights(weights(2))
    store.flush()
    assert d1 == d2 != d3
    stored = files(store.root)
    assert len(stored) == 2 and store.weights_path(d1) in stored and store.weights_path(d3) in stored
    for digest in (d1, d3):  # each file is named by the sha256 of its own bytes
        assert hashlib.sha256(store.weights_path(digest).read_bytes()).hexdigest() == digest


def test_weights_round_trip_through_disk(store):
    w = weights(3)
    digest = store.put_weights(w)
    store.close()
    fresh = RunStore(store.root, readonly=True)  # nothing cached: reads and verifies the file
    back = fresh.get_weights(digest)
    assert set(back) == set(w)
    for k in w:
        assert back[k].dtype == w[k].dtype and torch.equal(back[k], w[k]), k
    fresh.close()


def test_tampered_weights_file_is_refused(store):
    digest = store.put_weights(weights(4))
    store.close()
    path = store.weights_path(digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of one tensor value
    path.write_bytes(bytes(data))
    fresh = RunStore(store.root, readonly=True)
    with pytest.raises(WeightsIntegrityError, match=str(path).replace(".", r"\.")) as info:
        fresh.get_weights(digest)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    fresh.close()


def test_weights_file_swapped_for_another_valid_file_is_refused(store):
    d1, d2 = store.put_weights(weights(5)), store.put_weights(weights(6))
    store.close()
    store.weights_path(d1).write_bytes(store.weights_path(d2).read_bytes())
    fresh = RunStore(store.root, readonly=True)
    with pytest.raises(WeightsIntegrityError, match=d1[:2]):
        fresh.get_weights(d1)
    assert torch.equal(fresh.get_weights(d2)["layer.bias"], weights(6)["layer.bias"])
    fresh.close()


def test_missing_weights_file_names_it(store):
    digest = store.put_weights(weights(7))
    store.close()
    store.weights_path(digest).unlink()
    fresh = RunStore(store.root, readonly=True)
    with pytest.raises(UserError, match="weights file missing"):
        fresh.get_weights(digest)
    with pytest.raises(WeightsIntegrityError, match="not a sha256"):
        fresh.get_weights("../../etc/passwd")
    fresh.close()


# -- individuals, metrics, lineage -------------------------------------------------------------
def make_generation(gen: int, n: int, parents_from: list[str] | None = None) -> list[Individual]:
    out = []
    for i in range(n):
        parents = (
            ()
            if not parents_from
            else (parents_from[i % len(parents_from)], parents_from[(i * 7 + 3) % len(parents_from)])
        )
        op = (
            {"init": {"name": "random", "seed": i}}
            if not parents
            else {
                "crossover": {"name": "ties", "args": {"density": 0.5}, "seed": 11 * i, "child": i % 2},
                "mutation": {"name": "gaussian", "args": {"sigma": 0.02}, "seed": i},
            }
        )
        out.append(
            Individual(
                id=f"g{gen:04d}i{i:04d}",
                generation=gen,
                parents=parents,
                operator=op,
                seed=1000 * gen + i,
                weights_hash=None,
                x=(0.25 * i, -1.5, 1e-300),
                metrics={
                    "val": {"f1": i / 7, "f2": 1 - i / 7, "extra": float("nan") if i == 2 else 3.0},
                    "test": {"f1": i / 9, "f2": float("inf") if i == 1 else 0.5},
                },
            )
        )
    return out


def same(a: Individual, b: Individual) -> bool:
    """Equality with NaN == NaN (non-finite metrics are stored as NULL and read back as NaN)."""

    def norm(m):
        return {s: {k: ("nan" if not math.isfinite(v) else v) for k, v in d.items()} for s, d in m.items()}

    return (a.id, a.generation, a.parents, a.operator, a.seed, a.weights_hash, a.x) == (
        b.id,
        b.generation,
        b.parents,
        b.operator,
        b.seed,
        b.weights_hash,
        b.x,
    ) and norm(a.metrics) == norm(b.metrics)


def test_individuals_metrics_lineage_round_trip(store):
    g0 = make_generation(0, 5)
    g1 = make_generation(1, 4, [i.id for i in g0])
    store.commit_generation(
        0, g0, [i.id for i in g0], {"hv_val": 0.5, "n_front": 3, "evaluations": 5, "seconds": 1.25}, {"rng": [1, 2, 3]}
    )
    store.commit_generation(1, g1, [g0[0].id, g1[3].id], {"hv_val": None, "n_front": 2, "evaluations": 9})
    store.set_meta("recipe", {"name": "x", "seed": [1, 2]})
    store.log_event("refine_rejected", "non-finite", generation=1, individual=g1[0].id, data={"k": 1})
    store.close()

    ro = RunStore(store.root, readonly=True)
    back = ro.individuals()
    assert [i.id for i in back] == [i.id for i in g0 + g1]  # creation order
    assert all(same(a, b) for a, b in zip(back, g0 + g1))
    assert math.isnan(back[2].metrics["val"]["extra"]) and math.isnan(back[1].metrics["test"]["f2"])
    assert back[6].parents == (g0[1].id, g0[0].id)  # order of parents kept
    label = ro._db.execute("SELECT operator FROM lineage WHERE child=? AND position=0", (g1[0].id,)).fetchone()
    assert label == ("ties+gaussian",)
    gens = ro.generations()
    assert [g["generation"] for g in gens] == [0, 1]
    assert gens[0] == {
        "generation": 0,
        "population": [i.id for i in g0],
        "hv_val": 0.5,
        "n_front": 3,
        "evaluations": 5,
        "seconds": 1.25,
        "engine_state": {"rng": [1, 2, 3]},
    }
    assert gens[1]["population"] == [g0[0].id, g1[3].id] and gens[1]["hv_val"] is None
    assert ro.last_generation()["generation"] == 1
    assert ro.get_meta("recipe") == {"name": "x", "seed": [1, 2]} and ro.get_meta("absent", 4) == 4
    (event,) = ro.events("refine_rejected")
    assert (event["generation"], event["individual"], event["data"]) == (1, g1[0].id, {"k": 1})
    ro.close()


def test_individuals_by_ids_reads_only_those_rows(tmp_path):
    s = RunStore(tmp_path / "run")
    g0 = make_generation(0, 700)
    g1 = make_generation(1, 600, [i.id for i in g0])
    s.commit_generation(0, g0, [i.id for i in g0], {})
    s.commit_generation(1, g1, [i.id for i in g1], {})
    everything = {i.id: i for i in s.individuals()}
    assert len(everything) == 1300
    # more ids than one IN chunk, out of order, across generations, with a repeat
    ids = [i.id for i in reversed(g1)] + [g0[5].id, g0[699].id, g1[0].id] + [i.id for i in g0[::2]]
    statements = []
    s._db.set_trace_callback(statements.append)
    got = s.individuals(ids)
    s._db.set_trace_callback(None)
    assert [i.id for i in got] == ids
    assert all(same(a, everything[a.id]) for a in got)
    # no full-table scans of per-individual rows (the batches' id lists are one row per generation)
    reads = [q for q in statements if q.lstrip().upper().startswith("SELECT") and "FROM batches" not in q]
    assert reads and all(" IN (" in q for q in reads), reads
    assert s.individuals([]) == []
    with pytest.raises(KeyError):
        s.individuals([g0[0].id, "g9999i9999"])
    s.close()


# -- atomic generations ----------------------------------------------------------------------------
def table_counts(root) -> dict[str, int]:
    db = sqlite3.connect(f"file:{root / DB_NAME}?mode=ro", uri=True)
    try:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("individuals", "metrics", "lineage", "generations")
        }
    finally:
        db.close()


@pytest.mark.parametrize("fault", ["bad_metric", "unjsonable_operator", "duplicate_id"])
def test_commit_generation_is_atomic(store, fault):
    g0 = make_generation(0, 3)
    store.commit_generation(0, g0, [i.id for i in g0], {"hv_val": 0.1})
    before = table_counts(store.root)
    g1 = make_generation(1, 4, [i.id for i in g0])
    # the third individual breaks only after the first two were inserted
    bad = g1[2]
    if fault == "bad_metric":
        bad = Individual(**{**bad.__dict__, "metrics": {"val": {"f1": "not a number"}}})
    elif fault == "unjsonable_operator":
        bad = Individual(**{**bad.__dict__, "operator": {"crossover": {"name": "x", "args": {"t": object()}}}})
    else:
        bad = Individual(**{**bad.__dict__, "id": g0[0].id})
    broken = g1[:2] + [bad] + g1[3:]
    with pytest.raises((ValueError, TypeError, sqlite3.IntegrityError)):
        store.commit_generation(1, broken, [i.id for i in broken], {"hv_val": 0.2})
    assert table_counts(store.root) == before  # seen from another connection: nothing partial
    assert [g["generation"] for g in store.generations()] == [0]
    assert {i.id for i in store.individuals()} == {i.id for i in g0}
    store.commit_generation(1, g1, [i.id for i in g1], {"hv_val": 0.2})  # the store is still usable
    assert len(store.individuals()) == 7 and store.last_generation()["hv_val"] == 0.2


# -- read-only -------------------------------------------------------------------------------------
def test_read_only_store_cannot_write(store):
    g0 = make_generation(0, 2)
    digest = store.put_weights(weights(8))
    store.commit_generation(0, g0, [i.id for i in g0], {})
    store.close()
    db_bytes = (store.root / DB_NAME).read_bytes()
    n_files = len(files(store.root))
    ro = RunStore(store.root, readonly=True)
    with pytest.raises(ReadOnlyStoreError):
        ro.put_weights(weights(9))
    with pytest.raises(ReadOnlyStoreError):
        ro.commit_generation(1, make_generation(1, 1), [], {})
    with pytest.raises(ReadOnlyStoreError):
        ro.set_meta("k", 1)
    with pytest.raises(ReadOnlyStoreError):
        ro.log_event("x", "y")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # even bypassing the methods
        ro._db.execute("DELETE FROM individuals")
    assert torch.equal(ro.get_weights(digest)["steps"], weights(8)["steps"])  # reading still works
    ro.close()
    assert len(files(store.root)) == n_files
    assert (store.root / DB_NAME).read_bytes() == db_bytes


def test_read_only_needs_a_run_directory(tmp_path):
    with pytest.raises(UserError, match="not an evofair run directory"):
        RunStore(tmp_path, readonly=True)
    assert not (tmp_path / DB_NAME).exists()
