"""HyperDPO's losses against hand-written formulas (docs/method-definitions.md#hyperdpo), and the temperature property."""

import numpy as np
import pytest
import torch

from evofair.problems.hyperdpo.losses import (
    icos_objective,
    listwise_dpo_loss,
    modpo_listwise_loss,
    phi_transform,
    reference_directions,
    sample_w,
    temperature_transform,
    weight_grid,
)


def _np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_listwise_equals_dpo_for_pairs_with_binary_labels():
    g = torch.Generator().manual_seed(0)
    B, beta = 64, 0.3
    s_theta, s_ref = torch.randn(B, 2, generator=g), torch.randn(B, 2, generator=g)
    first_wins = torch.rand(B, generator=g) > 0.5
    labels = torch.stack([first_wins, ~first_wins], -1).float()
    mask = torch.ones(B, 2, dtype=torch.bool)
    ours = listwise_dpo_loss(s_theta, s_ref, labels, mask, beta, "l1")
    # DPO (Rafailov et al.): −log σ(β[(log πθ(y_w) − log πref(y_w)) − (log πθ(y_l) − log πref(y_l))])
    w_idx, l_idx = (~first_wins).long(), first_wins.long()
    r = lambda s, i: s.gather(1, i[:, None]).squeeze(1)
    logits = beta * ((r(s_theta, w_idx) - r(s_ref, w_idx)) - (r(s_theta, l_idx) - r(s_ref, l_idx)))
    dpo = -torch.nn.functional.logsigmoid(logits).mean()
    assert ours.shape == (1,)
    torch.testing.assert_close(ours[0], dpo, rtol=1e-6, atol=1e-7)
    # φ = softmax is *not* DPO for binary labels (it puts e/(1+e) on the winner)
    assert abs(float(listwise_dpo_loss(s_theta, s_ref, labels, mask, beta, "softmax")[0] - dpo)) > 1e-3


@pytest.mark.parametrize("phi", ["softmax", "l1"])
def test_listwise_graded_labels_with_padding_against_numpy(phi):
    rng = np.random.default_rng(1)
    beta = 0.7
    sizes = [3, 5, 2]
    groups = [(rng.normal(size=n), rng.normal(size=n), rng.integers(0, 4, size=n).astype(float)) for n in sizes]
    groups[2] = (groups[2][0], groups[2][1], np.array([0.0, 0.0]))  # no target under l1
    n_max = max(sizes)
    S, R, Z = (torch.zeros(3, n_max) for _ in range(3))
    M = torch.zeros(3, n_max, dtype=torch.bool)
    for q, (s, r, z) in enumerate(groups):
        n = len(s)
        S[q, :n], R[q, :n], Z[q, :n], M[q, :n] = torch.tensor(s), torch.tensor(r), torch.tensor(z), True
        S[q, n:], R[q, n:], Z[q, n:] = 99.0, -99.0, 5.0  # padding must not matter
    expected = []
    for s, r, z in groups:
        logp = np.log(_np_softmax(beta * (s - r)))
        if phi == "softmax":
            p = _np_softmax(z)
        elif z.sum() > 0:
            p = z / z.sum()
        else:
            continue
        expected.append(-(p * logp).sum())
    ours = listwise_dpo_loss(S, R, Z, M, beta, phi)
    assert float(ours[0]) == pytest.approx(np.mean(expected), rel=1e-5)


def test_per_objective_beta_and_phi():
    g = torch.Generator().manual_seed(2)
    s, r = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    z = torch.rand(4, 3, 2, generator=g)
    mask = torch.ones(4, 3, dtype=torch.bool)
    both = listwise_dpo_loss(s, r, z, mask, [0.5, 2.0], ["softmax", "l1"])
    one = listwise_dpo_loss(s, r, z[..., 0], mask, 0.5, "softmax")
    two = listwise_dpo_loss(s, r, z[..., 1], mask, 2.0, "l1")
    torch.testing.assert_close(both, torch.cat([one, two]))


def test_phi_l1_rejects_negative_labels_and_flags_empty_groups():
    z = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    p, valid = phi_transform(z, mask, "l1")
    torch.testing.assert_close(p[0], torch.tensor([0.25, 0.75, 0.0]))
    assert valid.tolist() == [True, False]
    with pytest.raises(ValueError):
        phi_transform(-z - 1, mask, "l1")


def test_modpo_pairwise_matches_methods_formula():
    g = torch.Generator().manual_seed(3)
    B, beta, w = 32, 0.5, [0.4, 0.6]
    s, r = torch.randn(B, 2, generator=g), torch.randn(B, 2, generator=g)
    margin = torch.randn(B, 2, 1, generator=g)
    labels = torch.tensor([[1.0, 0.0]]).expand(B, 2)
    mask = torch.ones(B, 2, dtype=torch.bool)
    ours = modpo_listwise_loss(s, r, labels, mask, margin, w, beta, "l1")
    d_logratio = (s[:, 0] - r[:, 0]) - (s[:, 1] - r[:, 1])
    d_margin = margin[:, 0, 0] - margin[:, 1, 0]
    ref = -torch.nn.functional.logsigmoid((1 / w[0]) * (beta * d_logratio - w[1] * d_margin)).mean()
    torch.testing.assert_close(ours, ref)
    with pytest.raises(ValueError):
        modpo_listwise_loss(s, r, labels, mask, margin, [0.0, 1.0], beta, "l1")


