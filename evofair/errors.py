"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (recipe, data file, run directory): a one-line message naming what is wrong."""

    exit_code = 2


def require_new_dir(path, flag: str, hint: str = "choose a new directory") -> None:
    """Output folders are new or empty: evofair never mixes its files into someone else's."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{flag} {path}: exists and is not empty ({hint})")


class WeightsIntegrityError(UserError):
    """A weights file whose content does not hash to its name."""
