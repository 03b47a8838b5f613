"""Recipes: the YAML (or dict) that fully describes a run, validated before anything is written.

Every error is one line naming the key (dotted path) or file and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from evofair.core.constraints import Constraint, MalformedConstraint, parse_all
from evofair.core.problem import missing_capabilities
from evofair.core.registry import explain_validation_error
from evofair.errors import UserError
from evofair.lifecycle.rebuild import MAX_REF_DIRS
from evofair.lifecycle.recipe_file import apply_overrides, check_shape, look_next_to, read_recipe_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # `hv_ref: [.nan, .inf]` is refused


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_number", "expected a number, not a boolean")
    return value


# pydantic takes `true` as 1 for an int or float (`--set algorithm.generations=true` ran one
# generation): counts and rates refuse booleans. The bounds keep what allocates at start (the
# population, its offspring, NSGA-III's reference directions) within memory, before the run folder exists.
Count = Annotated[int, BeforeValidator(_not_bool)]
Rate = Annotated[float, BeforeValidator(_not_bool)]
MAX_POPULATION = 1_000_000
MAX_GENERATIONS = 1_000_000_000
MAX_HV_BOX = 1e300  # product of |hv_ref| values: beyond it the hypervolume overflows to inf


class ProblemCfg(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    not_rebuildable: str | None = Field(
        None,
        description="written by evofair for a problem object passed from "
        "Python that name and args cannot rebuild: why (evofair/lifecycle/rebuild.py)",
    )


class OpCfg(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    weight: Rate = Field(1.0, gt=0, description="relative chance of this operator when several are listed")


class OperatorsCfg(_Strict):
    crossover: list[OpCfg] | OpCfg | None = None
    crossover_prob: Rate = Field(0.9, ge=0, le=1)
    mutation: OpCfg | None = None
    mutation_prob: Rate = Field(1.0, ge=0, le=1)
    refine: OpCfg | None = None
    refine_initial: bool | OpCfg = Field(
        True,
        description="also refine the initial population: true (with "
        "`refine`), false, or its own operator (e.g. a longer fine-tune)",
    )

    @property
    def initial_refine(self) -> OpCfg | None:
        """Generation 0's local search: `refine_initial` when it names one, else `refine` or nothing."""
        if isinstance(self.refine_initial, OpCfg):
            return self.refine_initial
        return self.refine if self.refine_initial else None

    @property
    def crossovers(self) -> list[OpCfg]:
        if self.crossover is None:
            return []
        return self.crossover if isinstance(self.crossover, list) else [self.crossover]


class AlgorithmCfg(_Strict):
    name: Literal["nsga2", "nsga3", "smsemoa"] = "nsga2"
    backend: Literal["pymoo", "deap"] = "pymoo"
    pop_size: Count = Field(100, ge=2, le=MAX_POPULATION)
    generations: Count = Field(
        100, ge=1, le=MAX_GENERATIONS, description="generations, the initial population included (pymoo n_gen)"
    )
    n_offsprings: Count | None = Field(None, ge=1, le=MAX_POPULATION)
    n_partitions: Count = Field(
        12,
        ge=1,
        le=MAX_REF_DIRS,
        description="NSGA-III reference directions per objective (at most "
        f"{MAX_REF_DIRS:,} directions in all, checked against the problem's objectives)",
    )

    @field_validator("backend")
    @classmethod
    def _backend_has_algorithm(cls, backend, info):
        name = info.data.get("name")
        if backend == "deap" and name not in (None, "nsga2"):
            raise PydanticCustomError("backend", f"deap implements nsga2 only, not {name} (use pymoo)")
        return backend


class ExecutorCfg(BaseModel):
    """`executor:`: `name`, a component of kind `executor` (serial, processes, ray, `module:Class`), and
    that executor's own fields, flat beside it: checked by its args model in `validate_components`."""

    model_config = ConfigDict(extra="allow")
    name: str = Field("serial", min_length=1)

    @property
    def fields(self) -> dict[str, Any]:  # the executor's own fields: everything but `name`
        return dict(self.model_extra or {})


