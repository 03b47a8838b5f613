"""What is computed from a finished (or running) run: metrics, indicators, intervals, reports.

Everything here reads the store; nothing here changes a run.
"""
