"""Merge crossovers and Gaussian mutation against independent oracles.

Oracles: mergekit called per tensor through `merge_tensors` (evofair calls `merge_state_dicts`),
closed-form formulas computed here in float64 (linear, task arithmetic, SLERP, TIES), and
statistics of the noise for the mutation. Every registered crossover and mutation is also checked
for purity (inputs untouched, no aliasing) and determinism (seed in ⇒ same weights out).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mergekit.merge_methods.api import merge_tensors
from scipy import stats

from evofair.core.plugins import registry
from evofair.errors import UserError
from evofair.operators.merge import (
    DareArgs,
    LinearArgs,
    SlerpArgs,
    TaskArithmeticArgs,
    TiesArgs,
    UniformArgs,
    dare_linear,
    dare_ties,
    linear,
    slerp,
    task_arithmetic,
    ties,
    uniform,
)
from evofair.operators.mutation import GaussianArgs, gaussian

SHAPES = {"bias": (17,), "w": (9, 6), "conv": (3, 4, 5), "scalar": ()}


def state(seed: int, dtype=torch.float32, scale: float = 1.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # Insertion order deliberately not sorted: operators must not depend on it.
    return {name: torch.randn(shape, generator=gen, dtype=dtype) * scale for name, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def trio():
    base = state(0)
    # Parents = base + a task vector, as after fine-tuning a shared pretrained model.
    p1 = {k: v + 0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in base.items()}
    p2 = {k: v + 0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(2)) for k, v in base.items()}
    return p1, p2, base


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


# -- mergekit as the oracle, per tensor --------------------------------------------------------
def mk(method: str, p1, p2, base=None, **params):
    """mergekit's own merge of every tensor, one `merge_tensors` call each, in sorted name order."""
    out = {}
    for name in sorted(p1):
        if base is None:
            tensors, base_index = [p1[name], p2[name]], None
        else:
            tensors, base_index = [p1[name], p2[name], base[name]], 2
        if method == "slerp":
            base_index = 0
        out[name] = merge_tensors(tensors, method, parameters=params, base_index=base_index)
    return out


def assert_children(children, expected0, expected1):
    assert len(children) == 2
    for child, expected in ((children[0], expected0), (children[1], expected1)):
        assert set(child) == set(expected)
        for name in expected:
            close(child[name], expected[name])


def test_linear_matches_mergekit_and_formula(trio):
    p1, p2, _ = trio
    kids = linear([p1, p2], LinearArgs(weight=0.3), seed=7)
    assert_children(
        kids,
        mk("linear", p1, p2, weight=[0.3, 0.7], normalize=True),
        mk("linear", p1, p2, weight=[0.7, 0.3], normalize=True),
    )
    for name in p1:
        close(kids[0][name], 0.3 * p1[name] + 0.7 * p2[name])
        close(kids[1][name], 0.7 * p1[name] + 0.3 * p2[name])


def test_linear_random_weight_is_one_scalar_and_mirrored(trio):
    p1, p2, _ = trio
    kids = linear([p1, p2], LinearArgs(), seed=11)
    w = ((kids[0]["w"] - p2["w"]) / (p1["w"] - p2["w"])).double()
    w0 = float(w.mean())
    assert 0 < w0 < 1 and float((w - w0).abs().max()) < 1e-4  # one coefficient for all entries
    assert_children(kids, mk("linear", p1, p2, weight=[w0, 1 - w0]), mk("linear", p1, p2, weight=[1 - w0, w0]))


