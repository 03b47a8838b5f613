"""The engine against plain pymoo on ZDT1: same algorithm, same seed ⇒ same front."""

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize
from pymoo.problems import get_problem

import evofair
from evofair.store.run_store import RunStore


def test_zdt1_matches_plain_pymoo(tmp_path, zdt_recipe):
    zdt_recipe["algorithm"].update(pop_size=40, generations=30)
    res = evofair.run(zdt_recipe, tmp_path / "run", progress=False)
    plain = minimize(get_problem("zdt1", n_var=10), NSGA2(pop_size=40), ("n_gen", 30), seed=3)
    hv_plain = HV(ref_point=np.array([1.1, 1.1]))(plain.F)
    assert abs(res.history["hv_val"].iloc[-1] - hv_plain) < 1e-9
    ours = np.array(sorted((i.metrics["val"]["f1"], i.metrics["val"]["f2"]) for i in res.front))
    theirs = np.array(sorted(map(tuple, plain.F)))
    np.testing.assert_allclose(ours, theirs)


def test_run_directory_contents(tmp_path, zdt_recipe):
    out = tmp_path / "run"
    evofair.run(zdt_recipe, out, progress=False)
    for name in (
        "config.yaml",
        "evofair.sqlite",
        "front.csv",
        "archive.csv",
        "history.csv",
        "plots/front.png",
        "plots/hv.png",
        "report.md",
    ):
        assert (out / name).exists(), name
    header = (out / "front.csv").read_text().splitlines()[0]
    assert header == "id,generation,f1_val,f1_test,f2_val,f2_test"
    hist = (out / "history.csv").read_text().splitlines()
    assert hist[0] == "generation,hv_val,n_front,evaluations,seconds"
    assert len(hist) == 1 + 5
    store = RunStore(out, readonly=True)
    gens = store.generations()
    assert [g["evaluations"] for g in gens] == [20 * (k + 1) for k in range(5)]
    assert len(store.individuals()) == 100
    assert "reference point (1.1, 1.1)" in (out / "report.md").read_text()
