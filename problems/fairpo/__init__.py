"""FairPO (docs/method-definitions.md#fairpo) on MULAN multi-label data: losses, the `fairpo` refiner, the paper's table."""
