"""`fair_classification`: the accuracy–fairness front of a classifier on the user's own table.

A recipe names the table, the target, the positive label and the sensitive columns; the problem
reads and checks the data (`table.py`), builds features (`features.py`) and groups (`groups.py`),
and evolves MLP heads over those features (evofair.problems.common.classification).
"""
