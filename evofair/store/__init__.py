"""The run directory as the truth: the SQLite index, content-addressed weights, safe file writes.

Only the driver writes (`RunStore`); every reader (the report, the explorer, `Result`, resume)
opens it read-only.
"""
