"""Factor-genome merges against the dense-delta merges they stand for.

Oracles: the registered dense operators (operators/merge.py, themselves checked against mergekit
and closed forms in tests/operators) applied to the materialised deltas B·A, and numpy's SVD for
the truncation error (Eckart–Young: the best rank-k approximation misses exactly the norm of the
discarded singular values)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evofair.core.plugins import registry
from evofair.problems.common.low_rank import FactorMerge, a_key, b_key, dense_key, factorise, to_dense, truncate_factors

SHAPES = {"enc.q": (12, 9), "enc.v": (7, 10)}
RANKS = {"enc.q": 3, "enc.v": 2}


def factor_parent(seed: int, ranks=RANKS) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w = {}
    for t, (m, n) in SHAPES.items():
        w[b_key(t)] = torch.randn(m, ranks[t], generator=gen)
        w[a_key(t)] = torch.randn(ranks[t], n, generator=gen)
    w["head.layers.0.weight"] = torch.randn(2, 5, generator=gen)
    w["head.layers.0.bias"] = torch.randn(2, generator=gen)
    w["head.fair_weight"] = torch.rand(1, generator=gen)
    return w


def base_of(parent):
    gen = torch.Generator().manual_seed(99)
    out = {}
    for t, (m, n) in SHAPES.items():
        out[b_key(t)], out[a_key(t)] = torch.zeros(m, 1), torch.zeros(1, n)
    out.update({k: torch.randn(v.shape, generator=gen) for k, v in parent.items() if k.startswith("head.")})
    return out


def run(name, args=None, max_rank=64, svd="exact", seed=1234, parents=None):
    spec = registry("crossover").get(name)
    p1, p2 = parents or (factor_parent(1), factor_parent(2))
    base = base_of(p1)
    parsed = spec.args(**(args or {}))
    merge = FactorMerge(max_rank=max_rank, svd=svd)
    kids = merge.crossover(name, spec.fn, [p1, p2], parsed, seed=seed, base=base)
    dense = spec.fn(
        [to_dense(p1), to_dense(p2)], parsed, seed=seed, base=to_dense(base) if spec.tags.get("needs_base") else None
    )
    return kids, dense, merge


def sv_tail(matrix: torch.Tensor, k: int) -> tuple[float, float]:
    s = np.linalg.svd(matrix.double().numpy(), compute_uv=False)
    return float(np.sqrt((s[k:] ** 2).sum())), float(np.sqrt((s**2).sum()))


EXACT = [
    ("linear", {}),
    ("linear", {"weight": 0.3}),
    ("task_arithmetic", {}),
    ("task_arithmetic", {"weight": 0.8, "lambda": 0.7, "normalize": True}),
    ("uniform", {"scalar": True}),
]


@pytest.mark.parametrize("name,args", EXACT)
def test_linear_family_is_exact_as_stacked_factors(name, args):
    kids, dense, merge = run(name, args)
    for kid, want in zip(kids, dense):
        got = to_dense(kid)
        assert set(got) == set(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)
        for t in SHAPES:  # stacked, not re-factorised: rank k1 + k2, nothing dropped
            assert kid[b_key(t)].shape[1] == 2 * RANKS[t]
    assert merge.log == {}


@pytest.mark.parametrize("name,args", EXACT)
def test_linear_family_above_the_cap_loses_exactly_the_svd_tail(name, args):
    kids, dense, merge = run(name, args, max_rank=2)
    for kid, want in zip(kids, dense):
        for t in SHAPES:
            target = want[dense_key(t)]
            tail, total = sv_tail(target, 2)
            err = float(torch.linalg.matrix_norm((to_dense(kid)[dense_key(t)] - target).double()))
            assert kid[b_key(t)].shape[1] == 2 and kid[a_key(t)].shape[0] == 2
            assert err == pytest.approx(tail, rel=1e-4, abs=1e-5)
    # the logged relative errors are the same tails over the same norms
    t = "enc.q"
    want_rel = [sv_tail(d[dense_key(t)], 2)[0] / sv_tail(d[dense_key(t)], 2)[1] for d in dense]
    np.testing.assert_allclose(merge.log[t], want_rel, rtol=1e-4)


REFACTORED = [
    ("ties", {"density": 0.5}),
    ("dare_ties", {"density": 0.6, "weight": 0.35}),
    ("dare_linear", {"density": 0.6}),
    ("slerp", {"t": 0.3}),
    ("uniform", {}),
]


@pytest.mark.parametrize("name,args", REFACTORED)
def test_refactorised_merges_equal_dense_at_full_rank(name, args):
    """With the cap at full rank the SVD loses nothing: the same merged deltas as the dense genome,
    which also shows the per-matrix merges make the dense genome's random draws (DARE's masks,
    uniform's coefficients)."""
    kids, dense, _ = run(name, args, max_rank=12)
    for kid, want in zip(kids, dense):
        got = to_dense(kid)
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,args", REFACTORED)
def test_refactorised_merges_error_is_the_svd_tail(name, args):
    kids, dense, merge = run(name, args, max_rank=2)
    rel = {t: [] for t in SHAPES}
    for kid, want in zip(kids, dense):
        got = to_dense(kid)
        for t in SHAPES:
            target = want[dense_key(t)]
            tail, total = sv_tail(target, 2)
            err = float(torch.linalg.matrix_norm((got[dense_key(t)] - target).double()))
            assert err == pytest.approx(tail, rel=1e-4, abs=1e-5)  # Eckart–Young: optimal and no worse
            assert tail > 0.05 * total  # the case is a real truncation, not a trivially exact one
            rel[t].append(tail / total)
        for k in want:
            if not k.startswith("delta."):
                torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=1e-6)
    for t in SHAPES:
        np.testing.assert_allclose(merge.log[t], rel[t], rtol=1e-4)