def _slerp_np(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SLERP of the whole tensor as one vector (float64), linear when nearly collinear."""
    x, y = a.double().numpy().ravel(), b.double().numpy().ravel()
    dot = float(np.clip(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)), -1, 1))
    if abs(dot) > 0.9995:
        res = (1 - t) * x + t * y
    else:
        th = math.acos(dot)
        res = (math.sin((1 - t) * th) * x + math.sin(t * th) * y) / math.sin(th)
    return torch.from_numpy(res.reshape(a.shape)).to(a.dtype)


def test_slerp_matches_mergekit_and_formula(trio):
    p1, p2, _ = trio
    kids = slerp([p1, p2], SlerpArgs(t=0.25), seed=3)
    assert_children(kids, mk("slerp", p1, p2, t=0.25), mk("slerp", p1, p2, t=0.75))
    for name in p1:
        close(kids[0][name], _slerp_np(0.25, p1[name], p2[name]), atol=1e-5)
        close(kids[1][name], _slerp_np(0.75, p1[name], p2[name]), atol=1e-5)
    # the norm-preserving point of SLERP: a 2-D tensor is one vector (not a batch of rows)
    assert not torch.allclose(kids[0]["w"], 0.75 * p1["w"] + 0.25 * p2["w"], atol=1e-3)


def test_slerp_random_t_children_are_mirrors(trio):
    p1, p2, _ = trio
    a, b = slerp([p1, p2], SlerpArgs(), seed=5)
    # slerp(p1, p2, t) == slerp(p2, p1, 1 - t): the mirror child equals the swapped-parent merge
    b_swapped, a_swapped = slerp([p2, p1], SlerpArgs(), seed=5)
    for name in p1:
        close(a[name], a_swapped[name], atol=1e-5)
        close(b[name], b_swapped[name], atol=1e-5)
        assert not torch.equal(a[name], b[name])


def test_task_arithmetic_matches_mergekit_and_formula(trio):
    p1, p2, base = trio
    args = TaskArithmeticArgs(weight=0.3, **{"lambda": 0.8})
    kids = task_arithmetic([p1, p2], args, seed=1, base=base)
    assert_children(
        kids,
        mk("task_arithmetic", p1, p2, base, weight=[0.3, 0.7], **{"lambda": 0.8}, normalize=False),
        mk("task_arithmetic", p1, p2, base, weight=[0.7, 0.3], **{"lambda": 0.8}, normalize=False),
    )
    for name in base:
        d1, d2 = p1[name] - base[name], p2[name] - base[name]
        close(kids[0][name], base[name] + 0.8 * (0.3 * d1 + 0.7 * d2))
        close(kids[1][name], base[name] + 0.8 * (0.7 * d1 + 0.3 * d2))


def test_task_arithmetic_random_weight_is_mirrored(trio):
    p1, p2, base = trio
    kids = task_arithmetic([p1, p2], TaskArithmeticArgs(), seed=23, base=base)
    d1, d2 = p1["w"] - base["w"], p2["w"] - base["w"]
    w = float((((kids[0]["w"] - base["w"]) - d2) / (d1 - d2)).double().median())
    assert 0 < w < 1
    assert_children(
        kids,
        mk("task_arithmetic", p1, p2, base, weight=[w, 1 - w], normalize=False),
        mk("task_arithmetic", p1, p2, base, weight=[1 - w, w], normalize=False),
    )


def _ties_np(p1, p2, base, w1, w2, density):
    """TIES by hand (Yadav et al.): trim to top-k |delta|, elect sign by weighted sum, disjoint mean."""
    deltas = []
    for p, w in ((p1, w1), (p2, w2)):
        d = (p - base).double().numpy().ravel()
        keep = np.zeros_like(d)
        k = int(density * d.size)
        keep[np.argsort(np.abs(d))[d.size - k :]] = 1
        deltas.append(w * d * keep)
    D, W = np.stack(deltas), np.array([w1, w2])[:, None]
    sign = np.where(D.sum(0) >= 0, 1.0, -1.0)
    agree = np.sign(D) == sign
    div = (W * agree).sum(0)
    div[div == 0] = 1
    return base + torch.from_numpy(((D * agree).sum(0) / div).reshape(base.shape)).to(base.dtype)


def test_ties_matches_mergekit_and_hand_ties(trio):
    p1, p2, base = trio
    kids = ties([p1, p2], TiesArgs(weight=0.4, density=0.5), seed=2, base=base)
    assert_children(
        kids,
        mk("ties", p1, p2, base, weight=[0.4, 0.6], density=0.5, normalize=True),
        mk("ties", p1, p2, base, weight=[0.6, 0.4], density=0.5, normalize=True),
    )
    for name in ("bias", "w", "conv"):
        close(kids[0][name], _ties_np(p1[name], p2[name], base[name], 0.4, 0.6, 0.5))
        close(kids[1][name], _ties_np(p1[name], p2[name], base[name], 0.6, 0.4, 0.5))


@pytest.mark.parametrize("method,fn", [("dare_ties", dare_ties), ("dare_linear", dare_linear)])
def test_dare_matches_mergekit_with_same_torch_seed(trio, method, fn):
    p1, p2, base = trio
    seed = 123456789
    kids = fn([p1, p2], DareArgs(weight=0.35, density=0.6), seed=seed, base=base)
    expected = []
    for k, (wa, wb) in enumerate(((0.35, 0.65), (0.65, 0.35))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k + 1)  # evofair seeds mergekit's global draws with seed + child + 1
            expected.append(mk(method, p1, p2, base, weight=[wa, wb], density=0.6, rescale=True, normalize=False))
    assert_children(kids, *expected)
    # the drop really happened: some delta entries were zeroed relative to plain task arithmetic
    plain = task_arithmetic([p1, p2], TaskArithmeticArgs(weight=0.35), seed=seed, base=base)
    assert not torch.allclose(kids[0]["w"], plain[0]["w"])


@pytest.mark.parametrize(
    "fn,args",
    [(task_arithmetic, TaskArithmeticArgs()), (ties, TiesArgs()), (dare_ties, DareArgs()), (dare_linear, DareArgs())],
)
def test_merges_needing_base_raise_user_error(trio, fn, args):
    p1, p2, _ = trio
    with pytest.raises(UserError, match="base weights"):
        fn([p1, p2], args, seed=0, base=None)


def test_needs_base_tag_matches_behaviour():
    tagged = {s.name for s in registry("crossover") if s.tags.get("needs_base")}
    assert tagged == {"task_arithmetic", "ties", "dare_ties", "dare_linear"}


# -- uniform (written in evofair: mergekit has no element-wise random merge) ----------------------
def test_uniform_is_elementwise_convex_mirror():
    p1, p2 = state(10, torch.float64), state(11, torch.float64)
    c1, c2 = uniform([p1, p2], UniformArgs(), seed=99)
    cs = []
    for name in p1:
        a, b = p1[name], p2[name]
        torch.testing.assert_close(c1[name] + c2[name], a + b, atol=1e-12, rtol=0)
        c = (c1[name] - b) / (a - b)  # recovered coefficient, element by element
        assert float(c.min()) >= -1e-9 and float(c.max()) <= 1 + 1e-9
        torch.testing.assert_close(c2[name], (1 - c) * a + c * b, atol=1e-12, rtol=0)
        cs.append(c.ravel())
    c = torch.cat(cs).numpy()
    assert np.unique(np.round(c, 6)).size > 0.9 * c.size  # one c per element, not per tensor
    assert stats.kstest(c, "uniform").pvalue > 1e-3  # c ~ U(0, 1)


def test_uniform_float32_sum_is_preserved():
    p1, p2 = state(12), state(13)
    c1, c2 = uniform([p1, p2], UniformArgs(), seed=4)
    for name in p1:
        torch.testing.assert_close(c1[name] + c2[name], p1[name] + p2[name], atol=1e-6, rtol=0)


def test_uniform_scalar_uses_one_coefficient_per_tensor():
    p1, p2 = state(14, torch.float64), state(15, torch.float64)
    c1, _ = uniform([p1, p2], UniformArgs(scalar=True), seed=8)
    coefs = []
    for name in ("bias", "w", "conv"):
        c = (c1[name] - p2[name]) / (p1[name] - p2[name])
        assert float(c.max() - c.min()) < 1e-9
        coefs.append(float(c.mean()))
    assert len(set(np.round(coefs, 9))) == 3 and all(0 <= x <= 1 for x in coefs)


# -- Gaussian mutation ---------------------------------------------------------------------------
def test_gaussian_absolute_sigma():
    w = {"a": torch.randn(400, 500, generator=torch.Generator().manual_seed(0)) * 3.0}
    out = gaussian(w, GaussianArgs(sigma=0.05), seed=1)
    d = (out["a"] - w["a"]).double()
    n = d.numel()
    assert abs(float(d.mean())) < 4 * 0.05 / math.sqrt(n)
    assert abs(float(d.std()) / 0.05 - 1) < 0.01
    assert stats.kstest((d / 0.05).numpy().ravel()[:20000], "norm").pvalue > 1e-3


def test_gaussian_relative_sigma_per_tensor():
    gen = torch.Generator().manual_seed(1)
    w = {"big": torch.randn(300, 300, generator=gen) * 4.0, "small": torch.randn(300, 300, generator=gen) * 0.01}
    out = gaussian(w, GaussianArgs(sigma=0.1, relative=True), seed=2)
    for name in w:
        target = 0.1 * float(w[name].std())
        d = (out[name] - w[name]).double()
        assert abs(float(d.std()) / target - 1) < 0.01, name
        assert abs(float(d.mean())) < 4 * target / math.sqrt(d.numel())


def test_gaussian_fraction_touches_that_share():
    w = {"a": torch.randn(500, 400, generator=torch.Generator().manual_seed(3))}
    out = gaussian(w, GaussianArgs(sigma=0.05, fraction=0.3), seed=4)
    d = out["a"] - w["a"]
    touched = d != 0
    share = float(touched.double().mean())
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / d.numel())
    assert abs(float(d[touched].double().std()) / 0.05 - 1) < 0.02


def test_gaussian_noise_differs_between_tensors_and_skips_integers():
    w = {"a": torch.zeros(50, 50), "b": torch.zeros(50, 50), "steps": torch.arange(5)}
    out = gaussian(w, GaussianArgs(sigma=1.0), seed=5)
    assert not torch.equal(out["a"], out["b"])
    assert torch.equal(out["steps"], w["steps"])
    same = gaussian(w, GaussianArgs(sigma=0.0), seed=5)
    assert all(torch.equal(same[k], w[k]) for k in w)


# -- every registered operator: purity and determinism --------------------------------------------
def _crossovers():
    return [s for s in registry("crossover")]


def _call(spec, parents, base, seed):
    if spec.kind == "crossover":
        return spec.fn(parents, spec.args(), seed=seed, base=base)
    return [spec.fn(parents[0], spec.args(), seed=seed)]


def _all_ops():
    return [s for s in registry("crossover")] + [s for s in registry("mutation")]


def test_registry_has_the_expected_operators():
    assert set(registry("crossover").names()) >= {
        "uniform",
        "linear",
        "slerp",
        "task_arithmetic",
        "ties",
        "dare_ties",
        "dare_linear",
    }
    assert "gaussian" in registry("mutation").names()


@pytest.mark.parametrize("spec", _all_ops(), ids=lambda s: f"{s.kind}:{s.name}")
def test_operator_is_pure(spec, trio):
    p1, p2, base = ({**d, "count": torch.tensor([3, 4])} for d in trio)
    before = [{k: v.clone() for k, v in d.items()} for d in (p1, p2, base)]
    children = _call(spec, [p1, p2], base, seed=42)
    for d, ref in zip((p1, p2, base), before):
        assert list(d) == list(ref)
        for k in ref:
            assert torch.equal(d[k], ref[k]) and d[k].dtype == ref[k].dtype, k
    inputs = {v.untyped_storage().data_ptr() for d in (p1, p2, base) for v in d.values()}
    for child in children:
        assert set(child) == set(p1)
        for k, v in child.items():
            assert v.shape == p1[k].shape and v.dtype == p1[k].dtype, k
            # an output sharing memory with a parent would let an in-place edit corrupt the parent
            assert v.untyped_storage().data_ptr() not in inputs, k


@pytest.mark.parametrize("spec", _all_ops(), ids=lambda s: f"{s.kind}:{s.name}")
def test_operator_is_deterministic_in_its_seed(spec, trio):
    p1, p2, base = trio
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a = _call(spec, [p1, p2], base, seed=2024)
        torch.manual_seed(1)  # global RNG state must not matter
        state_before = torch.get_rng_state()
        b = _call(spec, [p1, p2], base, seed=2024)
        assert torch.equal(torch.get_rng_state(), state_before)  # ... nor be consumed
    c = _call(spec, [p1, p2], base, seed=2025)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert any(not torch.equal(x[k], z[k]) for x, z in zip(a, c) for k in x)


@pytest.mark.parametrize("spec", _all_ops(), ids=lambda s: f"{s.kind}:{s.name}")
def test_operator_ignores_key_order(spec, trio):
    """A parent loaded back from its (sorted) safetensors file must merge like the in-memory one."""
    p1, p2, base = trio
    rev = [{k: d[k] for k in reversed(list(d))} for d in trio]
    a = _call(spec, [p1, p2], base, seed=77)
    b = _call(spec, rev[:2], rev[2], seed=77)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
