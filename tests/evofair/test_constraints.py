"""Recipe `constraints:` end to end, against independent oracles: a hand-written pymoo ask/tell loop
whose StaticProblem carries G (pymoo's own feasibility-first NSGA-II), hand-computed violations
(ZDT1's f1 is x1, so `f1 >= 0.5` is violated by exactly 0.5 - f1), an uninterrupted run for resume,
and the CLI's exit code for bad input."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import cli_subprocess
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.problem import Problem
from pymoo.indicators.hv import HV
from pymoo.problems import get_problem
from pymoo.problems.static import StaticProblem

import evofair
from evofair.cli import main
from evofair.core.constraints import Constraint, feasible_first, total_violation, violations
from evofair.core.problem import Objective, VectorProblem
from evofair.errors import UserError
from evofair.lifecycle.recipe import parse_recipe

BOUND = 0.5


def zdt(generations=10, constraints=("f1 >= 0.5",), **algorithm) -> dict:
    recipe = {
        "name": "zdt1-constrained",
        "problem": {"name": "zdt1", "args": {"n_var": 10}},
        "algorithm": {"name": "nsga2", "pop_size": 20, "generations": generations, **algorithm},
        "operators": {"crossover": {"name": "sbx"}, "crossover_prob": 1.0, "mutation": {"name": "pm"}},
        "seed": 3,
        "hv_ref": [1.1, 7.0],  # f2 of ZDT1 starts near 4-6: a reference point that scores early fronts
    }
    if constraints:
        recipe["constraints"] = list(constraints)
    return recipe


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("constraints")
    evofair.run(zdt(constraints=()), root / "free", progress=False)
    evofair.run(zdt(), root / "constrained", progress=False)
    return root


# -- the engine -------------------------------------------------------------------------------
def test_constrained_front_has_no_violator_where_the_free_one_has(runs):
    free = read_csv(runs / "free" / "front.csv")
    constrained = read_csv(runs / "constrained" / "front.csv")
    assert any(float(r["f1_val"]) < BOUND for r in free)
    assert constrained and all(float(r["f1_val"]) >= BOUND for r in constrained)
    assert all(r["feasible"] == "true" and float(r["cv_val"]) == 0.0 for r in constrained)


class _ConstrainedZDT1(Problem):
    """The oracle's problem: only dimensions (values come through a StaticProblem, as evofair's do)."""

    def __init__(self):
        super().__init__(n_var=10, n_obj=2, n_ieq_constr=1, xl=0.0, xu=1.0)


def _hand_written_pymoo(generations: int, bound: float):
    """NSGA-II ask/tell with F and G handed over by a StaticProblem; per generation, the HV of the
    feasible non-dominated members, and the final `opt` (pymoo's feasibility-first optimum)."""
    zdt1 = get_problem("zdt1", n_var=10)
    problem = _ConstrainedZDT1()
    alg = NSGA2(pop_size=20)
    alg.setup(problem, termination=("n_gen", generations), seed=3, verbose=False)
    hv, ref = [], np.array([1.1, 7.0])
    while alg.has_next():
        pop = alg.ask()
        F = zdt1.evaluate(pop.get("X"), return_values_of=["F"])
        G = (bound - F[:, 0])[:, None]  # f1 >= bound  ⇔  g = bound - f1 <= 0
        Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)
        alg.tell(infills=pop)
        feas = alg.pop[alg.pop.get("FEAS")[:, 0]]
        hv.append(float(HV(ref_point=ref)(feas.get("F"))) if len(feas) else 0.0)
    return alg, hv


def test_same_front_and_hv_as_a_hand_written_pymoo_loop_with_G(runs):
    alg, hv = _hand_written_pymoo(10, BOUND)
    front = read_csv(runs / "constrained" / "front.csv")
    ours = np.array(sorted((float(r["f1_val"]), float(r["f2_val"])) for r in front))
    theirs = np.array(sorted(map(tuple, alg.opt.get("F"))))
    np.testing.assert_allclose(ours, theirs)
    history = read_csv(runs / "constrained" / "history.csv")
    np.testing.assert_allclose([float(r["hv_val"]) for r in history], hv, rtol=0, atol=1e-12)
    assert hv[-1] > 0 and any(h == 0 or h < hv[-1] for h in hv)


