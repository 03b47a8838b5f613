"""Bad input through the command line: exit 2, one line naming the key or file, nothing written.

Most cases call `evofair.cli.main` in-process (fast); one goes through the installed
`.venv/bin/evofair` script to check what a user's shell really sees.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evofair import cli
from evofair.core.genome import WEIGHTS
from evofair.core.plugins import registry as _registry
from evofair.core.plugins import registry as op_registry
from evofair.errors import UserError
from evofair.lifecycle.recipe_file import MAX_RECIPE_BYTES


def problem_registry(kind="problem"):
    return _registry(kind)


GOOD = {
    "name": "tiny",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"pop_size": 6, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 1,
}


def write(path: Path, recipe) -> Path:
    path.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe, sort_keys=False))
    return path


def edited(**changes):
    """GOOD with dotted keys replaced, e.g. edited(**{"algorithm.pop_size": -3})."""
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = raw
        for k in parents:
            node = node[k]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return raw


def run_bad(capsys, tmp_path, recipe, *extra, out="out") -> str:
    """Run `evofair run`; assert exit 2, one stderr line, no traceback, no --out; return the line."""
    path = recipe if isinstance(recipe, Path) else write(tmp_path / "recipe.yaml", recipe)
    target = tmp_path / out
    rc = cli.main(["run", str(path), "--out", str(target), "--quiet", *extra])
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2, err
    assert err.startswith("evofair: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err + captured.out
    assert not target.exists() or not any(target.iterdir())
    return err.strip()


# -- recipe structure -----------------------------------------------------------------------
def test_misspelled_key_names_the_key_and_writes_nothing(capsys, tmp_path):
    raw = edited(**{"algorithm.pop_sise": 8})
    msg = run_bad(capsys, tmp_path, raw)
    assert "recipe.yaml: algorithm.pop_sise: unknown key" in msg
    assert "did you mean 'pop_size'" in msg
    assert not (tmp_path / "out").exists()


def test_misspelled_key_leaves_empty_out_dir_empty(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    msg = run_bad(capsys, tmp_path, edited(**{"operators.mutation.nme": "pm"}))
    assert "operators.mutation.nme: unknown key" in msg
    assert list((tmp_path / "out").iterdir()) == []


def test_misspelled_required_top_level_key_is_named(capsys, tmp_path):
    raw = edited(problem=KeyError)
    raw["problme"] = GOOD["problem"]
    msg = run_bad(capsys, tmp_path, raw)
    assert "problme: unknown key (did you mean 'problem'?)" in msg


def test_missing_required_key(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(problem=KeyError))
    assert "recipe.yaml: problem: required key missing" in msg


def test_unknown_key_inside_a_list_of_crossovers(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.crossover": [{"name": "sbx"}, {"nam": "sbx"}]}))
    assert "operators.crossover[1].nam: unknown key" in msg
    assert "list[" not in msg  # no pydantic union tags


def test_unknown_operator_lists_the_known_ones(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.crossover.name": "sbxx"}))
    assert "operators.crossover.name" in msg and "'sbxx'" in msg and "sbx" in msg.split("expected one of")[1]


def test_unknown_problem(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"problem.name": "zdt9"}))
    assert "problem.name" in msg and "'zdt9'" in msg and "zdt1" in msg


def test_wrong_type(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"algorithm.pop_size": "lots"}))
    assert "algorithm.pop_size" in msg and "integer" in msg and "'lots'" in msg


def test_wrong_type_for_a_union_field(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.crossover": 5}))
    assert "operators.crossover: expected" in msg and "mapping" in msg and "(got 5)" in msg


def test_negative_population(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"algorithm.pop_size": -3}))
    assert "algorithm.pop_size" in msg and "greater than or equal to 2" in msg


def test_unknown_algorithm(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"algorithm.name": "moead"}))
    assert "algorithm.name" in msg and "nsga2" in msg


# -- component arguments ----------------------------------------------------------------------
def test_bad_operator_argument(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.crossover.args": {"eta": -1}}))
    assert "operators.crossover.args.eta" in msg and "greater than 0" in msg


def test_misspelled_operator_argument(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.mutation.args": {"etta": 3}}))
    assert "operators.mutation.args.etta: unknown key (did you mean 'eta'?)" in msg


def test_bad_problem_argument(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"problem.args.n_var": 1}))
    assert "problem.args.n_var" in msg


def test_ties_density_above_one_is_rejected():
    with pytest.raises(UserError, match=r"^operators.crossover.args.density: .*less than or equal to 1"):
        op_registry("crossover").get("ties").parse_args({"density": 2}, "operators.crossover.args")
    with pytest.raises(UserError, match=r"^operators.crossover.args: expected a mapping"):
        op_registry("crossover").get("ties").parse_args(3, "operators.crossover.args")


def test_ties_density_in_a_weights_recipe(capsys, tmp_path):
    weights_problems = [s.name for s in problem_registry() if getattr(s.fn, "genome", None) is WEIGHTS]
    if not weights_problems:
        pytest.skip("no weights problem registered")
    raw = {
        "problem": {"name": weights_problems[0]},
        "operators": {"crossover": {"name": "ties", "args": {"density": 2}}, "mutation": {"name": "gaussian"}},
    }
    msg = run_bad(capsys, tmp_path, raw)
    assert "operators.crossover.args.density" in msg and "less than or equal to 1" in msg


def test_vector_problem_rejects_a_weights_operator(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, edited(**{"operators.crossover.name": "ties"}))
    assert "operators.crossover.name" in msg and "'ties'" in msg


# -- the file itself ---------------------------------------------------------------------------
def test_yaml_that_is_not_a_mapping(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, "- a\n- b\n")
    assert "recipe.yaml" in msg and "mapping" in msg and "list" in msg


def test_empty_recipe(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, "")
    assert "recipe.yaml: empty recipe" in msg


def test_invalid_yaml_names_file_and_line(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, "problem: {name: zdt1}\nalgorithm: [1, 2\nseed: 3\n")
    assert "recipe.yaml: line 3" in msg and "not valid YAML" in msg


def test_duplicate_key_is_an_error(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, "problem: {name: zdt1}\nseed: 1\nseed: 2\n")
    assert "line 3: duplicate key 'seed'" in msg


def test_yaml_merge_key_may_be_overridden(tmp_path):
    from evofair.lifecycle.recipe import read_recipe_file

    text = "problem: {name: zdt1}\nbase: &b {pop_size: 6, generations: 2}\nalgorithm: {<<: *b, pop_size: 8}\n"
    raw = read_recipe_file(write(tmp_path / "r.yaml", text))
    assert raw["algorithm"] == {"pop_size": 8, "generations": 2}


def test_python_tags_are_not_executed(capsys, tmp_path):
    marker = tmp_path / "pwned"
    text = f"problem: {{name: zdt1}}\nseed: !!python/object/apply:os.system ['touch {marker}']\n"
    msg = run_bad(capsys, tmp_path, text)
    assert "not valid YAML" in msg
    assert not marker.exists()


def test_alias_bomb_is_refused(capsys, tmp_path):
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    msg = run_bad(capsys, tmp_path, "problem: {name: zdt1}\nreport:\n" + "\n".join(lines) + "\n")
    assert "recipe.yaml: recipe expands to more than" in msg


@pytest.mark.parametrize("depth,expected", [(300, "nested deeper than 50 levels"), (5000, "nested too deeply")])
def test_deeply_nested_recipe_is_refused(capsys, tmp_path, depth, expected):
    # 300 levels validate but overflow the serializer once the run directory exists; 5,000 overflow YAML
    text = "problem: {name: zdt1}\nreport: {a: " + "[" * depth + "]" * depth + "}\n"
    msg = run_bad(capsys, tmp_path, text)
    assert f"recipe.yaml: recipe {expected}" in msg


def test_missing_recipe_file(capsys, tmp_path):
    msg = run_bad(capsys, tmp_path, tmp_path / "nope.yaml")
    assert "nope.yaml: recipe file not found" in msg


def test_recipe_directory(capsys, tmp_path):
    (tmp_path / "adir").mkdir()
    msg = run_bad(capsys, tmp_path, tmp_path / "adir")
    assert "adir: cannot read recipe" in msg


def test_recipe_over_one_megabyte(capsys, tmp_path):
    text = yaml.safe_dump(GOOD) + "#" * (MAX_RECIPE_BYTES + 1) + "\n"
    msg = run_bad(capsys, tmp_path, text)
    assert "recipe.yaml: recipe larger than 1000000 bytes" in msg


# -- --set and --out ---------------------------------------------------------------------------
def test_set_overrides_apply(capsys, tmp_path):
    path = write(tmp_path / "recipe.yaml", edited(**{"algorithm.generations": 50}))
    out = tmp_path / "run"
    rc = cli.main(
        [
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--set",
            "algorithm.generations=2",
            "--set",
            "algorithm.pop_size=4",
            "--set",
            "operators.crossover.args={eta: 7}",
            "--seed",
            "5",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["algorithm"]["generations"] == 2 and config["algorithm"]["pop_size"] == 4
    assert config["operators"]["crossover"]["args"] == {"eta": 7} and config["seed"] == 5
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2
    assert "evofair: wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "override,expected",
    [
        ("algorithm.pop_sise=3", "algorithm.pop_sise: unknown key"),
        ("algorithm.pop_size=abc", "algorithm.pop_size: Input should be a valid integer"),
        ("algorithm.pop_size=-1", "algorithm.pop_size: Input should be greater than or equal to 2"),
        ("seed", "--set seed: expected KEY=VALUE"),
        ("seed=[1", "--set seed: value '[1' is not valid YAML"),
        ("=3", "--set : expected a dotted KEY"),
        ("algorithm..pop_size=3", "--set algorithm..pop_size: expected a dotted KEY"),
        ("problem.name.x=1", "--set problem.name.x: 'name' is not a mapping"),
    ],
)
def test_bad_set_override(capsys, tmp_path, override, expected):
    msg = run_bad(capsys, tmp_path, GOOD, "--set", override)
    assert expected in msg


def test_out_existing_non_empty(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    path = write(tmp_path / "recipe.yaml", GOOD)
    rc = cli.main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"--out {out}: exists and is not empty" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_resume_of_a_non_run_directory(capsys, tmp_path):
    rc = cli.main(["run", "--resume", str(tmp_path / "nothing"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--resume" in err and "nothing" in err and err.count("\n") == 1


# -- listing and the real script ----------------------------------------------------------------
def test_problems_lists_problems_and_operators(capsys):
    assert cli.main(["problems"]) == 0
    out = capsys.readouterr().out
    sections = {line.rstrip(":") for line in out.splitlines() if not line.startswith(" ")}
    assert sections >= {
        "problems",
        "crossover operators",
        "mutation operators",
        "refine operators",
        "vector_crossover operators",
        "vector_mutation operators",
    }
    names = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert names >= set(problem_registry().names()) | set(op_registry("crossover").names())
    assert {"zdt1", "ties", "dare_ties", "gaussian", "sft", "sbx", "pm"} <= names
    # experiments are not a recipe key of `evofair run`: `evofair experiments` lists them
    assert not set(problem_registry("experiment").names()) & names
    ties_line = next(line for line in out.splitlines() if line.split()[:1] == ["ties"])
    assert "density=0.5" in ties_line and "lambda=1.0" in ties_line  # as a recipe spells it
    assert "[n_var=30]" in next(line for line in out.splitlines() if line.split()[:1] == ["zdt1"])


def test_installed_script_exits_2_with_one_line(tmp_path):
    script = Path(sys.executable).parent / "evofair"
    path = write(tmp_path / "recipe.yaml", edited(**{"algorithm.pop_sise": 8}))
    proc = subprocess.run(
        [str(script), "run", str(path), "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "algorithm.pop_sise: unknown key" in proc.stderr
    assert not (tmp_path / "out").exists()


# -- the Python API checks recipes the same way ---------------------------------------------------
class _PyProblem:
    """Stands in for a problem defined in Python (not in the registry): only its genome matters here."""

    genome = WEIGHTS


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"algorithm.pop_sise": 4}, "recipe: algorithm.pop_sise: unknown key (did you mean 'pop_size'?)"),
        (
            {"operators.crossover": {"name": "ties", "args": {"density": 2}}},
            "recipe: operators.crossover.args.density: Input should be less than or equal to 1 (got 2)",
        ),
        ({"operators.crossover": {"name": "sbx"}}, "recipe: operators.crossover.name: unknown crossover 'sbx'"),
        ({"operators.mutation": {"name": "gaussian", "args": {"sigma": -1}}}, "recipe: operators.mutation.args.sigma"),
    ],
)
def test_python_api_raises_user_error_before_writing(tmp_path, change, expected):
    import evofair

    raw = edited(**change)
    raw["problem"] = {"name": "my_python_problem"}
    if "operators.mutation" not in change:
        raw["operators"]["mutation"] = {"name": "gaussian"}
    if "operators.crossover" not in change:
        raw["operators"]["crossover"] = {"name": "uniform"}
    with pytest.raises(UserError) as info:
        evofair.run(raw, tmp_path / "out", problem=_PyProblem(), progress=False)
    assert str(info.value).startswith(expected), str(info.value)
    assert not (tmp_path / "out").exists()
