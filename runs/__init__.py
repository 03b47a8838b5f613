"""The recipes evofair ships; installed as `evofair.recipes` (`evofair run NAME` finds them)."""