def test_nothing_feasible_reports_the_least_violating_as_pymoo_does(tmp_path):
    impossible = 1.5  # f1 = x1 ∈ [0, 1]
    evofair.run(zdt(generations=4, constraints=(f"f1 >= {impossible}",)), tmp_path / "run", progress=False)
    alg, hv = _hand_written_pymoo(4, impossible)
    front = read_csv(tmp_path / "run" / "front.csv")
    assert [(float(r["f1_val"]), float(r["f2_val"])) for r in front] == [tuple(f) for f in alg.opt.get("F")]
    assert [r["feasible"] for r in front] == ["false"]
    assert float(front[0]["cv_val"]) == pytest.approx(impossible - float(front[0]["f1_val"]), abs=1e-15)
    assert hv == [0.0] * 4
    assert all(float(r["hv_val"]) == 0.0 for r in read_csv(tmp_path / "run" / "history.csv"))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "No evaluated model satisfies every constraint on validation" in report


def test_violations_and_cv_match_pymoo_by_hand():
    cs = [Constraint("error", "<=", 0.3), Constraint("acc", ">=", 0.8)]
    metrics = {"error": np.array([0.2, 0.5, np.nan]), "acc": np.array([0.9, 0.7, 0.85])}
    G = violations(cs, metrics, 3)
    np.testing.assert_allclose(G[:2], [[-0.1, -0.1], [0.2, 0.1]])
    assert G[2, 0] >= 1e12 and G[2, 1] == pytest.approx(-0.05)
    from pymoo.core.individual import calc_cv

    np.testing.assert_allclose(total_violation(G), [calc_cv(G=g) for g in G])
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert list(feasible_first(F, np.array([0.0, 0.0, 1.0]))) == [0, 1]
    assert list(feasible_first(F, np.array([0.3, 0.1, 0.2]))) == [1]  # none feasible: least violating
    assert list(feasible_first(F, None)) == [0, 1, 2]


@pytest.mark.parametrize("algorithm", ["nsga3", "smsemoa"])
def test_other_pymoo_algorithms_select_feasible_first(tmp_path, algorithm):
    evofair.run(zdt(generations=6, name=algorithm, n_partitions=4), tmp_path / "run", progress=False)
    front = read_csv(tmp_path / "run" / "front.csv")
    assert front and all(float(r["f1_val"]) >= BOUND and r["feasible"] == "true" for r in front)


# -- resume -------------------------------------------------------------------------------------
_cli = cli_subprocess


def test_killed_constrained_run_resumes_to_the_same_front(tmp_path, runs):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(zdt()))
    out = tmp_path / "run"
    killed = _cli(
        "run",
        str(recipe_file),
        "--out",
        str(out),
        "--quiet",
        env={"EVOFAIR_FAILPOINT": "kill_mid_commit@4"},
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "front.csv").exists()
    _cli("run", "--resume", str(out), "--quiet")
    reference = runs / "constrained"
    assert (out / "front.csv").read_text() == (reference / "front.csv").read_text()
    assert (out / "archive.csv").read_text() == (reference / "archive.csv").read_text()
    cut = lambda path: [r.rsplit(",", 1)[0] for r in path.read_text().splitlines()]  # seconds differ
    assert cut(out / "history.csv") == cut(reference / "history.csv")


# -- bad input: exit 2, one line, nothing written ------------------------------------------------
@pytest.mark.parametrize(
    "constraints, expected",
    [
        (["f1 < 0.5"], "constraints[0]: expected '<metric> <= <number>' or '<metric> >= <number>'"),
        (["f1 >= 0.5", "f2 <= lots"], "constraints[1]: expected"),
        (["f1 <= nan"], "constraints[0]: the bound must be a finite number"),
        (["f1 >= inf"], "constraints[0]: the bound must be a finite number"),
        ([0.5], "constraints[0]:"),
        ("f1 <= 0.5", "constraints: "),
        (["f3 <= 0.5"], "constraints[0]: problem zdt1 has no metric 'f3' (it stores: f1, f2)"),
        (["F1 >= 0.5"], "did you mean 'f1'?"),
    ],
)
def test_bad_constraints_exit_2_one_line_nothing_written(tmp_path, capsys, constraints, expected):
    recipe = zdt()
    recipe["constraints"] = constraints
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(recipe_file), "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not out.exists()


