"""What a preference loss reads from a causal LM: the log-probability of a response given its prompt."""

from __future__ import annotations

import torch


def sequence_logprob(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """log p(y|x) = Σ_t log p(y_t | x, y_<t) over the response tokens (`response_mask` marks them)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (logp * response_mask[:, 1:].to(logp.dtype)).sum(-1)
