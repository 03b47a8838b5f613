"""`operators.refine_initial`: generation 0 refined with the offspring's operator, not at all, or its own."""

import pytest

import evofair
from evofair.errors import UserError
from evofair.lifecycle.recipe import parse_recipe
from evofair.store.run_store import RunStore


def recipe(refine_initial) -> dict:
    return {
        "name": "toy",
        "problem": {"name": "toy_mlp", "args": {"n_train": 128, "n_eval": 64}},
        "algorithm": {"name": "nsga2", "pop_size": 4, "generations": 2},
        "operators": {
            "crossover": {"name": "uniform"},
            "mutation": {"name": "gaussian", "args": {"sigma": 0.05}},
            "refine": {"name": "sft", "args": {"epochs": 1, "optimizer": "adamw", "lr": 0.01, "batch_size": 32}},
            "refine_initial": refine_initial,
        },
        "seed": 3,
    }


def refine_steps(run_dir) -> dict[int, set]:
    """{generation: {optimizer steps each individual's local search logged}} (None: not refined)."""
    store, out = RunStore(run_dir, readonly=True), {}
    try:
        for ind in store.individuals():
            steps = (ind.operator.get("log") or {}).get("refine", {}).get("steps")
            out.setdefault(ind.generation, set()).add(steps)
    finally:
        store.close()
    return out


@pytest.mark.parametrize(
    "refine_initial, gen0_steps",
    [
        (True, {4}),  # 128 examples / batch 32 = 4 steps, as every offspring
        (False, {None}),
        ({"name": "sft", "args": {"epochs": 3, "optimizer": "adamw", "lr": 0.01, "batch_size": 16}}, {24}),
    ],
)
def test_generation_zero_gets_its_own_local_search(tmp_path, refine_initial, gen0_steps):
    evofair.run(recipe(refine_initial), tmp_path / "run", progress=False)
    steps = refine_steps(tmp_path / "run")
    assert steps[0] == gen0_steps
    assert steps[1] == {4}  # offspring keep `refine`


def test_unknown_initial_refiner_names_the_field():
    with pytest.raises(UserError, match=r"operators\.refine_initial\.name"):
        parse_recipe(recipe({"name": "no_such_refiner"}))
