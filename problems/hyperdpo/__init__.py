"""HyperDPO (docs/method-definitions.md#hyperdpo) on LETOR MQ2008 and HH-RLHF: listwise DPO, ICOS, the `hyperdpo`
refiner, hyper prompt tuning, the paper's tables."""