class CallbackCfg(_Strict):
    """One run tracker: a `callback` component (tensorboard, mlflow, or `module:Name`) and its args."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: Annotated[float, BeforeValidator(_not_bool)] | None = Field(
        None,
        gt=0,
        le=86_400,
        description="seconds one call of this callback may take; past it the run stops in one line "
        "(the generation already committed, so --resume continues); unset: no limit",
        exclude_if=lambda value: value is None,  # config.yaml of a run without a limit stays as before
    )


def _constraint_text(text: str) -> str:
    """One `"<metric> <= <number>"` (or `>=`) item of `constraints:`, checked here, kept as written."""
    try:
        Constraint.parse_or_reason(text)
    except MalformedConstraint as exc:  # pydantic adds the location (constraints[i]) and the value
        raise PydanticCustomError("constraint", str(exc)) from None
    return text.strip()


class IntervalsCfg(_Strict):
    """Bootstrap intervals on test (evofair/analysis/uncertainty.py) for problems with per-example outputs."""

    enabled: bool = True
    level: Rate = Field(0.9, gt=0, lt=1, description="confidence level of the percentile intervals")
    n_boot: Count = Field(1000, ge=10, le=100_000, description="bootstrap resamples (stratified by group x class)")


class SizedForCfg(_Strict):
    """The hardware a recipe's sizes (data, population, generations) are meant for. Never changes
    results: on other hardware the run start says so and prints the `trial` as `--set` flags."""

    device: Literal["gpu"]
    trial: dict[str, Any] = Field(
        default_factory=dict, description="dotted recipe keys and values for a small trial run (`--set KEY=VALUE`)"
    )


class Recipe(_Strict):
    name: str = Field(
        "run",
        min_length=1,
        max_length=200,
        pattern=r"^[^/\x00]+$",
        description="names the default run directory: no '/'",
    )
    problem: ProblemCfg
    algorithm: AlgorithmCfg = Field(default_factory=AlgorithmCfg)
    operators: OperatorsCfg = Field(default_factory=OperatorsCfg)
    executor: ExecutorCfg = Field(default_factory=ExecutorCfg)
    seed: Count = Field(1, ge=0, le=2**63 - 1)  # stored in SQLite's 64-bit integers
    hv_ref: list[Rate] | None = Field(None, min_length=1, description="HV reference point, minimised space")
    data_root: str | None = None
    base_dir: str | None = Field(
        None,
        description="the recipe file's folder (recorded when read from a file): "
        "problems resolve relative data paths against it",
    )
    paths: list[str] = Field(
        default_factory=list,
        description="folders searched for `module:attr` components (a recipe file that uses one adds its own folder)",
    )
    report: dict[str, Any] = Field(default_factory=dict)
    intervals: IntervalsCfg = Field(default_factory=IntervalsCfg)
    callbacks: list[CallbackCfg] = Field(
        default_factory=list,
        description="run trackers called after each "
        "generation, model and at the end (docs/operations.md); never change results",
    )
    constraints: list[Annotated[str, AfterValidator(_constraint_text)]] = Field(
        default_factory=list,
        description="feasibility-first selection on validation metrics: "
        "'<metric> <= <number>' or '<metric> >= <number>'",
    )
    sized_for: SizedForCfg | None = Field(
        None, description="the hardware the recipe is sized for, and a small trial for others (docs/operations.md)"
    )

    @field_validator("hv_ref")
    @classmethod
    def _hv_box_finite(cls, ref):
        if ref is not None and math.prod(max(abs(v), 1.0) for v in ref) > MAX_HV_BOX:
            raise PydanticCustomError(
                "hv_ref",
                f"values so large that the hypervolume overflows (the product of their sizes is over {MAX_HV_BOX:g})",
            )
        return ref

    @model_validator(mode="after")
    def _check(self):
        if self.algorithm.n_offsprings is None:
            self.algorithm.n_offsprings = self.algorithm.pop_size
        if self.constraints and self.algorithm.backend == "deap":
            raise PydanticCustomError(
                "deap_constraints", "algorithm.backend: deap does not support constraints; use pymoo"
            )
        return self

    @property
    def parsed_constraints(self) -> tuple[Constraint, ...]:
        """(metric, op, bound) of each `constraints:` item, in order."""
        return parse_all(self.constraints)


def parse_recipe(raw: Mapping[str, Any], source: str = "recipe", *, problem=None) -> Recipe:
    """Validate the recipe structure, then each operator's and the problem's own arguments.

    With `problem` (an object defined in Python, as `evofair.run(..., problem=)` takes), the
    problem is not looked up in the registry, but the operators are still checked against it.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: a recipe must be a mapping, got a {type(raw).__name__}")
    check_shape(raw, source)
    if "experiment" in raw:  # its own recipe kind (evofair/lifecycle/experiments.py), not a key of this one
        raise UserError(
            f"{source}: an experiment recipe (it has `experiment:`), not an evolutionary run: "
            f"run it with `evofair experiment {source}` (Python: evofair.experiment)"
        )
    try:
        recipe = Recipe.model_validate(dict(raw))
    except ValidationError as exc:
        path, msg = explain_validation_error(exc, Recipe, dict(raw))
        raise UserError(f"{source}: {path}: {msg}" if path else f"{source}: {msg}") from None
    validate_components(recipe, source, problem)
    return recipe


