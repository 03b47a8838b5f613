"""Hyper Prompt Tuning + LoRA on a tiny GPT-2 built here, and the HH-RLHF alignment problem (no downloads)."""

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2

import evofair
from evofair.core.indicators import hypervolume
from evofair.problems.common.causal_lm import sequence_logprob
from evofair.problems.common.hh_rlhf import DATA_FILE, load_hh_pairs
from evofair.problems.hyperdpo.alignment import AlignmentParams, build_hyper_lm, preference_labels
from evofair.problems.hyperdpo.hyper_prompt import HyperPromptTuning, trainable_parameters
from evofair.problems.hyperdpo.losses import listwise_dpo_loss


@pytest.fixture(scope="module")
def model_dir(tiny_lm_dir):
    return tiny_lm_dir


def test_hyper_prompt_shapes_and_configurable_k_r():
    hpt = HyperPromptTuning(n_obj=3, embed_dim=16, k=5, r=2, hidden=8)
    assert hpt.prefix.shape == (5, 16)
    assert hpt.mlp_a[-1].out_features == 5 * 2 and hpt.mlp_b[-1].out_features == 2 * 16
    w = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    out = hpt(w)
    assert out.shape == (2, 5, 16)
    A = hpt.mlp_a(w).view(2, 5, 2)
    B = hpt.mlp_b(w).view(2, 2, 16)
    torch.testing.assert_close(out, hpt.prefix * (A @ B))  # P ⊙ (A·B), rank ≤ r mask
    assert torch.linalg.matrix_rank(hpt.mask(w)[0]).item() <= 2
    with pytest.raises(ValueError):
        hpt(torch.tensor([0.5, 0.5]))
    t = HyperPromptTuning(n_obj=2, embed_dim=16, k=3, r=1, temperature=True)
    with pytest.raises(ValueError):
        t(torch.tensor([0.5, 0.5]))
    assert not torch.allclose(t(torch.tensor([0.5, 0.5]), 0.1), t(torch.tensor([0.5, 0.5]), 1.0))
    # same seed, same module; init leaves the global RNG alone
    state = torch.random.get_rng_state()
    again = HyperPromptTuning(n_obj=3, embed_dim=16, k=5, r=2, hidden=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(again(w), out)


def test_hyper_prompt_with_lora_trains_and_output_depends_on_w():
    lm = tiny_gpt2()
    keys_before = set(lm.state_dict())
    p = AlignmentParams(k=4, r=2, lora_r=4, hpt_hidden=8)
    hlm = build_hyper_lm(lm, 2, p).eval()
    base_keys = {
        k.replace("base_model.model.", "").replace(".base_layer", "") for k in hlm.lm.state_dict() if "lora_" not in k
    }
    assert base_keys == keys_before  # the LM's own modules are unchanged; LoRA and prompt are added
    trainable = trainable_parameters([hlm])
    names = {n for n, q in hlm.named_parameters() if q.requires_grad}
    assert any("lora_A" in n for n in names) and any(n.startswith("hpt.") for n in names)
    assert all("lora_" in n or n.startswith("hpt.") for n in names)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 63, (6, 10), generator=g)  # 3 prompts × 2 responses
    attn = torch.ones_like(ids)
    resp = torch.zeros(6, 10)
    resp[:, 5:] = 1
    logits = hlm(ids, attn, torch.tensor([0.5, 0.5]))
    assert logits.shape == (6, 10, 64)
    with torch.no_grad(), hlm.lm.disable_adapter():
        ref = sequence_logprob(hlm.lm(input_ids=ids, attention_mask=attn).logits, ids, resp).view(3, 2)
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    lora_b0 = {n: q.detach().clone() for n, q in hlm.named_parameters() if "lora_B" in n}
    opt = torch.optim.Adam(trainable, lr=1e-2)
    losses = []
    for step in range(12):
        w = torch.tensor([[1.0, 0.0], [0.0, 1.0]][step % 2])
        s = sequence_logprob(hlm(ids, attn, w), ids, resp).view(3, 2)
        L = listwise_dpo_loss(s, ref, z, torch.ones(3, 2, dtype=torch.bool), 0.5, "l1")
        loss = (w * L).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert any(not torch.equal(q, lora_b0[n]) for n, q in hlm.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        a = hlm(ids, attn, torch.tensor([1.0, 0.0]))
        b = hlm(ids, attn, torch.tensor([0.0, 1.0]))
        a2 = hlm(ids, attn, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(a, a2)
    assert (a - b).abs().max() > 1e-3  # the conditioned model's output changes with w


def test_hh_pairs_and_labels():
    pairs = load_hh_pairs(DATA_FILE)
    assert 900 <= len(pairs) <= 1000
    assert all(p["prompt"].endswith("\n\nAssistant:") and p["chosen"] != p["rejected"] for p in pairs[:50])
    z = preference_labels(pairs[:200], ["harmless", "shorter"])
    assert (z[:, 0, 0] == 1).all() and (z[:, 1, 0] == 0).all()
    lens = np.array([[len(p["chosen"].strip()), len(p["rejected"].strip())] for p in pairs[:200]])
    assert ((z[:, 0, 1] == 1) == (lens[:, 0] < lens[:, 1])).all()
    assert ((z[:, 0, 1] == 0.5) == (lens[:, 0] == lens[:, 1])).all()


def test_alignment_experiment_on_a_local_model_directory(tmp_path, model_dir):
    recipe = {
        "name": "hh",
        "seed": 3,
        "problem": {
            "name": "hh_rlhf",
            "args": {
                "model_path": str(model_dir),
                "n_train": 8,
                "n_eval": 6,
                "steps": 4,
                "batch_size": 2,
                "max_prompt_tokens": 24,
                "max_response_tokens": 16,
                "k": 3,
                "r": 2,
                "lora_r": 2,
                "hpt_hidden": 8,
                "lr": 1e-2,
            },
        },
        "experiment": {"name": "hyperdpo_alignment", "args": {"n_points": 3}},
    }
    out = tmp_path / "run"
    evofair.experiment(recipe, out, progress=False)
    report = (out / "report.md").read_text()
    assert (out / "plots" / "front.png").exists() and "reference point 0" in report
    lines = (out / "table.md").read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cols = [header.index("acc_harmless (test)"), header.index("acc_shorter (test)")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(rows) == 3
    accs = np.array([[float(r[c]) for c in cols] for r in rows])
    hv = float(report.split("reference point 0): ")[1].split(".\n")[0].rstrip("."))
    assert hv == pytest.approx(hypervolume(-accs, [0, 0]), abs=1e-4)
    assert ((accs >= 0) & (accs <= 1)).all()


def test_alignment_needs_a_model_directory(tmp_path):
    from evofair.errors import UserError

    with pytest.raises(UserError, match="model_path"):
        evofair.experiment(
            {
                "problem": {"name": "hh_rlhf", "args": {"model_path": str(tmp_path)}},
                "experiment": {"name": "hyperdpo_alignment"},
            },
            tmp_path / "o",
            progress=False,
        )