def test_cli_process_exits_2_on_an_unknown_metric(tmp_path):
    recipe = zdt(constraints=("error <= 0.3",))
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    proc = _cli("run", str(recipe_file), "--out", str(tmp_path / "out"), "--quiet", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "evofair: error: constraints[0]: problem zdt1 has no metric 'error' (it stores: f1, f2)"
    )
    assert not (tmp_path / "out").exists()


def test_deap_backend_refuses_constraints(tmp_path, capsys):
    recipe = zdt()
    recipe["algorithm"]["backend"] = "deap"
    with pytest.raises(UserError, match=r"^recipe: algorithm.backend: deap does not support constraints; use pymoo$"):
        parse_recipe(recipe)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(recipe_file), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"evofair: error: {recipe_file}: algorithm.backend: deap does not support constraints; use pymoo"
    )
    assert not (tmp_path / "out").exists()


class _LateMetrics(VectorProblem):
    """Knows its metric names only after setup (e.g. one per group found in the data)."""

    name = "late"
    objectives = (Objective("f1"), Objective("f2"))
    default_hv_ref = (1.1, 1.1)
    n_var, xl, xu = 2, np.zeros(2), np.ones(2)

    @property
    def metric_names(self):
        return ["f1", "f2", "gap_groupA"] if self._ready else None

    def evaluate(self, genomes, split):
        X = np.atleast_2d(np.asarray(genomes, dtype=float))
        return {"f1": X[:, 0], "f2": 1 - X[:, 0] + X[:, 1], "gap_groupA": X[:, 1]}


def test_metrics_known_after_setup_are_checked_before_the_run_folder_exists(tmp_path):
    recipe = {
        "name": "late",
        "problem": {"name": "late"},
        "algorithm": {"pop_size": 6, "generations": 2},
        "constraints": ["gap_groupB <= 0.1"],
    }
    with pytest.raises(UserError, match=r"constraints\[0\]: problem late has no metric 'gap_groupB'.*gap_groupA"):
        evofair.run(recipe, tmp_path / "out", problem=_LateMetrics(), progress=False)
    assert not (tmp_path / "out").exists()
    recipe["constraints"] = ["gap_groupA <= 0.1"]
    res = evofair.run(recipe, tmp_path / "ok", problem=_LateMetrics(), progress=False)
    assert res.front and all(i.metrics["val"]["gap_groupA"] <= 0.1 for i in res.front)


# -- what the run directory says ---------------------------------------------------------------------
def test_config_report_and_csv_columns(runs):
    out = runs / "constrained"
    assert yaml.safe_load((out / "config.yaml").read_text())["constraints"] == ["f1 >= 0.5"]
    assert "constraints" in yaml.safe_load((runs / "free" / "config.yaml").read_text())
    header = (out / "front.csv").read_text().splitlines()[0]
    assert header == "id,generation,f1_val,f1_test,f2_val,f2_test,feasible,cv_val,cv_test"
    assert (runs / "free" / "front.csv").read_text().splitlines()[0] == "id,generation,f1_val,f1_test,f2_val,f2_test"
    archive = read_csv(out / "archive.csv")
    for r in archive:  # hand-computed: g = 0.5 - f1
        assert float(r["cv_val"]) == pytest.approx(max(0.0, BOUND - float(r["f1_val"])), abs=1e-15)
        assert (r["feasible"] == "true") == (float(r["f1_val"]) >= BOUND)
    from evofair.store.run_store import RunStore

    store = RunStore(out, readonly=True)
    everyone = store.individuals()
    store.close()
    n_ok = sum(i.metrics["val"]["f1"] >= BOUND for i in everyone)
    n_front = len(read_csv(out / "front.csv"))
    report = (out / "report.md").read_text()
    assert "## Constraints" in report
    assert f"| `f1 >= 0.5` | {n_ok} | {n_ok} | {n_front} | {n_front} |" in report  # ZDT1: val = test
    assert 0 < n_ok < len(everyone)


def test_feature_classification_problems_offer_every_fairness_metric():
    from evofair.analysis.metrics import METRIC_NAMES
    from evofair.problems.common.classification import FeatureClassificationProblem

    assert list(FeatureClassificationProblem.metric_names.fget(object.__new__(FeatureClassificationProblem))) == list(
        METRIC_NAMES
    )
