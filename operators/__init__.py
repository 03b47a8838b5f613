"""evofair's built-in operators (installed as `evofair.operators`): model merges, weight noise, SFT
local search and the pymoo operators for vector genomes.

They depend only on evofair's contracts (`evofair.core.operator`, `evofair.core.problem`) and are announced
as entry points in pyproject.toml, exactly as a third party's operators would be. Operators that
belong to one method family (the `fairpo` and `hyperdpo` refiners) live in that family's package.
"""
