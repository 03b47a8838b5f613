"""The genome contract (evofair/core/genome.py) on the two built-in genomes, and the backends' adapters
(evofair/engine/pymoo_adapter.py, deap_adapter.py) that read it."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch

import evofair
from evofair.core.genome import VECTOR, WEIGHTS, ArrayGenome, Genome, WeightsGenome
from evofair.core.plugins import registry
from evofair.core.problem import Objective, VectorProblem, WeightsProblem
from evofair.engine import pymoo_adapter
from evofair.engine.deap_adapter import deap_supports, deap_variation
from evofair.engine.pipeline import GenomeRef, OpCall, Plan
from evofair.errors import UserError
from evofair.lifecycle.recipe import parse_recipe


def test_problem_classes_state_their_genome():
    from evofair.problems.classic.benchmarks import ZDT1
    from evofair.problems.classic.toy import ToyMLP
    from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams

    assert ZDT1.genome is VECTOR and ToyMLP.genome is WEIGHTS
    assert isinstance(BiasBios.genome, WeightsGenome) and BiasBios.genome is WEIGHTS
    # `genome: lora` selects the LoRA-delta genome once, at construction: a weights genome to the engine
    lora = BiasBios(BiasBiosParams(genome="lora"))
    assert type(lora) is BiasBios and lora.genome.name == "lora_delta"
    assert isinstance(lora.genome, WeightsGenome) and lora.genome.crossover_kind == "crossover"
    factors = BiasBios(BiasBiosParams(genome="lora", lora={"storage": "factors"}))
    assert factors.genome.name == "lora_factors" and BiasBios.genome is WEIGHTS  # the class keeps its own
    assert BiasBios(BiasBiosParams()).genome is WEIGHTS


def test_vector_genome_encoding_and_operator_kinds():
    items = [np.array([0.1, 0.2]), np.array([0.3, 0.4])]
    X = pymoo_adapter.to_matrix(VECTOR, items)
    assert X.dtype == float and X.shape == (2, 2)
    assert all(np.array_equal(a, b) for a, b in zip(pymoo_adapter.from_matrix(VECTOR, X), items))
    assert VECTOR.encoding == "array" and VECTOR.decode(VECTOR.encode(items[0])).tolist() == [0.1, 0.2]
    assert (VECTOR.crossover_kind, VECTOR.mutation_kind, VECTOR.refinable) == (
        "vector_crossover",
        "vector_mutation",
        False,
    )


def test_weights_genome_encoding_and_content_identity():
    a, b = GenomeRef("g0000i0000", "ab" * 32), GenomeRef("g0001i0003", "ab" * 32)
    X = pymoo_adapter.to_matrix(WEIGHTS, [a, Plan(init=OpCall("init", {}, 5))])
    assert X.dtype == object and X.shape == (2, 1)
    assert pymoo_adapter.from_matrix(WEIGHTS, X)[0] is a and WEIGHTS.encoding == "checkpoint"
    # the same weights under two ids are one genome (pymoo's and DEAP's duplicate checks use this)
    assert a == b and hash(a) == hash(b)
    var = deap_variation(
        WEIGHTS, parse_recipe({"problem": {"name": "toy_mlp"}, "operators": {"mutation": {"name": "gaussian"}}}), None
    )
    assert var.key(a) == var.key(b) and WEIGHTS.key(a) == WEIGHTS.key(b)
    assert (WEIGHTS.crossover_kind, WEIGHTS.mutation_kind, WEIGHTS.refinable) == ("crossover", "mutation", True)


def test_deap_vector_keys_are_exact_values():
    from evofair.problems.classic.benchmarks import ZDT1

    recipe = parse_recipe(
        {
            "problem": {"name": "zdt1", "args": {"n_var": 3}},
            "algorithm": {"backend": "deap"},
            "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        }
    )
    problem = ZDT1(registry("problem").get("zdt1").parse_args({"n_var": 3}, "p"))
    var = deap_variation(VECTOR, recipe, problem)
    x = var.initial(np.random.default_rng(0), 4)
    assert len(x) == 4 and all(np.all((0 <= v) & (v <= 1)) for v in x)
    assert var.key(x[0]) == tuple(float(v) for v in x[0]) and var.key(x[0]) != var.key(x[1])


def test_operators_are_checked_against_the_genome():
    with pytest.raises(UserError, match="operators.refine: vector problems have no weights to refine"):
        parse_recipe({"problem": {"name": "zdt1"}, "operators": {"refine": {"name": "sft"}}})
    with pytest.raises(UserError, match=r"operators.crossover.name: unknown vector_crossover 'uniform'"):
        parse_recipe({"problem": {"name": "zdt1"}, "operators": {"crossover": {"name": "uniform"}}})
    with pytest.raises(UserError, match=r"operators.crossover.name: unknown crossover 'sbx'"):
        parse_recipe({"problem": {"name": "toy_mlp"}, "operators": {"crossover": {"name": "sbx"}}})


class _NoBase(WeightsProblem):
    name = "nobase"
    objectives = (Objective("a"), Objective("b"))

    def init_weights(self, seed):
        return {"w": torch.zeros(2)}

    def evaluate(self, genomes, split):
        return {"a": np.zeros(len(genomes)), "b": np.zeros(len(genomes))}


def test_task_arithmetic_merges_need_a_base_and_say_so_before_running(tmp_path):
    recipe = {"problem": {"name": "nobase"}, "operators": {"crossover": {"name": "ties"}}}
    with pytest.raises(
        UserError,
        match=r"operators.crossover.name: 'ties' needs HasBase.base_weights, which "
        r"problem 'nobase' does not implement",
    ):
        evofair.run(recipe, tmp_path / "out", problem=_NoBase())
    assert not (tmp_path / "out").exists()


class _Steps(ArrayGenome):
    """Integer vectors on a grid: a custom genome only describes itself (sampling, type, key)."""

    name = "steps"
    vtype = int

    def sample(self, problem, rng, n):
        return rng.integers(0, 5, size=(n, self.n_var(problem)))


def test_a_custom_genome_describes_itself_and_the_adapters_do_the_rest():
    with pytest.raises(TypeError):  # an incomplete genome cannot be made
        type("Half", (Genome,), {"name": "half", "encoding": "array", "crossover_kind": "x", "mutation_kind": "y"})()

    class StepProblem(VectorProblem):
        genome = _Steps()
        objectives = (Objective("f"),)
        n_var, xl, xu = 3, 0, 4

        def evaluate(self, genomes, split):
            return {"f": np.asarray(genomes).sum(1)}

    genome, problem = StepProblem.genome, StepProblem()
    X = pymoo_adapter.to_matrix(genome, list(genome.sample(problem, np.random.default_rng(0), 4)))
    assert X.dtype == int and X.shape == (4, 3) and ((0 <= X) & (X < 5)).all()
    assert genome.decode(genome.encode(X[0])).dtype == int and genome.key(X[0]) == tuple(X[0].tolist())
    shape = pymoo_adapter.ShapeOnly(genome, problem)
    assert (shape.n_var, shape.vtype, shape.xu.tolist()) == (3, int, [4.0, 4.0, 4.0])
    # DEAP's SBX/PM need reals: an integer genome is sent to pymoo with one line
    assert deap_supports(VECTOR) and deap_supports(WEIGHTS) and not deap_supports(genome)
    with pytest.raises(UserError, match="'steps' genome needs algorithm.backend: pymoo"):
        deap_variation(genome, None, problem)


@pytest.mark.parametrize("backend", ["pymoo", "deap"])
def test_weights_recipe_with_mutation_only_evolves(tmp_path, backend):
    """No crossover in the recipe: parents are copied and mutated (pymoo used to apply its default
    SBX to GenomeRefs and fail with a TypeError). Every offspring after generation 0 has exactly one
    parent and a gaussian mutation in its lineage."""
    recipe = {
        "name": "mut-only",
        "problem": {"name": "toy_mlp"},
        "algorithm": {"name": "nsga2", "backend": backend, "pop_size": 6, "generations": 3},
        "operators": {"mutation": {"name": "gaussian", "args": {"sigma": 0.05}}},
        "seed": 3,
    }
    evofair.run(recipe, out=tmp_path / "run")
    con = sqlite3.connect(tmp_path / "run" / "evofair.sqlite")
    later = con.execute("SELECT id, operator FROM individuals WHERE generation > 0").fetchall()
    parents = dict(con.execute("SELECT child, COUNT(*) FROM lineage GROUP BY child").fetchall())
    con.close()
    assert len(later) == 12
    for ident, op in later:
        assert json.loads(op).keys() == {"mutation"} and parents[ident] == 1
