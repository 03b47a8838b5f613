"""LETOR loading, NDCG@k against sklearn, the ranking problem, the hyperdpo refiner, seeding a population
from one conditioned model, a memetic run with both, and bad problem args as user errors; the
hyperdpo_table experiment is in test_hyperdpo_table.py."""

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

import evofair
from evofair.core.plugins import registry as op_registry
from evofair.errors import UserError
from evofair.problems.hyperdpo.letor import load_letor, mean_ndcg, ndcg_per_query, parse_feature_ids, to_groups
from evofair.problems.hyperdpo.losses import listwise_dpo_loss, seed_population, temperature_transform
from evofair.problems.hyperdpo.ranker import condition_weights, temperature_scale
from evofair.problems.hyperdpo.ranking import DATA_DIR, RankingParams, RankingProblem
from evofair.problems.hyperdpo.refiner import HyperDPOArgs

LETOR_TEXT = """2 qid:7 1:0.5 2:1.0 3:0.25 #docid = A inc = 1 prob = 0.5
0 qid:7 1:0.1 3:0.75 #docid = B
1 qid:9 1:1.0 2:0.0 3:0.5 #docid = C
0 qid:9 2:0.3 #docid = D
1 qid:9 1:0.2 2:0.4 3:0.1
"""


def test_letor_loader_and_groups(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text(LETOR_TEXT)
    rows = load_letor(path, n_features=3)
    assert rows.X.shape == (5, 3) and rows.qid.tolist() == [7, 7, 9, 9, 9]
    assert rows.rel.tolist() == [2, 0, 1, 0, 1]
    np.testing.assert_allclose(rows.X[1], [0.1, 0.0, 0.75])  # missing feature 2 reads as 0
    assert load_letor(path, 3, drop_qids=[9]).qid.tolist() == [7, 7]
    g = to_groups(rows, input_ids=[1, 2], aux_ids=[3], invert_ids=[3])
    assert g.X.shape == (2, 3, 2) and g.mask.tolist() == [[True, True, False], [True, True, True]]
    np.testing.assert_allclose(g.labels[0, :2, 0], [2, 0])
    np.testing.assert_allclose(g.labels[1, :, 1], [0.5, 1.0, 0.9])  # inverted: 1 − v
    np.testing.assert_allclose(g.X[1, 1], [0.0, 0.3])
    with pytest.raises(UserError, match="removed from the input"):
        to_groups(rows, input_ids=[1, 3], aux_ids=[3])
    bad = tmp_path / "bad.txt"
    bad.write_text("x qid:1 1:a\n")
    with pytest.raises(UserError, match="LETOR format"):
        load_letor(bad)
    with pytest.raises(UserError, match="not found"):
        load_letor(tmp_path / "missing.txt")
    assert parse_feature_ids("1-3,7") == [1, 2, 3, 7]


def test_shipped_mq2008_subset_without_the_truncated_query():
    val, test = load_letor(DATA_DIR / "val.txt", 46), load_letor(DATA_DIR / "test.txt", 46)
    assert 16939 not in set(val.qid) and len(np.unique(val.qid)) == 68 and len(val.rel) == 997
    assert len(np.unique(test.qid)) == 36 and len(test.rel) == 795
    assert val.X.shape[1] == 46 and set(np.unique(val.rel)) == {0, 1, 2}


def test_ndcg_matches_sklearn_including_ties_and_irrelevant_queries():
    rng = np.random.default_rng(0)
    Q, n = 40, 15
    gains = rng.integers(0, 4, size=(Q, n)).astype(float)
    gains[3] = 0.0  # a query without any relevant document
    scores = rng.integers(0, 5, size=(Q, n)).astype(float)  # many ties
    lengths = rng.integers(2, n + 1, size=Q)
    mask = np.arange(n)[None] < lengths[:, None]
    for k in (10, 3):
        ours = ndcg_per_query(scores, gains, mask, k)
        for q in range(Q):
            L = lengths[q]
            ref = ndcg_score(gains[q : q + 1, :L], scores[q : q + 1, :L], k=k)
            if gains[q, :L].sum() == 0:
                assert np.isnan(ours[q]) and ref == 0.0
            else:
                assert ours[q] == pytest.approx(ref, abs=1e-12)
    full = np.ones_like(mask)
    per_q = ndcg_per_query(scores, gains, full, 10)
    assert mean_ndcg(per_q, "zero") == pytest.approx(ndcg_score(gains, scores, k=10), abs=1e-12)
    keep = gains.sum(1) > 0
    assert mean_ndcg(per_q, "skip") == pytest.approx(ndcg_score(gains[keep], scores[keep], k=10), abs=1e-12)


@pytest.fixture(scope="module")
def problem():
    p = RankingProblem(RankingParams(base_epochs=8, base_patience=8, hyper_epochs=3, hidden=16, seed=0))
    return p.ensure_setup()


def test_ranking_problem_evaluate_and_contract(problem):
    assert problem.objective_names == ["ndcg10_pagerank", "ndcg10_child_pages"]
    assert problem.default_hv_ref == (0.0, 0.0)
    assert [len(problem.data[s]) for s in ("train", "val", "test")] == [48, 20, 36]
    assert problem.d == 40 and problem.data["test"].X.shape[-1] == 40
    genomes = [problem.init_weights(s) for s in (1, 2, 3)]
    batch = problem.evaluate(genomes, "test")
    for i, g in enumerate(genomes):
        alone = problem.evaluate([g], "test")
        for k in batch:
            assert batch[k][i] == pytest.approx(alone[k][0])
    # the zero g is the base ranker itself; its main NDCG@10 agrees with sklearn over the test queries
    base = problem.evaluate([problem.base_weights()], "test")
    t = problem.data["test"]
    scores = t.base.numpy()
    ref = np.mean(
        [ndcg_score(t.labels[q, t.mask[q], 0].numpy()[None], scores[q, t.mask[q]][None], k=10) for q in range(len(t))]
    )
    assert base["ndcg10_main"][0] == pytest.approx(ref, abs=1e-9)
    assert base["ndcg10_main"][0] > 0.40  # a trained ranker, far above random (~0.34) on this subset
    w = problem.init_weights(1)
    assert problem.extract_weights(problem.build_model(w)).keys() == w.keys()


def test_conditioning_is_folded_exactly_and_temperature_scaling_is_the_formula(problem):
    cond = problem.g_model(conditioned=True, seed=3, zero_last=False)
    plain_w = condition_weights(cond.state_dict(), [0.3, 0.7], problem.params.w_scale)
    X = problem.data["val"].X
    with torch.no_grad():
        torch.testing.assert_close(
            problem.build_model(plain_w)(X), cond(X, torch.tensor([0.3, 0.7])), rtol=1e-5, atol=1e-5
        )
        g = problem.init_weights(4)
        s_base = problem.data["val"].base
        s_beta = s_base + problem.build_model(g)(X)
        for c in (0.5, 2.0):
            s_c = s_base + problem.build_model(temperature_scale(g, c))(X)
            torch.testing.assert_close(s_c, temperature_transform(s_base, s_beta, c), rtol=1e-5, atol=1e-5)


def test_hyperdpo_refiner_moves_toward_its_weight_vector(problem):
    spec = op_registry("refine").get("hyperdpo")
    start = problem.init_weights(5)
    before = {k: v.clone() for k, v in start.items()}
    train = problem.data["train"]

    def L(weights):
        with torch.no_grad():
            return listwise_dpo_loss(
                problem.listwise_scores(problem.build_model(weights), train),
                problem.listwise_scores(problem.build_model(start), train),
                train.labels[..., 1:],
                train.mask,
                problem.params.beta,
                problem.phi,
            )

    out = {}
    for w in ([1.0, 0.0], [0.0, 1.0]):
        r = spec.fn(start, HyperDPOArgs(w=w, epochs=4, lr=3e-3), seed=11, problem=problem, reference=start)
        out[tuple(w)] = L(r.weights)
        assert r.log["w"] == w and r.log["steps"] == 4 * 6
    assert all(torch.equal(before[k], start[k]) for k in start)  # inputs untouched
    L0 = L(start)  # = log-uniform CE against the reference itself
    assert out[(1.0, 0.0)][0] < L0[0] and out[(0.0, 1.0)][1] < L0[1]
    assert out[(1.0, 0.0)][0] < out[(0.0, 1.0)][0] and out[(0.0, 1.0)][1] < out[(1.0, 0.0)][1]
    # w=None: one Das-Dennis direction per seed, reproducibly
    a = spec.fn(start, HyperDPOArgs(steps=1, n_partitions=4), seed=1, problem=problem, reference=None)
    b = spec.fn(start, HyperDPOArgs(steps=1, n_partitions=4), seed=1, problem=problem, reference=None)
    assert a.log["w"] == b.log["w"] and a.log["w"] in [[i / 4, 1 - i / 4] for i in range(5)]
    with pytest.raises(UserError):
        spec.fn(start, HyperDPOArgs(w=[1.0, 0.0, 0.0]), seed=1, problem=problem, reference=None)


def test_seed_population_from_one_conditioned_model(problem):
    cond = problem.conditioned_weights()
    pop = seed_population(problem, cond, 4, seed=9)
    again = seed_population(problem, cond, 4, seed=9)
    ws = np.array([w for w, _ in pop])
    assert np.allclose(ws.sum(1), 1) and len(np.unique(ws.round(6), axis=0)) == 4
    X = problem.data["test"].X
    model = problem.g_model(conditioned=True)
    model.load_state_dict(cond)
    for (w, weights), (w2, weights2) in zip(pop, again):
        assert np.allclose(w, w2) and all(torch.equal(weights[k], weights2[k]) for k in weights)
        with torch.no_grad():
            torch.testing.assert_close(
                problem.build_model(weights)(X), model(X, torch.tensor(w, dtype=torch.float32)), rtol=1e-5, atol=1e-5
            )


def test_bad_problem_args_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="aux_features"):
        evofair.experiment(
            {"problem": {"name": "letor", "args": {"aux_features": [41]}}, "experiment": {"name": "hyperdpo_table"}},
            tmp_path / "a",
            progress=False,
        )
    with pytest.raises(UserError, match="test_path"):
        evofair.experiment(
            {
                "problem": {"name": "letor", "args": {"test_path": str(tmp_path / "nope.txt")}},
                "experiment": {"name": "hyperdpo_table"},
            },
            tmp_path / "b",
            progress=False,
        )


