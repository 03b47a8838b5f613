"""`evofair experiment` / `evofair.experiment`: a study that is not an evolutionary run has its own entry point.

An experiment recipe (`experiment: {name, args}`) is refused by `evofair run` and an evolutionary
recipe by `evofair experiment`, each with one line naming the other command; keys that only an
evolutionary run reads (`algorithm`, `operators`, ...) are refused in an experiment recipe instead of
being silently ignored. Runs are tiny: FairPO's table on MULAN emotions, 1 seed, 1 epoch, 2 methods.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import evofair
from evofair import cli
from evofair.errors import UserError
from evofair.lifecycle.experiments import ExperimentRecipe, parse_experiment

TINY = [
    "--set",
    "problem.args.data=mulan_emotions",
    "--set",
    "problem.args.hidden=8",
    "--set",
    "experiment.args.seeds=[0]",
    "--set",
    "experiment.args.epochs=1",
    "--set",
    "experiment.args.batch_size=64",
    "--set",
    "experiment.args.methods=[dpo_stable]",
]
ZDT1 = {
    "name": "tiny",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"pop_size": 6, "generations": 2},
    "seed": 1,
}


def one_error_line(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: ") and "Traceback" not in err, err
    return lines[0]


def write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


# -- a real (tiny) experiment through the CLI and through Python -------------------------------------
def test_fairpo_table_through_the_cli_and_the_python_api(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["experiment", "fairpo_yeast", "--out", str(out), "--quiet", "--seed", "3", *TINY]) == 0
    assert capsys.readouterr().out.startswith(f"evofair: wrote {out} (experiment fairpo_table, ")
    # config.yaml is the resolved experiment recipe: overrides applied, no evolutionary keys
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert set(config) == {"name", "problem", "experiment", "seed", "data_root", "paths"}
    assert config["seed"] == 3 and config["name"] == "fairpo_yeast"
    assert config["experiment"]["name"] == "fairpo_table"
    assert config["experiment"]["args"]["epochs"] == 1 and config["experiment"]["args"]["methods"] == ["dpo_stable"]
    assert config["problem"]["args"]["data"] == "mulan_emotions"
    recipe = parse_experiment(config, "config.yaml")  # the written recipe runs again as it is
    assert isinstance(recipe, ExperimentRecipe)
    # the experiment ran with those settings: BCE-SFT + the one method, 1 seed, 1 epoch of 5 steps
    runs = list(csv.DictReader(open(out / "fairpo_runs.csv")))
    assert [(r["method"], r["seed"]) for r in runs] == [("sft", "0"), ("dpo_stable", "0")]
    assert len(list(csv.DictReader(open(out / "trajectories.csv")))) == 5 * 2  # ⌈313 rows / 64⌉ × 2 methods
    # the problem got its args: P = the ⌈0.25·6⌉ = 2 rarest of emotions' 6 labels on train
    part = json.loads((out / "partition.json").read_text())
    freq = part["train_frequency"]
    assert len(freq) == 6 and sorted(part["privileged"]) == sorted(sorted(freq, key=freq.get)[:2])
    assert (out / "report.md").read_text().startswith("# evofair experiment: fairpo_yeast (FairPO table)")
    # the same recipe from Python gives the same table, to the byte
    raw = yaml.safe_load((out / "config.yaml").read_text())
    result = evofair.experiment(raw, tmp_path / "py", progress=False)
    assert result.out == str(tmp_path / "py") and result.timings["setup (data, features)"] >= 0
    assert "train (methods × seeds)" in result.timings
    for name in ("fairpo_runs.csv", "fairpo_table.csv", "config.yaml"):
        assert (tmp_path / "py" / name).read_bytes() == (out / name).read_bytes(), name


# -- a user's own experiment, named by reference --------------------------------------------------
MY_EXPERIMENT = '''
    import json
    import numpy as np
    from pydantic import Field
    from evofair import Args, UserError, component

    class FrontArgs(Args):
        n: int = Field(5, ge=2)
        refuse: bool = False

    @component("experiment", "zdt1_front", FrontArgs)
    def zdt1_front(recipe, problem, args, out, progress):
        """Evaluate the problem on its Pareto set x = (t, 0, ..., 0), t in [0, 1]."""
        if args.refuse:
            raise UserError("experiment.args.refuse: this experiment refuses")
        X = np.zeros((args.n, problem.n_var))
        X[:, 0] = np.linspace(0, 1, args.n)
        F = problem.evaluate(list(X), "test")
        (out / "front.json").write_text(json.dumps({"seed": recipe.seed, "n_var": problem.n_var,
                                                    "f1": F["f1"].tolist(), "f2": F["f2"].tolist()}))
        return {"evaluate": 0.0}
'''


@pytest.fixture
def my_recipe(tmp_path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_experiments.py").write_text(textwrap.dedent(MY_EXPERIMENT))
    return write(
        folder / "front.yaml",
        {
            "name": "front",
            "problem": {"name": "zdt1", "args": {"n_var": 4}},
            "experiment": {"name": "my_experiments:zdt1_front", "args": {"n": 5}},
            "seed": 7,
        },
    )


def test_own_experiment_by_reference(tmp_path, capsys, my_recipe):
    out = tmp_path / "out"
    assert cli.main(["experiment", str(my_recipe), "--out", str(out), "--quiet", "--seed", "9"]) == 0
    got = json.loads((out / "front.json").read_text())
    assert got["seed"] == 9 and got["n_var"] == 4  # recipe seed (overridden) and problem args reach it
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(got["f1"], t)
    np.testing.assert_allclose(got["f2"], [1 - math.sqrt(x) for x in t])  # ZDT1's front: f2 = 1 − √f1


def test_an_experiment_that_refuses_its_input_leaves_nothing(tmp_path, capsys, my_recipe):
    line = one_error_line(
        capsys, ["experiment", str(my_recipe), "--out", str(tmp_path / "new"), "--set", "experiment.args.refuse=true"]
    )
    assert "this experiment refuses" in line and not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(capsys, ["experiment", str(my_recipe), "--out", str(empty), "--set", "experiment.args.refuse=true"])
    assert empty.is_dir() and not any(empty.iterdir())


# -- the wrong entry point, wrong keys, unknown names: exit 2, one line, nothing written ----------
@pytest.mark.parametrize("recipe", ["fairpo_yeast", "runs/fairpo_yeast.yaml"])
def test_run_refuses_an_experiment_recipe(tmp_path, capsys, recipe, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    out = tmp_path / "out"
    line = one_error_line(capsys, ["run", recipe, "--out", str(out), "--quiet"])
    assert f"use `evofair experiment {recipe}`" in line and not out.exists()


def test_experiment_refuses_an_evolutionary_recipe(tmp_path, capsys):
    out = tmp_path / "out"
    line = one_error_line(capsys, ["experiment", "zdt1", "--out", str(out)])
    assert "use `evofair run zdt1`" in line and not out.exists()
    path = write(tmp_path / "evo.yaml", ZDT1)
    line = one_error_line(capsys, ["experiment", str(path), "--out", str(out)])
    assert f"use `evofair run {path}`" in line and not out.exists()


def test_the_python_api_refuses_the_other_kind(tmp_path):
    with pytest.raises(UserError, match="an experiment recipe.*evofair experiment"):
        evofair.run({"problem": {"name": "zdt1"}, "experiment": {"name": "fairpo_table"}}, tmp_path / "a")
    with pytest.raises(UserError, match="an evolutionary recipe.*evofair run"):
        evofair.experiment(ZDT1, tmp_path / "b")
    with pytest.raises(UserError, match="an evolutionary recipe"):
        evofair.experiment(evofair.Recipe.model_validate(ZDT1), tmp_path / "c")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "override,expected",
    [
        ("algorithm.pop_size=4", "algorithm: an experiment recipe has no `algorithm`"),
        ("operators.mutation.name=gaussian", "operators: an experiment recipe has no `operators`"),
        ("hv_ref=[1,1]", "hv_ref: an experiment recipe has no `hv_ref`"),
        ("executor.name=ray", "executor: an experiment recipe has no `executor`"),
        (
            "experiment.name=fairpo_tabel",
            "experiment.name: unknown experiment 'fairpo_tabel' (expected one of: "
            "fairpo_generation, fairpo_table, hyperdpo_alignment, hyperdpo_table",
        ),
        ("experiment.args.epochz=1", "experiment.args.epochz: unknown key (did you mean 'epochs'?)"),
        ("problem.args.hiden=8", "problem.args.hiden: unknown key (did you mean 'hidden'?)"),
        ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ],
)
def test_bad_experiment_recipes(tmp_path, capsys, override, expected):
    out = tmp_path / "out"
    line = one_error_line(capsys, ["experiment", "fairpo_yeast", "--out", str(out), "--set", override])
    assert expected in line and not out.exists()


def test_unknown_experiment_in_a_recipe_file(tmp_path, capsys):
    path = write(tmp_path / "r.yaml", {"problem": {"name": "zdt1"}, "experiment": {"name": "no_such_table"}})
    line = one_error_line(capsys, ["experiment", str(path), "--out", str(tmp_path / "out")])
    assert f"{path}: experiment.name: unknown experiment 'no_such_table'" in line
    assert not (tmp_path / "out").exists()


def test_out_dir_rules_and_no_recipe(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    line = one_error_line(capsys, ["experiment", "fairpo_yeast", "--out", str(full)])
    assert "exists and is not empty" in line and [p.name for p in full.iterdir()] == ["keep.txt"]
    assert "RECIPE: expected an experiment recipe" in one_error_line(capsys, ["experiment"])


def test_an_experiment_output_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "done"
    out.mkdir()
    write(out / "config.yaml", {"name": "x", "problem": {"name": "zdt1"}, "experiment": {"name": "fairpo_table"}})
    line = one_error_line(capsys, ["run", "--resume", str(out)])
    assert "an experiment's output" in line and [p.name for p in out.iterdir()] == ["config.yaml"]


def test_submit_refuses_an_experiment_before_contacting_a_cluster(tmp_path, capsys):
    recipe = str(Path(__file__).resolve().parents[2] / "runs" / "fairpo_yeast.yaml")
    line = one_error_line(capsys, ["submit", recipe, "--address", "http://127.0.0.1:9"])
    assert "evofair experiment" in line


# -- listings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["experiment", "--list"], ["experiments"]])
def test_experiments_are_listed_with_their_args(capsys, argv):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert {"fairpo_table", "hyperdpo_table", "hyperdpo_alignment"} <= set(lines)
    assert "epochs=40" in lines["fairpo_table"] and "[n_points=11]" in lines["hyperdpo_alignment"]
    # and the packaged experiment recipes, which `evofair recipes` marks too
    assert {"fairpo_yeast", "fairpo_enron", "hyperdpo_mq2008", "hyperdpo_hh_rlhf"} <= set(lines)
    assert "zdt1" not in lines
    assert cli.main(["recipes"]) == 0
    recipes = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "[experiment]" in recipes["fairpo_yeast"] and "[experiment]" not in recipes["zdt1"]
