"""What config.yaml records for a problem passed as a Python object, and whether it can be rebuilt.

`evofair.run(recipe, out, problem=obj)` runs an object, not a recipe entry; without this module
its config.yaml kept the recipe's label and arguments, which said nothing (or something false)
about what ran, and `--resume` / `explore` could not rebuild it. So the record states the object:

- `problem.name`: the class's import path `module:Class` (or the recipe's registered name when that
  name is exactly this class), so `--resume` and `explore` rebuild it as a recipe would name it;
- `problem.args`: the problem's `Params` as JSON (or its own `recipe_args()`, e.g. a DataFrame's
  shape and sha256 in place of a file);
- `paths`: the folder the class's module was imported from, when it is not an installed package;
- `problem.not_rebuildable`: why the record cannot rebuild the object (a class defined in a script
  or a function, a constructor taking more than `Params`, data held only in memory), which
  `--resume` and `explore` then say in one line instead of failing half-way.

`ProblemFactory` is the other half of rebuilding: what an executor's workers (Ray actors, local
processes) receive to build the same problem in their own process.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evofair.core.constraints import check_metrics
from evofair.errors import UserError

MAX_REF_DIRS = 100_000  # NSGA-III reference directions (each a row pymoo allocates and compares)

PYTHON_ONLY_HINT = (
    "continue it from Python with evofair.run(resume=DIR, problem=<the same object>) and read it "
    "with evofair.load(DIR), which need no rebuild"
)


@dataclass(frozen=True)
class ProblemFactory:
    """Everything needed to rebuild the problem in another process (sent to each worker once)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    paths: tuple[str, ...] = ()  # folders searched for a `module:attr` problem
    instance: Any = None  # a problem object passed from Python; shipped as is (pickled)
    base_dir: str | None = None  # the recipe's folder, for problems that resolve relative paths

    def build(self):
        from evofair.core.plugins import registry

        if self.instance is not None:
            return self.instance
        spec = registry("problem", self.paths).get(self.name)
        return with_base_dir(spec.fn(spec.args(**self.params), data_root=self.data_root), self.base_dir)


def with_base_dir(problem, base_dir: str | None):
    """Problems that read files by relative path (those with a `base_dir` attribute) resolve them
    against the recipe's folder."""
    if base_dir is not None and hasattr(problem, "base_dir"):
        problem.base_dir = base_dir
    return problem


def class_reference(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def record_problem(recipe, problem) -> None:
    """Fill `recipe.problem` (name, args, not_rebuildable), `paths` and `data_root` from `problem`."""
    cls = type(problem)
    ref = class_reference(cls)
    args, blocker = _arguments(problem)
    blocker = _class_blocker(cls) or blocker or _constructor_blocker(cls) or _own_blocker(problem)
    cfg = recipe.problem
    cfg.name = cfg.name if _names_class(cfg.name, cls, recipe.paths, args) else ref
    cfg.args = args
    cfg.not_rebuildable = blocker
    if recipe.data_root is None and getattr(problem, "data_root", None) is not None:
        recipe.data_root = str(problem.data_root)  # rebuilt with the data root the object was given
    folder = None if blocker else _import_folder(cls)
    if folder is not None and folder not in recipe.paths:
        recipe.paths = [*recipe.paths, folder]


def build_problem(recipe):
    """The problem a resolved recipe names, built (not set up) as a recipe file would build it."""
    from evofair.core.plugins import registry

    check_rebuildable(recipe.problem)  # a Python object config.yaml cannot rebuild: one line, not a traceback
    spec = registry("problem", recipe.paths).get(recipe.problem.name, "problem.name")
    return with_base_dir(
        spec.fn(spec.parse_args(recipe.problem.args, "problem.args"), data_root=recipe.data_root), recipe.base_dir
    )


def check_rebuildable(cfg) -> None:
    """Refuse, in one line, to rebuild a problem whose record says it cannot be (before any write)."""
    reason = getattr(cfg, "not_rebuildable", None)
    if reason:
        raise UserError(
            f"problem.name {cfg.name}: a problem object passed from Python that config.yaml cannot "
            f"rebuild ({reason}); {PYTHON_ONLY_HINT}"
        )


def check_own_params(spec, where: str) -> None:
    """A subclass of a registered problem inherits its code but not its arguments model (the
    `component` mark belongs to the marked class alone), so it would be built with the empty base
    `Params` and fail inside the parent's constructor; say so before anything is written."""
    from evofair.core.registry import spec_of

    cls = spec.fn
    if not isinstance(cls, type) or spec_of(cls) is not None or spec.args.model_fields:
        return
    for base in cls.__mro__[1:]:
        parent = spec_of(base)
        if parent is not None and parent.kind == "problem" and parent.args.model_fields:
            raise UserError(
                f"{where} {spec.name}: {cls.__qualname__} subclasses the problem {parent.name!r} but has no "
                f"`Params` of its own; add `Params = {parent.args.__name__}` (or its own arguments model) to the class"
            )


def _arguments(problem) -> tuple[dict[str, Any], str | None]:
    """(the arguments to record, why they cannot rebuild the object or None)."""
    own = getattr(problem, "recipe_args", None)
    if callable(own):
        return dict(own()), None
    from evofair.core.registry import spec_of

    spec = spec_of(type(problem))  # the arguments model a recipe's args are validated with, as in plugins.py
    model = spec.args if spec is not None else getattr(type(problem), "Params", None)
    params = getattr(problem, "params", None)
    if params is None or model is None or not isinstance(params, model):
        return {}, f"its params are not an instance of {getattr(model, '__name__', 'its Params')}"
    try:
        args = params.model_dump(mode="json", by_alias=True)
        same = model.model_validate(args) == params
    except Exception as exc:  # pydantic's serialisation errors for arbitrary types
        return {}, f"its Params do not serialise to YAML ({exc.__class__.__name__})"
    return args, None if same else "its Params do not round-trip through YAML"


def _class_blocker(cls: type) -> str | None:
    if "<locals>" in cls.__qualname__:
        return f"class {cls.__qualname__} is defined inside a function"
    if cls.__module__ == "__main__":
        return f"class {cls.__qualname__} is defined in the __main__ script, not an importable module"
    try:
        obj: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part)
    except Exception:  # noqa: BLE001 - any failure means: not importable by its name
        obj = None
    return None if obj is cls else f"{class_reference(cls)} does not import as this class"