def validate_components(recipe: Recipe, source: str, problem=None) -> None:
    from evofair.core.genome import ArrayGenome, genome_of
    from evofair.core.plugins import registry
    from evofair.lifecycle.executor_section import resolve_executor

    def op_registry(kind):
        return registry(kind, recipe.paths)

    recipe.executor = resolve_executor(recipe.executor, recipe.paths, f"{source}: executor")
    if problem is None:
        from evofair.lifecycle.rebuild import check_own_params, check_rebuildable

        check_rebuildable(recipe.problem)  # config.yaml of a Python object that its record cannot rebuild
        pspec = registry("problem", recipe.paths).get(recipe.problem.name, f"{source}: problem.name")
        check_own_params(pspec, f"{source}: problem.name")
        pspec.parse_args(recipe.problem.args, f"{source}: problem.args")
        problem = pspec.fn
    for i, cfg in enumerate(recipe.callbacks):
        spec = registry("callback", recipe.paths).get(cfg.name, f"{source}: callbacks[{i}].name")
        spec.parse_args(cfg.args, f"{source}: callbacks[{i}].args")
    genome = genome_of(problem)
    if recipe.algorithm.backend == "deap" and isinstance(genome, ArrayGenome) and genome.vtype is not float:
        # DEAP's bounded SBX/PM vary reals; other arrays are varied by pymoo operator objects
        raise UserError(
            f"{source}: algorithm.backend: deap varies real vectors and checkpoints; the "
            f"{genome.name!r} genome needs algorithm.backend: pymoo"
        )
    for where, spec in genome.check_operators(recipe, source, op_registry):
        missing = missing_capabilities(problem, spec.tags.get("requires", ()))
        if missing:
            raise UserError(
                f"{where}: {spec.name!r} needs {', '.join(missing)}, which problem "
                f"{recipe.problem.name!r} does not implement"
            )


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    raw = look_next_to(apply_overrides(read_recipe_file(path), overrides or []), path)
    return parse_recipe(raw, str(path))


def resolved_yaml(recipe: BaseModel) -> str:
    tree = recipe.model_dump(mode="json", by_alias=True)
    problem = tree.get("problem")
    if isinstance(problem, dict) and problem.get("not_rebuildable") is None:  # set only for Python objects
        problem.pop("not_rebuildable", None)
    return yaml.safe_dump(tree, sort_keys=False)
