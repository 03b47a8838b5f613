"""LETOR loading, NDCG@k against sklearn, the ranking problem, the hyperdpo refiner and the table."""

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

import evofair
from evofair.core.indicators import hypervolume
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


def test_hyperdpo_table_experiment_runs(tmp_path):
    recipe = {
        "name": "t",
        "seed": 2,
        "problem": {
            "name": "letor",
            "args": {"base_epochs": 4, "base_patience": 4, "hidden": 8, "aux_features": [41, 46, 44]},
        },
        "experiment": {
            "name": "hyperdpo_table",
            "args": {"n_points": 4, "epochs": 3, "hyper_epochs": 3, "patience": 3},
        },
    }
    out = tmp_path / "run"
    evofair.experiment(recipe, out, progress=False)
    for name in ("config.yaml", "report.md", "table.md", "table.csv", "fronts.csv", "plots/front.png"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader(open(out / "fronts.csv")))
    assert [r["method"] for r in rows] == ["hyperdpo"] * 4 + ["dpo_ls"] * 4 + ["dpo_soup"] * 4 + ["mo_dpo"] * 4
    table = {r["method"]: r for r in csv.DictReader(open(out / "table.csv"))}
    names = ["ndcg10_pagerank", "ndcg10_child_pages", "ndcg10_inv_url_slashes"]
    for method, r in table.items():
        F = np.array([[float(x[f"{n}_test"]) for n in names] for x in rows if x["method"] == method])
        # HV of the maximised NDCGs with reference point 0, recomputed by pymoo on −F
        assert float(r["hv_test"]) == pytest.approx(hypervolume(-F, [0, 0, 0]), rel=1e-9)
        assert 0 < float(r["hv_test"]) < 1
    d, h, m = 40, 8, 3
    P = (d + 1) * h + (h + 1) * h + (h + 1)  # one plain g
    assert int(table["hyperdpo"]["n_params"]) == P + m * h  # w enters the first layer
    assert int(table["dpo_ls"]["n_params"]) == 4 * P
    assert int(table["dpo_soup"]["n_params"]) == m * P
    assert int(table["mo_dpo"]["n_params"]) == 4 * P + (m - 1) * P
    report = (out / "report.md").read_text()
    assert "reference point (0, …, 0)" in report and "| HyperDPO |" in report


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


def test_hyperdpo_table_issue14_settings_width_val_every_and_c_selection():
    """hyper_hidden sizes only HyperDPO's g; hyper_select_c picks per w the c (of the list and 1) with the
    best validation w·NDCG_aux and scores s_base + g/c; val_every validates only every k-th epoch."""
    from evofair.problems.hyperdpo.ranker import fit
    from evofair.problems.hyperdpo.table_methods import TableArgs, run_methods

    problem = RankingProblem(RankingParams(base_epochs=3, base_patience=3, hidden=8)).ensure_setup()
    a = TableArgs(
        methods=["hyperdpo", "dpo_ls"],
        n_points=3,
        epochs=2,
        hyper_epochs=4,
        patience=50,
        lam=0.0,
        hyper_hidden=12,
        hyper_val_every=2,
        hyper_select_c=[0.5, 2.0],
    )
    res = run_methods(problem, a, seed=3)
    r = res["hyperdpo"]
    d, H, m = 40, 12, 2
    assert r.n_params == (d + m) * H + H + (H + 1) * H + H + 1
    assert res["dpo_ls"].n_params == 3 * ((d + 1) * 8 + 9 * 8 + 9)
    assert len(r.c) == 3 and set(r.c) <= {0.5, 1.0, 2.0}
    val, test = problem.data["val"], problem.data["test"]
    with torch.no_grad():
        for i, w in enumerate(r.grid):
            g_val = r.model(val.X, torch.tensor(w, dtype=torch.float32))
            best = max(
                (float(np.dot(w, problem.aux_ndcg((val.base + g_val / c).numpy(), "val"))), -k, c)
                for k, c in enumerate([0.5, 1.0, 2.0])
            )
            assert r.c[i] == best[2]
            g = r.model(test.X, torch.tensor(w, dtype=torch.float32))
            want = problem.aux_ndcg((test.base + g / r.c[i]).numpy(), "test")
            np.testing.assert_allclose(r.points["test"][i], want, rtol=1e-12)
    calls = []
    fit(
        problem.g_model(seed=0),
        lambda mdl, b, rng: mdl(b.X).sum() * 0,
        problem.data["train"],
        epochs=7,
        lr=1e-3,
        batch_size=8,
        seed=0,
        val_fn=lambda mdl: calls.append(1) or 0.0,
        val_every=3,
    )
    assert len(calls) == 2  # epochs 3 and 6