def _constructor_blocker(cls: type) -> str | None:
    """Rebuilding calls `cls(Params(**args), data_root=...)` (as a recipe does): a constructor with
    other arguments would be rebuilt without them."""
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]  # the class's own constructor is what a recipe calls
    except (TypeError, ValueError):
        return None
    rest = list(sig.parameters.values())[1:]
    positional = [p for p in rest if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    extra = [p.name for p in positional[1:]] + [
        p.name for p in rest if p.kind == p.KEYWORD_ONLY and p.name != "data_root"
    ]
    if positional and positional[0].name == "params" and not extra:
        return None
    taken = ", ".join(p.name for p in rest if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return f"{cls.__qualname__}.__init__ takes ({taken}), not only (params, data_root)"


def _own_blocker(problem) -> str | None:
    hook = getattr(problem, "rebuild_blocker", None)  # e.g. FairClassification over a DataFrame
    return hook() if callable(hook) else None


def _names_class(name: str, cls: type, paths, args: dict[str, Any]) -> bool:
    """Is the recipe's `problem.name` already a name that resolves to exactly this class?"""
    from evofair.core.plugins import registry

    try:
        spec = registry("problem", paths).get(name)
        if spec.fn is cls:
            return True
        # a registered class that picks a subclass from its arguments (BiasBios with genome: lora)
        return (
            isinstance(spec.fn, type)
            and issubclass(cls, spec.fn)
            and type(spec.fn(spec.args.model_validate(args))) is cls
        )
    except Exception:  # noqa: BLE001 - an unknown name is a label: record the class instead
        return False


def _import_folder(cls: type) -> str | None:
    """The sys.path folder the class's module came from, unless an installed distribution (or the
    standard library) provides it, so that `evofair run --resume` in a new process finds it."""
    module = sys.modules.get(cls.__module__)
    top = cls.__module__.split(".")[0]
    file = getattr(module, "__file__", None)
    if file is None or top == "evofair" or top in sys.stdlib_module_names:
        return None
    from importlib.metadata import packages_distributions

    if top in packages_distributions():
        return None
    path = Path(file).resolve()
    depth = cls.__module__.count(".") + (1 if path.name == "__init__.py" else 0)
    return str(path.parents[depth])


def prepare(recipe, problem=None):
    """Build and check everything that can fail on bad input, before any file is written."""
    problem = problem or build_problem(recipe)
    problem.check_inputs()
    if not problem.objectives:
        raise UserError(f"problem {problem.name}: expected at least one objective, got none")
    check_reference_directions(recipe, len(problem.objectives))
    ref = recipe.hv_ref or problem.default_hv_ref
    if ref is not None and len(ref) != len(problem.objectives):
        raise UserError(f"hv_ref: expected {len(problem.objectives)} values (one per objective), got {len(ref)}")
    check_metrics(recipe.parsed_constraints, problem.metric_names, problem.name)
    return problem


def check_reference_directions(recipe, n_objectives: int) -> None:
    """NSGA-III's Das-Dennis reference directions number C(p + m - 1, m - 1) for p partitions and m
    objectives; counted here (exactly, no allocation) so that a large `n_partitions` is one line
    before the run folder exists, not gigabytes allocated by pymoo after."""
    if recipe.algorithm.name != "nsga3":
        return
    p = recipe.algorithm.n_partitions
    n = math.comb(p + n_objectives - 1, n_objectives - 1)
    if n > MAX_REF_DIRS:
        raise UserError(
            f"algorithm.n_partitions: {p} partitions with {n_objectives} objectives make {n:,} NSGA-III "
            f"reference directions, over the {MAX_REF_DIRS:,} limit; use fewer partitions"
        )