def test_randomized_svd_is_close_to_optimal():
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(64, 48, generator=gen) @ torch.diag(torch.logspace(0, -2, 48))
    B, A, err = factorise(delta, 6, "randomized", seed=3)
    tail, _ = sv_tail(delta, 6)
    measured = float(torch.linalg.matrix_norm((B @ A - delta).double()))
    assert measured == pytest.approx(err, rel=1e-4)
    assert tail - 1e-6 <= measured <= 1.05 * tail


def test_truncate_factors_is_the_exact_truncated_svd_of_the_product():
    gen = torch.Generator().manual_seed(5)
    B, A = (
        torch.randn(30, 7, generator=gen, dtype=torch.float64),
        torch.randn(7, 20, generator=gen, dtype=torch.float64),
    )
    B2, A2, tail = truncate_factors(B, A, 3)
    want_tail, _ = sv_tail(B @ A, 3)
    assert tail == pytest.approx(want_tail, rel=1e-9)
    U, S, Vh = np.linalg.svd((B @ A).numpy())
    np.testing.assert_allclose((B2 @ A2).numpy(), (U[:, :3] * S[:3]) @ Vh[:3], atol=1e-9)


def test_a_crossover_without_factor_form_falls_back_to_dense_then_svd():
    spec = registry("crossover").get("linear")

    def swap_halves(parents, args, *, seed, base=None):  # a third party's merge, unknown to FactorMerge
        p1, p2 = parents
        return [
            {k: torch.where(torch.arange(v.numel()).reshape(v.shape) % 2 == 0, p1[k], p2[k]) for k, v in p1.items()},
            {k: torch.where(torch.arange(v.numel()).reshape(v.shape) % 2 == 1, p1[k], p2[k]) for k, v in p1.items()},
        ]

    p1, p2 = factor_parent(1), factor_parent(2)
    kids = FactorMerge(max_rank=12).crossover("swap", swap_halves, [p1, p2], spec.args(), seed=0, base=None)
    want = swap_halves([to_dense(p1), to_dense(p2)], None, seed=0)
    for kid, w in zip(kids, want):
        got = to_dense(kid)
        for k in w:
            torch.testing.assert_close(got[k], w[k], atol=1e-5, rtol=1e-5)


def test_gaussian_mutation_on_factors_keeps_the_rank():
    spec = registry("mutation").get("gaussian")
    p = factor_parent(3)
    out = spec.fn(p, spec.args(sigma=0.1), seed=4)
    for t in SHAPES:
        delta = to_dense(out)[dense_key(t)]
        assert torch.linalg.matrix_rank(delta) == RANKS[t]
        assert not torch.allclose(delta, to_dense(p)[dense_key(t)])


def test_parents_of_different_ranks_stack():
    p1, p2 = factor_parent(1), factor_parent(2, ranks={"enc.q": 1, "enc.v": 4})
    kids, dense, _ = run("linear", {"weight": 0.25}, parents=(p1, p2))
    assert kids[0][b_key("enc.q")].shape[1] == 4 and kids[0][b_key("enc.v")].shape[1] == 6
    torch.testing.assert_close(
        to_dense(kids[0])[dense_key("enc.v")], dense[0][dense_key("enc.v")], atol=1e-5, rtol=1e-5
    )
