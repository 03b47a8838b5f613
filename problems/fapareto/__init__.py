"""FaPareto (docs/method-definitions.md#fapareto) on BiasBios: error vs ΔTPR of classifier heads or LoRA fine-tunes of a
text encoder, with the baselines and report sections of the paper."""