def test_icos_objective_value():
    L = torch.tensor([0.8, 0.3, 1.5])
    w = np.array([0.2, 0.5, 0.3])
    lam = 0.7
    cos = float(np.dot(w, L.numpy()) / (np.linalg.norm(w) * np.linalg.norm(L.numpy())))
    assert float(icos_objective(L, w, lam)) == pytest.approx(float(np.dot(w, L.numpy())) - lam * cos, rel=1e-6)
    assert float(icos_objective(L, w, 0.0)) == pytest.approx(float(np.dot(w, L.numpy())), rel=1e-6)


def test_dirichlet_draws_are_seeded_and_on_the_simplex():
    a = np.array([sample_w(np.random.default_rng(5), 3, 1.0) for _ in range(3)])
    assert np.allclose(a[0], a[1]) and np.allclose(a[1], a[2])
    rng = np.random.default_rng(6)
    draws = np.array([sample_w(rng, 3, 2.0) for _ in range(4000)])
    assert np.allclose(draws.sum(1), 1.0) and (draws >= 0).all()
    assert np.allclose(draws.mean(0), 1 / 3, atol=0.02)  # Dirichlet(α·1) has mean 1/m
    # variance of a Dirichlet(2,2,2) marginal: α_i(α0−α_i)/(α0²(α0+1)) = 2·4/(36·7)
    assert draws[:, 0].var() == pytest.approx(8 / 252, rel=0.1)


def test_weight_grids():
    g2 = weight_grid(2, 11)
    assert g2.shape == (11, 2) and np.allclose(g2.sum(1), 1)
    assert np.allclose(sorted(g2[:, 0]), np.linspace(0, 1, 11))
    g3 = weight_grid(3, 11, seed=1)
    assert g3.shape == (11, 3) and np.allclose(g3.sum(1), 1) and (g3 >= -1e-12).all()
    assert np.allclose(g3[:3], np.eye(3))
    assert len(np.unique(g3.round(6), axis=0)) == 11
    assert len(reference_directions(2, 10)) == 11


# -- the linear-transformation property (paper Prop. 3.1) ----------------------------------------
def test_temperature_transform_formula():
    sb, s = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 0.0, -1.0])
    for c in (0.5, 2.0, 4.0):
        torch.testing.assert_close(temperature_transform(sb, s, c), (1 - 1 / c) * sb + s / c)
    torch.testing.assert_close(temperature_transform(sb, s, 1.0), s)
    with pytest.raises(ValueError):
        temperature_transform(sb, s, 0.0)


def test_transformed_model_has_the_same_icos_loss_at_c_beta():
    """For ANY model s_β, the transformed model at temperature cβ sees exactly the loss vector s_β
    sees at β, so ICOS optima map onto ICOS optima (the property, including the cosine term)."""
    g = torch.Generator().manual_seed(7)
    s_base, s_beta = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    z = torch.rand(6, 5, 2, generator=g)
    mask = torch.rand(6, 5, generator=g) > 0.2
    mask[:, 0] = True
    beta, w = 0.4, torch.tensor([0.3, 0.7])
    L = listwise_dpo_loss(s_beta, s_base, z, mask, beta, ["softmax", "l1"])
    for c in (0.25, 3.0):
        Lc = listwise_dpo_loss(temperature_transform(s_base, s_beta, c), s_base, z, mask, c * beta, ["softmax", "l1"])
        torch.testing.assert_close(Lc, L, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(icos_objective(Lc, w, 1.0), icos_objective(L, w, 1.0), rtol=1e-5, atol=1e-6)
        # a wrong transform (dropping the base term) changes the loss
        wrong = listwise_dpo_loss(s_beta / c, s_base, z, mask, c * beta, ["softmax", "l1"])
        assert not torch.allclose(wrong, L, atol=1e-3)


def _fit_linear(X, s_base, z, mask, beta):
    """The convex case: s = s_base + X·v, listwise DPO with dense labels, solved by L-BFGS."""
    v = torch.zeros(X.shape[-1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [v], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = listwise_dpo_loss(s_base + X @ v, s_base, z, mask, beta, "softmax")[0]
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    return (s_base + X @ v).detach()


def test_model_trained_at_c_beta_equals_the_transformed_model():
    """Where the property must hold — the model class is closed under the transform (s_base + X·v)
    and training reaches the unique optimum (convex, realisable labels) — training at cβ gives the
    transformed model, up to a per-group constant (softmax is shift-invariant)."""
    g = torch.Generator().manual_seed(8)
    Q, n, d = 12, 6, 3
    X = torch.randn(Q, n, d, generator=g, dtype=torch.float64)
    X = X - X.mean(1, keepdim=True)  # no within-group constant direction: the optimum v is unique
    s_base = torch.randn(Q, n, generator=g, dtype=torch.float64)
    z = X @ torch.tensor([1.0, -0.5, 0.8], dtype=torch.float64)  # φ(z) = softmax(z) is realisable
    mask = torch.ones(Q, n, dtype=torch.bool)
    beta, c = 0.5, 3.0
    s_beta = _fit_linear(X, s_base, z, mask, beta)
    s_cbeta = _fit_linear(X, s_base, z, mask, c * beta)
    transformed = temperature_transform(s_base, s_beta, c)
    centre = lambda s: s - s.mean(1, keepdim=True)
    torch.testing.assert_close(centre(transformed), centre(s_cbeta), rtol=0, atol=1e-6)
    # and the temperature really mattered: the β and cβ models differ
    assert (centre(s_beta) - centre(s_cbeta)).abs().max() > 0.1
