"""A run's life: the recipe is validated, the problem built, the engine started or resumed.

`api.run` is what `evofair run` and `evofair.run(...)` call; `rebuild` makes the problem again in
another process or from a run directory; `experiments` runs studies that skip the engine.
"""