def _scripted_fit(problem, scores, stop, select="per_w"):
    """fit with select='per_w' on a scripted validation sequence; also records the state at each epoch."""
    from evofair.problems.hyperdpo.ranker import fit

    states, it = {}, iter(scores)

    def val_fn(mdl):
        states[len(states) + 1] = {k: v.clone() for k, v in mdl.state_dict().items()}
        return np.array(next(it))

    model = problem.g_model(seed=0, zero_last=False)
    # a loss that moves the weights every step, so every epoch's state differs
    model, log = fit(
        model,
        lambda mdl, b, rng: mdl(b.X).pow(2).mean(),
        problem.data["train"],
        epochs=len(scores),
        lr=1e-2,
        batch_size=8,
        seed=0,
        val_fn=val_fn,
        patience=2,
        select=select,
        stop=stop,
    )
    return model, log, states


def test_fit_per_w_snapshot_selection_hand_made_case():
    """select='per_w' keeps, for each entry, the state of the epoch where that entry's score was lowest;
    stop='shared' stops on the mean's patience, stop='per_w' only when every entry's patience ran out."""
    problem = RankingProblem(RankingParams(base_epochs=3, base_patience=3, hidden=8)).ensure_setup()
    scores = [
        [3, 3, 3],
        [1, 4, 3.5],
        [2, 2, 3.5],
        [2, 3, 0.5],
        [5, 5, 5],
        [0.1, 5, 5],
        [5, 5, 5],
        [5, 5, 5],
        [5, 5, 5],
        [5, 5, 5],
    ]
    # means: 3, 2.83, 2.5, 1.83 (shared best: epoch 4), 5, 3.37, 5, …; per entry: 0 → epoch 6, 1 → 3, 2 → 4
    model, log, states = _scripted_fit(problem, scores, "shared")
    assert log["epochs"] == 6 and log["best_epoch"] == 4  # 6 − 4 ≥ patience 2
    assert log["best_epochs"] == [6, 3, 4]
    assert sorted(log["snapshots"]) == [3, 4, 6]  # epochs 1 and 2 no longer best for any entry: dropped
    for e, snap in log["snapshots"].items():
        for k in snap:
            torch.testing.assert_close(snap[k], states[e][k], rtol=0, atol=0)
    for k, v in model.state_dict().items():  # the returned model: the shared criterion's best epoch
        torch.testing.assert_close(v, states[4][k], rtol=0, atol=0)
    assert not torch.equal(states[4]["net.0.weight"], states[6]["net.0.weight"])
    _, log2, _ = _scripted_fit(problem, scores, "per_w")
    assert log2["epochs"] == 8 and log2["best_epochs"] == [6, 3, 4]  # entry 0 improved at 6: runs to 6 + 2
    model3, log3, states3 = _scripted_fit(problem, scores, "per_w", select="shared")  # per-w stop alone
    assert log3["epochs"] == 8 and log3["best_epoch"] == 4 and "snapshots" not in log3
    for k, v in model3.state_dict().items():
        torch.testing.assert_close(v, states3[4][k], rtol=0, atol=0)


def test_hyperdpo_table_per_w_snapshots_and_fair_c_selection():
    """hyper_select per_w: each front point uses the conditioned model at its own best validation epoch,
    so (same seed, same training as 'shared') its validation w·NDCG_aux is at least the shared one's;
    parameters count once per distinct snapshot; same seed ⇒ same front. select_c_dpo_ls gives DPO-LS
    the per-w temperature selection (checked against a direct computation)."""
    from evofair.problems.hyperdpo.table_methods import TableArgs, run_methods

    problem = RankingProblem(RankingParams(base_epochs=3, base_patience=3, hidden=8)).ensure_setup()
    kw = dict(methods=["hyperdpo"], n_points=5, hyper_epochs=12, patience=50, lam=0.0, hyper_val_every=2)
    shared = run_methods(problem, TableArgs(**kw), seed=3)["hyperdpo"]
    per_w = run_methods(problem, TableArgs(hyper_select="per_w", **kw), seed=3)["hyperdpo"]
    again = run_methods(problem, TableArgs(hyper_select="per_w", **kw), seed=3)["hyperdpo"]
    np.testing.assert_array_equal(per_w.points["test"], again.points["test"])
    assert per_w.epochs == again.epochs and len(per_w.epochs) == 5 and set(per_w.epochs) <= {2, 4, 6, 8, 10, 12}
    assert per_w.n_snapshots == len(set(per_w.epochs))
    d, H, m = 40, 8, 2
    assert per_w.n_params == per_w.n_snapshots * ((d + m) * H + H + (H + 1) * H + H + 1)
    val_score = lambda r: (r.points["val"] * r.grid).sum(1)  # w·NDCG_aux(val) per front point
    assert (val_score(per_w) >= val_score(shared) - 1e-12).all()
    assert val_score(per_w).mean() >= val_score(shared).mean()
    a = TableArgs(
        methods=["dpo_ls"], n_points=3, epochs=3, patience=50, hyper_select_c=[0.5, 2.0], select_c_dpo_ls=True
    )
    ls = run_methods(problem, a, seed=1)["dpo_ls"]
    plain = run_methods(problem, TableArgs(methods=["dpo_ls"], n_points=3, epochs=3, patience=50), seed=1)["dpo_ls"]
    assert plain.c is None and len(ls.c) == 3
    for i, w in enumerate(ls.grid):  # the val/test points of model i at c_i, from the plain run's NDCG path
        pts_val = plain.points["val"][i]
        assert float(np.dot(w, ls.points["val"][i])) >= float(np.dot(w, pts_val)) - 1e-12  # c = 1 is an option
        if ls.c[i] == 1.0:
            np.testing.assert_array_equal(ls.points["test"][i], plain.points["test"][i])


