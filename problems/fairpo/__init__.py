"""FairPO (METHODS.md §2) on MULAN multi-label data: losses, the `fairpo` refiner, the paper's table."""
