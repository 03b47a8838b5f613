"""evofair: evolve populations of model checkpoints to find accuracy–fairness Pareto fronts."""

from evofair.analysis.result import Result, load
from evofair.api import run
from evofair.core.individual import Individual, Weights
from evofair.core.problem import Objective, Problem, VectorProblem, WeightsProblem
from evofair.core.registry import Args, component
from evofair.errors import UserError
from evofair.lifecycle.experiments import ExperimentRecipe, load_experiment
from evofair.lifecycle.experiments import run_experiment as experiment
from evofair.lifecycle.recipe import Recipe, load_recipe

__all__ = [
    "run",
    "load",
    "Result",
    "experiment",
    "UserError",
    "Individual",
    "Weights",
    "Objective",
    "Problem",
    "VectorProblem",
    "WeightsProblem",
    "Recipe",
    "load_recipe",
    "ExperimentRecipe",
    "load_experiment",
    "Args",
    "component",
]
__version__ = "0.1.0"