def test_film_ranker_is_the_plain_network_at_init_and_modulates_hidden_layers():
    from evofair.problems.hyperdpo.ranker import Ranker

    torch.manual_seed(0)
    film = Ranker(4, 3, m_cond=2, zero_last=False, w_scale=5.0, cond="film")
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        plain = film.net(x).squeeze(-1)
        torch.testing.assert_close(film(x, torch.tensor([0.2, 0.8])), plain)  # FiLM map starts at 0
        film.film.weight.copy_(torch.arange(24, dtype=torch.float32).reshape(12, 2) / 50)
        film.film.bias.fill_(0.1)
        w = torch.tensor([0.3, 0.7])
        gb = (film.film.weight @ (5.0 * w) + film.film.bias).reshape(4, 3)  # γ1, b1, γ2, b2
        h = torch.relu(film.net[0](x) * (1 + gb[0]) + gb[1])
        h = torch.relu(film.net[2](h) * (1 + gb[2]) + gb[3])
        torch.testing.assert_close(film(x, w), film.net[4](h).squeeze(-1))


def test_hyperdpo_restarts_pick_per_w_the_better_model_on_validation():
    """hyper_restarts 2: per front w the restart with the better validation w·NDCG_aux; restart 0 alone is
    the 1-restart run, restart 1 alone the 1-restart run at seed + 7919, so each point's validation score
    is the max of the two runs' (an independent oracle), and its test point is that run's."""
    from evofair.problems.hyperdpo.table_methods import TableArgs, run_methods

    problem = RankingProblem(RankingParams(base_epochs=3, base_patience=3, hidden=8)).ensure_setup()
    kw = dict(
        methods=["hyperdpo"], n_points=4, hyper_epochs=6, patience=50, lam=0.0, hyper_val_every=2, hyper_select="per_w"
    )
    r0 = run_methods(problem, TableArgs(**kw), seed=2)["hyperdpo"]
    r1 = run_methods(problem, TableArgs(**kw), seed=2 + 7919)["hyperdpo"]
    both = run_methods(problem, TableArgs(hyper_restarts=2, **kw), seed=2)["hyperdpo"]
    for i, w in enumerate(both.grid):
        s0, s1 = float(np.dot(w, r0.points["val"][i])), float(np.dot(w, r1.points["val"][i]))
        pick = r1 if s1 > s0 + 1e-7 else r0
        np.testing.assert_array_equal(both.points["test"][i], pick.points["test"][i])
        assert both.epochs[i] == f"{int(pick is r1)}:{pick.epochs[i]}"
    assert both.n_snapshots == len(set(both.epochs))


def test_issue14_options_reach_the_recipe_through_the_cli(tmp_path, capsys):
    """The per-w snapshot selection and the other HyperDPO options are experiment args: `--set` reaches them."""
    from pathlib import Path

    import yaml

    from evofair import cli

    recipe = Path(__file__).resolve().parents[3] / "runs" / "hyperdpo_mq2008.yaml"
    out = tmp_path / "cli"
    sets = [
        "problem.args.base_epochs=3",
        "problem.args.base_patience=3",
        "problem.args.hidden=8",
        "experiment.args.methods=[hyperdpo]",
        "experiment.args.n_points=3",
        "experiment.args.hyper_epochs=6",
        "experiment.args.lam=0",
        "experiment.args.hyper_val_every=2",
        "experiment.args.hyper_select=per_w",
        "experiment.args.hyper_stop=per_w",
        "experiment.args.hyper_grid_mix=1.0",
        "experiment.args.temperatures=[]",
    ]
    assert (
        cli.main(["experiment", str(recipe), "--out", str(out), "--quiet"] + [x for s in sets for x in ("--set", s)])
        == 0
    )
    capsys.readouterr()
    args = yaml.safe_load((out / "config.yaml").read_text())["experiment"]["args"]
    assert args["hyper_select"] == "per_w" and args["hyper_stop"] == "per_w" and args["hyper_grid_mix"] == 1.0
    assert "HyperDPO per-w snapshots:" in (out / "report.md").read_text()
