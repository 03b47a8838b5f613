"""pymoo algorithms (NSGA-II, NSGA-III, SMS-EMOA) driven by ask/tell.

Local search runs between ask and tell and its result replaces the offspring's genome
(Lamarckian), because the engine tells pymoo the *realised* genome, not the plan it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.population import Population

from evofair.core.genome import genome_of
from evofair.engine import pymoo_adapter
from evofair.engine.backend import Backend, rng_from_state, rng_state
from evofair.engine.pymoo_nsga2 import FastNSGA2
from evofair.store.jsonstate import from_json, numeric_attributes, set_numeric_attributes, to_json


def build_algorithm(recipe, problem):
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.algorithms.moo.sms import SMSEMOA
    from pymoo.util.ref_dirs import get_reference_directions

    alg = recipe.algorithm
    kwargs = pymoo_adapter.variation(genome_of(problem), recipe, problem)
    if alg.name == "nsga2":
        return FastNSGA2(pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)
    if alg.name == "nsga3":
        ref_dirs = get_reference_directions("das-dennis", len(problem.objectives), n_partitions=alg.n_partitions)
        return NSGA3(ref_dirs=ref_dirs, pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)
    return SMSEMOA(pop_size=alg.pop_size, n_offsprings=alg.n_offsprings, **kwargs)


#: G without constraints and H (evofair has no equality constraints): pymoo's Evaluator leaves each
#: member its own empty array; one shared array is the same values without 200 copies a generation
_NO_VALUES = np.empty(0)


class PymooBackend(Backend):
    def __init__(self, recipe, problem):
        self.genome = genome_of(problem)
        self.algorithm = build_algorithm(recipe, problem)
        self.n_constraints = len(recipe.constraints)
        self.algorithm.setup(
            pymoo_adapter.ShapeOnly(self.genome, problem, self.n_constraints),
            termination=("n_gen", recipe.algorithm.generations),
            seed=recipe.seed,
            verbose=False,
        )
        self._asked: Population | None = None

    def _as_X(self, items: Sequence[Any]) -> np.ndarray:
        return pymoo_adapter.to_matrix(self.genome, items)

    def ask(self) -> list[Any]:
        self._asked = self.algorithm.ask()
        if self._asked is None:
            return []
        return pymoo_adapter.from_matrix(self.genome, pymoo_adapter.x_matrix(self._asked))

    def tell(self, items, F, ids, G=None) -> None:
        pop = (
            self._asked
            if self._asked is not None and len(self._asked) == len(items)
            else Population.new("X", self._as_X(items))
        )
        _set_members(pop, self._as_X(items), ids)
        self._set_F(pop, F, G)
        self.algorithm.tell(infills=pop)
        self._asked = None

    def _set_F(self, pop: Population, F, G=None) -> None:
        """What pymoo's `Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)` leaves on fresh
        individuals, set directly: F, G (shape (n, 0) without constraints), H (n, 0; evofair has no
        equality constraints), each non-empty row its own float64 copy (the empty ones one shared
        array), and F/G/H marked evaluated. With constraints pymoo derives CV (and feasibility) from
        G on first use, as after its Evaluator; without, CV is the 0.0 that derivation gives
        (`calc_cv` of empty G and H), set up front instead of one `calc_cv` per member. The
        Evaluator path deep-copies the problem and sets values through `hasattr` per individual and
        key, which cost more than survival on a cheap problem."""
        n = len(pop)
        values = np.array(F, dtype=np.float64).reshape(n, self.algorithm.problem.n_obj)
        if self.n_constraints:
            if G is None or np.shape(G) != (n, self.n_constraints):
                raise ValueError(
                    f"tell: expected G of shape ({n}, {self.n_constraints}), got {None if G is None else np.shape(G)}"
                )
            constraints = list(np.array(G, dtype=np.float64))
        else:
            constraints = [_NO_VALUES] * n
        for ind, f, g in zip(pop, values, constraints):
            ind.F, ind.G, ind.H = f.copy(), g.copy() if g.size else g, _NO_VALUES
            ind.evaluated.update(("F", "G", "H"))
            if not self.n_constraints:
                ind.CV = np.zeros(1)

    def population(self):
        pop = self.algorithm.pop
        return [str(ind.data.get("eid")) for ind in pop], np.array([ind.F for ind in pop], dtype=float)

    def state(self) -> dict[str, Any]:
        alg = self.algorithm
        return {
            "rng": rng_state(alg.random_state),
            "n_iter": alg.n_iter,
            **_members_state(alg.pop),
            "survival": numeric_attributes(alg.survival),
            **_survival_opt(alg.survival),
        }

    def restore(self, items, F, ids, state, G=None) -> None:
        """Rebuild from the stored population and the JSON state saved with it (no unpickling):
        the population in survival order, each member's ranking data, the survival's own numeric
        state (e.g. NSGA-III's normalisation points) and the generator's exact state."""
        alg = self.algorithm
        alg._initialize()
        pop = Population.new("X", self._as_X(items), "eid", np.asarray(ids, dtype=object))
        self._set_F(pop, F, G)
        for ind, data in zip(pop, _members_data(state)):
            ind.data.update(data)
        set_numeric_attributes(alg.survival, state.get("survival", {}))
        _restore_survival_opt(alg.survival, pop, state)
        alg.pop = pop
        alg.is_initialized = True
        alg.n_iter = state["n_iter"]
        alg.random_state = rng_from_state(state["rng"])
        alg._set_optimum()


def _set_members(pop: Population, X: np.ndarray, ids) -> None:
    """Each member's (realised) genome and evofair id, as `pop.set("X", X, "eid", ids)` leaves
    them (a row of X copied, the id in the member's data) without its per-value `hasattr`."""
    if not len(pop) == len(X) == len(ids):
        raise ValueError(f"tell: {len(pop)} asked, {len(X)} items and {len(ids)} ids")
    for ind, x, eid in zip(pop, X, ids):
        ind.X = x.copy()
        ind.data["eid"] = eid


def _members_state(pop: Population) -> dict[str, Any]:
    """The members' data less their ids: `pop_columns`, one list per key, where every member has
    the same keys and each key's values are all integers or all floats (NSGA-II's rank and
    crowding distance, pymoo's generation stamps), else `pop_data`, one dict per member. Columns
    convert a generation's values in one numpy call each: the state is written every generation."""
    datas = [ind.data for ind in pop]
    if datas and all(d.keys() == datas[0].keys() for d in datas):
        columns = {str(k): _numeric_column([d[k] for d in datas]) for k in datas[0] if k != "eid"}
        if all(col is not None for col in columns.values()):
            return {"pop_columns": columns}
    return {"pop_data": [_member_json(d) for d in datas]}


def _numeric_column(values: list[Any]) -> list[Any] | None:
    """`values` as JSON numbers of their own kind (Python ints or floats), or None if mixed."""
    kinds = {type(v) for v in values}
    if all(issubclass(t, (int, np.integer)) and not issubclass(t, bool) for t in kinds):
        return np.asarray(values, dtype=np.int64).tolist()
    if all(issubclass(t, (float, np.floating)) for t in kinds):
        return np.asarray(values, dtype=np.float64).tolist()
    return None


def _members_data(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each member's data as `_members_state` saved it (either form)."""
    if "pop_columns" in state:
        columns = state["pop_columns"]
        return [dict(zip(columns, row)) for row in zip(*columns.values())]
    return [from_json(d) for d in state.get("pop_data", [])]


def _member_json(data: dict[str, Any]) -> dict[str, Any]:
    """`to_json` of a member's data less its id, with the common values (Python ints and strings,
    numpy scalars such as rank and crowding distance) converted inline: the state is written every
    generation for every member, and the general recursive conversion was most of its cost."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "eid":
            continue
        t = type(v)
        if t is int or t is str or t is bool or v is None:
            out[str(k)] = v
        elif isinstance(v, np.generic):
            out[str(k)] = v.item()
        else:
            out[str(k)] = to_json(v)
    return out


def _survival_opt(survival) -> dict[str, Any]:
    """NSGA-III's survival keeps `opt` (the first front's members closest to the reference
    directions), a Population that the numeric state cannot hold: saved as their ids."""
    opt = getattr(survival, "opt", None)
    if not isinstance(opt, Population):
        return {}
    return {"survival_opt": [str(e) for e in opt.get("eid")]}


def _restore_survival_opt(survival, pop: Population, state: dict[str, Any]) -> None:
    """`opt` back as the restored members it named; pymoo reads it as soon as the algorithm is
    resumed (`_set_optimum`). A state saved without it (or whose members did not survive) takes the
    population's first front, which is what `opt` is drawn from; `opt` steers no selection, so the
    run continues identically either way."""
    if not hasattr(survival, "opt"):
        return
    ids = set(state.get("survival_opt") or ())
    eids = [str(e) for e in pop.get("eid")]
    chosen = [i for i, e in enumerate(eids) if e in ids]
    if not chosen:
        rank = pop.get("rank")
        chosen = [i for i, r in enumerate(rank) if r == 0] if rank is not None and None not in rank else []
    survival.opt = pop[chosen or list(range(len(pop)))]
