"""The hybrid schedule as a recipe key (`problem.args.hybrid`), run by `evofair run` and resumed.

Oracles: the CLI's final round against round 1 composed here by hand (the front merges of round 0
that add most HV, `refined_anchors`, appended to the recipe and run with `evofair.run`) and against
`run_hybrid` called directly: the same config.yaml and the same front, value for value; a resume
with one more round against the finished rounds' stores, byte for byte, and the new round's recipe
against the refinement of the round before; bad values against the one-line message naming the key.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import evofair
from evofair import cli
from evofair.analysis.result import Result
from evofair.api import run
from evofair.problems.merging.hybrid import refined_anchors, run_hybrid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_merge_front import _loans_inner  # noqa: E402

HYBRID = {"rounds": 1, "refine": 2}


def _recipe(tmp_path, hybrid=None) -> dict:
    args = {
        "inner": _loans_inner(tmp_path, n=400),
        "train_anchors": {"scalarisation": "linear", "lambdas": [0.0, 8.0], "epochs": 12},
    }
    args["method"] = "task_arithmetic"
    if hybrid is not None:
        args["hybrid"] = hybrid
    return {
        "name": "hybrid",
        "seed": 3,
        "problem": {"name": "merge", "args": args},
        "algorithm": {"pop_size": 6, "generations": 2},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": [1.0, 1.0],
    }


def _cli(tmp_path, recipe: dict, *args: str) -> int:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return cli.main(["run", str(path), "--quiet", *args])


def _config(folder: Path) -> dict:
    return yaml.safe_load((folder / "config.yaml").read_text())


def test_the_recipe_key_runs_the_rounds_the_python_form_runs(tmp_path, capsys):
    out = tmp_path / "cli"
    assert _cli(tmp_path, _recipe(tmp_path, HYBRID), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert f"of {out / 'round1'}, in {out / 'round1' / 'front.csv'}" in printed
    assert (out / "round1" / "front.csv").is_file()
    index = json.loads((out / "stages.json").read_text())
    assert index == {
        "schedule": "hybrid schedule",
        "stages": ["round0", "round1"],
        "finished": ["round0", "round1"],
        "final": "round1",
        "front": "round1/front.csv",
    }
    assert yaml.safe_load((out / "recipe.yaml").read_text())["problem"]["args"]["hybrid"] == HYBRID
    # round 0 is the recipe without the key; round 1 adds the refined anchors, by hand here
    plain = _recipe(tmp_path)
    assert _config(out / "round0")["problem"] == plain["problem"]
    round0 = Result(out / "round0")  # read back: its problem rebuilt from config.yaml
    picks = refined_anchors(round0, plain, 2, 12 // 3)
    by_hand = copy.deepcopy(plain)
    by_hand["problem"]["args"]["train_anchors"]["refined"] = picks
    expected = run(by_hand, tmp_path / "by_hand", progress=False)
    cfg1 = _config(out / "round1")
    assert cfg1["problem"] == by_hand["problem"] and "hybrid" not in cfg1["problem"]["args"]
    assert 1 <= len(picks) <= 2 and all(p["epochs"] == 4 for p in picks)
    cli_front = Result(out / "round1")
    np.testing.assert_array_equal(np.sort(cli_front.F, axis=0), np.sort(expected.F, axis=0))
    # the Python form: the same rounds, the same final front
    py = run_hybrid(_recipe(tmp_path), tmp_path / "py", rounds=1, refine=2, progress=False)
    assert Path(py.out) == tmp_path / "py" / "round1"
    assert _config(Path(py.out)) == {**cfg1, "base_dir": None}  # a recipe file records its folder
    np.testing.assert_array_equal(np.sort(py.F, axis=0), np.sort(cli_front.F, axis=0))
    assert cli.main(["report", str(out)]) == 0  # a staged run's report is its final round's
    assert (out / "round1" / "report.html").is_file() and not (out / "report.html").exists()
    # the other readers follow it too: verify checks every round, load and export the final one
    capsys.readouterr()
    assert cli.main(["verify", str(out)]) == 0
    checked = capsys.readouterr().out
    assert f"{out / 'round0'}: ok" in checked and f"{out / 'round1'}: ok" in checked
    assert list(evofair.load(out).ids) == list(cli_front.ids)
    assert cli.main(["export", str(out), cli_front.ids[0], "--to", str(tmp_path / "model")]) == 0
    assert (tmp_path / "model").exists()
    # resume with one more round: rounds 0 and 1 are read back untouched, round 2 refines round 1
    stores = {k: (out / f"round{k}" / "evofair.sqlite").read_bytes() for k in (0, 1)}
    assert cli.main(["run", "--resume", str(out), "--set", "problem.args.hybrid.rounds=2", "--quiet"]) == 0
    assert {k: (out / f"round{k}" / "evofair.sqlite").read_bytes() for k in (0, 1)} == stores
    assert json.loads((out / "stages.json").read_text())["final"] == "round2"
    refined2 = _config(out / "round2")["problem"]["args"]["train_anchors"]["refined"]
    assert refined2[: len(picks)] == picks
    assert refined2[len(picks) :] == refined_anchors(Result(out / "round1"), cfg1, 2, 4)


@pytest.mark.parametrize(
    "hybrid, expected",
    [
        ({"rounds": -1}, "problem.args.hybrid.rounds: Input should be greater than or equal to 0 (got -1)"),
        ({"rounds": 1, "refine": 0}, "problem.args.hybrid.refine: Input should be greater than or equal to 1"),
        ({"rounds": 1, "epochs": 0}, "problem.args.hybrid.epochs: Input should be greater than or equal to 1"),
        ({"rounds": True}, "problem.args.hybrid.rounds: Input should be a valid integer"),
        ({"round": 1}, "problem.args.hybrid.round: unknown key (did you mean 'rounds'?)"),
    ],
)
def test_bad_hybrid_values_are_one_line_naming_the_key(tmp_path, capsys, hybrid, expected):
    out = tmp_path / "out"
    assert _cli(tmp_path, _recipe(tmp_path, hybrid), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("evofair: error: ") and expected in err, err
    assert not out.exists()


def test_hybrid_rounds_need_trained_anchors(tmp_path, capsys):
    recipe = _recipe(tmp_path, HYBRID)
    args = recipe["problem"]["args"]
    del args["train_anchors"]
    args["anchors"] = [{"path": "a.safetensors"}, {"path": "b.safetensors"}]
    assert _cli(tmp_path, recipe, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "hybrid.rounds: fine-tunes front merges into train_anchors.refined: give train_anchors" in err, err


def test_a_staged_and_an_ordinary_folder_are_not_resumed_as_the_other(tmp_path, capsys):
    plain_run = tmp_path / "plain"
    plain_run.mkdir()
    (plain_run / "config.yaml").write_text("name: x\n")
    assert _cli(tmp_path, _recipe(tmp_path, HYBRID), "--resume", str(plain_run)) == 2
    assert "not a staged run's folder (no stages.json), but the recipe asks for a hybrid schedule" in (
        capsys.readouterr().err
    )
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "stages.json").write_text("{}")
    (staged / "recipe.yaml").write_text(yaml.safe_dump(_recipe(tmp_path, HYBRID)))
    assert _cli(tmp_path, _recipe(tmp_path), "--resume", str(staged)) == 2
    assert "a staged run's folder" in capsys.readouterr().err


def test_a_round_stopped_midway_is_resumed_where_it_stopped(tmp_path, monkeypatch, capsys):
    """The disk fills while round 1 commits its second generation: `--resume OUT` reads round 0
    back, continues round 1 from its first generation, and ends on the uninterrupted front."""
    from evofair.core import failpoints

    out = tmp_path / "cli"
    monkeypatch.setattr(failpoints, "_counts", {})
    monkeypatch.setenv("EVOFAIR_FAILPOINT", "sqlite_full_commit@4")  # round 0: 2 commits, round 1: the 2nd
    assert _cli(tmp_path, _recipe(tmp_path, HYBRID), "--out", str(out)) == 2
    assert "--resume" in capsys.readouterr().err
    assert json.loads((out / "stages.json").read_text())["finished"] == ["round0"]
    assert Result(out / "round1").history["generation"].tolist() == [0]
    assert cli.main(["report", str(out)]) == 2
    assert "a staged run whose stages have not all finished" in capsys.readouterr().err
    monkeypatch.delenv("EVOFAIR_FAILPOINT")
    assert cli.main(["run", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "stages.json").read_text())["final"] == "round1"
    whole = run_hybrid(_recipe(tmp_path), tmp_path / "whole", rounds=1, refine=2, progress=False)
    np.testing.assert_array_equal(np.sort(Result(out / "round1").F, axis=0), np.sort(whole.F, axis=0))


def test_a_problem_object_asking_for_rounds_is_refused(tmp_path):
    """Each round builds its problem from its own recipe: an object passed from Python cannot be one."""
    from evofair.errors import UserError
    from evofair.problems.merging.problem import MergeFront, MergeParams

    args = _recipe(tmp_path, HYBRID)["problem"]["args"]
    recipe = {k: v for k, v in _recipe(tmp_path).items() if k != "problem"}
    with pytest.raises(UserError, match="MergeFront's arguments ask for a hybrid schedule"):
        run(recipe, tmp_path / "out", problem=MergeFront(MergeParams(**args)), progress=False)
    assert not (tmp_path / "out").exists()
