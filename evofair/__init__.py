"""evofair: evolve populations of model checkpoints to find accuracy–fairness Pareto fronts."""

from evofair.api import run
from evofair.errors import UserError
from evofair.experiments import ExperimentRecipe, load_experiment
from evofair.experiments import run_experiment as experiment
from evofair.individual import Individual, Weights
from evofair.problem import Objective, Problem, VectorProblem, WeightsProblem
from evofair.recipe import Recipe, load_recipe
from evofair.registry import Args, component
from evofair.result import Result, load

__all__ = ["run", "load", "Result", "experiment", "UserError", "Individual", "Weights", "Objective", "Problem", "VectorProblem",
           "WeightsProblem", "Recipe", "load_recipe", "ExperimentRecipe", "load_experiment", "Args", "component"]
__version__ = "0.1.0"
