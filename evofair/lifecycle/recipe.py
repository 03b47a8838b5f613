"""Recipes: the YAML (or dict) that fully describes a run, validated before anything is written.

Every error is one line naming the key (dotted path) or file and what was expected.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from evofair.core.constraints import Constraint, MalformedConstraint, parse_all
from evofair.core.plugins import is_reference
from evofair.core.problem import missing_capabilities
from evofair.core.registry import explain_validation_error
from evofair.errors import UserError

MAX_RECIPE_BYTES = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # `hv_ref: [.nan, .inf]` is refused


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
    weight: float = Field(1.0, gt=0, description="relative chance of this operator when several are listed")


class OperatorsCfg(_Strict):
    crossover: list[OpCfg] | OpCfg | None = None
    crossover_prob: float = Field(0.9, ge=0, le=1)
    mutation: OpCfg | None = None
    mutation_prob: float = Field(1.0, ge=0, le=1)
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
    pop_size: int = Field(100, ge=2)
    generations: int = Field(100, ge=1, description="generations, the initial population included (pymoo n_gen)")
    n_offsprings: int | None = Field(None, ge=1)
    n_partitions: int = Field(12, ge=1, description="NSGA-III reference directions per objective")

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
    level: float = Field(0.9, gt=0, lt=1, description="confidence level of the percentile intervals")
    n_boot: int = Field(1000, ge=10, le=100_000, description="bootstrap resamples (stratified by group x class)")


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
    seed: int = Field(1, ge=0)
    hv_ref: list[float] | None = Field(None, min_length=1, description="HV reference point, minimised space")
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


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise UserError(f"--set {dotted}: expected a dotted KEY such as algorithm.pop_size")
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"--set {dotted}: {k!r} is not a mapping")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` overrides; values are parsed as YAML (safe, duplicate keys refused)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        if len(value) > MAX_RECIPE_BYTES:
            raise UserError(
                f"--set {key[:60]}: value of {len(value)} characters is over the {MAX_RECIPE_BYTES}-byte recipe limit"
            )
        if _flow_depth(value) + key.count(".") + 1 > MAX_RECIPE_DEPTH:  # before the parser recurses
            raise UserError(f"--set {key[:60]}: value nested deeper than {MAX_RECIPE_DEPTH} levels")
        try:
            parsed = yaml.load(value, Loader=_StrictLoader) if value else None
        except UserError as exc:
            raise UserError(f"--set {key}: {exc}") from None
        except (yaml.YAMLError, RecursionError):
            raise UserError(f"--set {key}: value {value[:80]!r} is not valid YAML") from None
        _set_dotted(out, key, parsed)
    return out


def _flow_depth(text: str) -> int:
    """Deepest nesting of `[`/`{` brackets (outside quotes) or of indentation in a YAML value.

    Measured on the text because PyYAML's parser recurses once per level: 5,000 nested `[` would
    exhaust the stack (a RecursionError deep inside the parser) before any depth check could run.
    """
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    indents = {len(line) - len(line.lstrip(" -")) for line in text.splitlines() if line.strip()}
    return max(deepest, len(indents))


class _StrictLoader(yaml.SafeLoader):
    """safe_load that rejects duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if duplicate:
                raise UserError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        return super().construct_mapping(node, deep=deep)


MAX_RECIPE_VALUES = 100_000
MAX_RECIPE_DEPTH = 50


