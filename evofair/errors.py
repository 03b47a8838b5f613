"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (recipe, data file, run directory): a one-line message naming what is wrong."""

    exit_code = 2


class WeightsIntegrityError(UserError):
    """A weights file whose content does not hash to its name."""
