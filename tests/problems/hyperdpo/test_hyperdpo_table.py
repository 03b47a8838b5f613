"""The hyperdpo_table experiment (HyperDPO against the DPO baselines on LETOR) and its HyperDPO options:
network width, validation cadence, temperature selection, per-w snapshots and stopping, restarts,
the FiLM conditioning, and those options reaching the recipe through the CLI."""

import csv

import numpy as np
import pytest
import torch

import evofair
from evofair.core.indicators import hypervolume
from evofair.problems.hyperdpo.ranking import RankingParams, RankingProblem


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


def test_hyperdpo_table_width_val_every_and_c_selection():
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


def test_hyperdpo_options_reach_the_recipe_through_the_cli(tmp_path, capsys):
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
