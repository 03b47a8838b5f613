"""Sequence log-probabilities of responses, as HyperDPO's and FairPO's preference losses read them."""

import pytest
import torch

from evofair.problems.common.causal_lm import sequence_logprob


def test_sequence_logprob_against_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    ids = torch.randint(0, 11, (2, 6), generator=g)
    resp = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]], dtype=torch.float)
    ours = sequence_logprob(logits, ids, resp)
    for b in range(2):
        ref = sum(torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]] for t in range(1, 6) if resp[b, t] == 1)
        assert float(ours[b]) == pytest.approx(float(ref), rel=1e-5)