def _check_shape(tree: Any, source: str) -> None:
    """Refuse recipes that would exhaust memory or the stack later (while validating or saving).

    YAML anchors let a 1 kB file expand to billions of values when the recipe is validated or
    written back, and deep nesting overflows pydantic's serializer after the run directory exists.
    Shared (aliased) nodes are counted each time they are reached; counting stops at the limit.
    """
    stack, n = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        n += 1
        if n > MAX_RECIPE_VALUES:
            raise UserError(f"{source}: recipe expands to more than {MAX_RECIPE_VALUES} values (YAML aliases?)")
        if depth > MAX_RECIPE_DEPTH:
            raise UserError(f"{source}: recipe nested deeper than {MAX_RECIPE_DEPTH} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def _read_recipe_text(path: Path) -> str:
    """The recipe file's text: a regular file of at most MAX_RECIPE_BYTES (read so, not trusted
    from its size: `/dev/zero` or a FIFO reports 0 bytes), or a one-line error."""
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{path}: recipe file not found") from None
    except OSError as exc:
        why = {errno.ELOOP: "a symbolic link loop", errno.ENAMETOOLONG: "file name too long"}.get(
            exc.errno, exc.strerror
        )
        raise UserError(f"{path}: cannot read recipe ({why})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise UserError(f"{path}: cannot read recipe ({what}, expected a YAML file)")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise UserError(f"{path}: recipe larger than {MAX_RECIPE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: cannot read recipe (not UTF-8 text)") from None


def read_recipe_file(path: str | Path) -> dict:
    path = Path(path)
    text = _read_recipe_text(path)
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python objects
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except RecursionError:
        raise UserError(f"{path}: recipe nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", "") or "").split())
        raise UserError(f"{path}:{where} not valid YAML" + (f" ({problem})" if problem else "")) from None
    if raw is None:
        raise UserError(f"{path}: empty recipe (expected a YAML mapping with at least `problem:`)")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping, got a {type(raw).__name__}")
    _check_shape(raw, str(path))
    raw.setdefault("name", path.stem)
    if "experiment" not in raw:  # kept on --resume: config.yaml records the original recipe's folder
        raw.setdefault("base_dir", str(path.resolve().parent))
    if _references(raw):  # `module:attr` components: look next to the recipe too
        here = path.resolve().parent
        paths = raw.get("paths") if isinstance(raw.get("paths"), list) else []
        raw["paths"] = list(dict.fromkeys([str(here)] + [str(here / str(p)) for p in paths]))
    return raw


def _references(raw: Mapping[str, Any]) -> bool:
    """Does the recipe name any component by `module:attr`?"""
    names = []
    for key in ("problem", "experiment", "executor"):
        if isinstance(raw.get(key), Mapping):
            names.append(raw[key].get("name"))
    ops = raw.get("operators")
    if isinstance(ops, Mapping):
        for key in ("crossover", "mutation", "refine"):
            value = ops.get(key)
            for cfg in value if isinstance(value, list) else [value]:
                if isinstance(cfg, Mapping):
                    names.append(cfg.get("name"))
    callbacks = raw.get("callbacks")
    for cfg in callbacks if isinstance(callbacks, list) else []:
        if isinstance(cfg, Mapping):
            names.append(cfg.get("name"))
    return any(isinstance(n, str) and is_reference(n) for n in names)


def parse_recipe(raw: Mapping[str, Any], source: str = "recipe", *, problem=None) -> Recipe:
    """Validate the recipe structure, then each operator's and the problem's own arguments.

    With `problem` (an object defined in Python, as `evofair.run(..., problem=)` takes), the
    problem is not looked up in the registry, but the operators are still checked against it.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: a recipe must be a mapping, got a {type(raw).__name__}")
    _check_shape(raw, source)
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
        from evofair.lifecycle.rebuild import check_rebuildable

        check_rebuildable(recipe.problem)  # config.yaml of a Python object that its record cannot rebuild
        pspec = registry("problem", recipe.paths).get(recipe.problem.name, f"{source}: problem.name")
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
    raw = apply_overrides(read_recipe_file(path), overrides or [])
    return parse_recipe(raw, str(path))


def resolved_yaml(recipe: Recipe) -> str:
    tree = recipe.model_dump(mode="json", by_alias=True)
    problem = tree.get("problem")
    if isinstance(problem, dict) and problem.get("not_rebuildable") is None:  # set only for Python objects
        problem.pop("not_rebuildable", None)
    return yaml.safe_dump(tree, sort_keys=False)
