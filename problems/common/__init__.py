"""Machinery shared by the problem families (installed as `evofair.problems.common`): not a family.

It announces no component of its own; families import it, and it imports no family. Here:

- text classification over a frozen encoder: Hugging Face encoders and their cached features
  (`text_encoder`), where they compute (`devices`), the MLP-head genome and its batched evaluation
  (`classification`), the fairness surrogate of local learning (`losses`);
- LoRA adapters on the encoder's top layers: the adapter model (`lora_model`), its factor layout
  (`lora_factors`, `low_rank`), the frozen-prefix cache (`frozen_prefix`), the text problem that
  picks the head or LoRA genome from its arguments (`text_problem`) and the Hugging Face export
  (`hf_export`);
- baselines trained in the same run and the selection rule every method shares (`baselines`,
  `lora_baselines`, `selection_rule`);
- preference data for language models: HH-RLHF pairs (`hh_rlhf`) and sequence log-probabilities
  (`causal_lm`).
"""