def test_memetic_run_with_hyperdpo_refiner_and_seeded_population(tmp_path):
    from evofair.store.run_store import RunStore

    recipe = {
        "name": "memetic",
        "seed": 4,
        "problem": {
            "name": "letor",
            "args": {"base_epochs": 3, "base_patience": 3, "hidden": 8, "init": "hyperdpo", "hyper_epochs": 2},
        },
        "algorithm": {"name": "nsga3", "pop_size": 4, "generations": 2, "n_partitions": 3},
        "operators": {
            "crossover": {"name": "linear"},
            "mutation": {"name": "gaussian", "args": {"sigma": 0.001}},
            "refine": {"name": "hyperdpo", "args": {"steps": 2, "n_partitions": 3}},
            "refine_initial": False,
        },
        "hv_ref": [0.0, 0.0],
    }
    res = evofair.run(recipe, tmp_path / "run", progress=False)
    assert res.front and res.history["hv_val"].iloc[-1] > 0
    store = RunStore(tmp_path / "run", readonly=True)
    inds = store.individuals()
    gen0 = [i for i in inds if i.generation == 0]
    assert len({i.weights_hash for i in gen0}) == 4  # four different w-samples of one conditioned model
    dirs = [[a / 3, 1 - a / 3] for a in range(4)]
    for ind in (i for i in inds if i.generation == 1):
        w = ind.operator["log"]["refine"]["w"]
        assert any(np.allclose(w, d) for d in dirs)
