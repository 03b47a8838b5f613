"""`evofair experiment --list` names the methods each experiment compares (oracle: the method
tables the experiments themselves run)."""

from __future__ import annotations

from evofair.cli import main


def test_experiment_list_shows_each_experiments_method_names(capsys):
    from evofair.problems.fairpo.train import METHODS as FAIRPO_METHODS
    from evofair.problems.hyperdpo.table_methods import METHODS as HYPERDPO_METHODS

    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    method_lines = [line for line in out.splitlines() if line.strip().startswith("methods:")]
    fairpo = next(line for line in method_lines if "sft (BCE-SFT)" in line)
    assert all(f"{k} ({m.label})" in fairpo for k, m in FAIRPO_METHODS.items())
    hyperdpo = next(line for line in method_lines if "dpo_soup" in line)
    assert all(m in hyperdpo for m in HYPERDPO_METHODS)
