"""The contracts every other part builds on: problems, genomes, individuals, operators, components.

Nothing here runs a generation or touches a run directory; the engine, executors and store
depend on these files, never the other way round.
"""
