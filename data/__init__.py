"""The real datasets evofair ships (each folder has its PROVENANCE.md); installed as `evofair.datasets`."""
