"""FairPO's generation variant (docs/method-definitions.md#generation-variant, paper appendix A): the loss against a hand-computed case,
end-to-end training of a tiny GPT-2 built here through `evofair experiment`, and bad input (exit 2)."""

from __future__ import annotations

import csv
import gzip
import json
import math
import re

import pytest
import torch
import yaml

from evofair import cli
from evofair.problems.common.hh_rlhf import DATA_FILE, load_hh_pairs
from evofair.problems.fairpo.generation import dpo_pair_losses, generation_group_losses

KEYWORDS = ["women", "woman", "black", "white", "girl", "men", "gay", "mexicans", "jewish", "racist"]


def softplus(x: float) -> float:  # −log σ(−x) = log(1 + e^x), by hand
    return math.log(1.0 + math.exp(x))


# -- the loss on tensors, by hand ------------------------------------------------------------------
def test_loss_matches_a_hand_computed_case():
    beta, eps = 0.5, 0.05
    # pairs: (policy chosen, policy rejected, reference chosen, reference rejected), group
    pol_w = torch.tensor([-3.0, -6.0, -2.0, -7.0], requires_grad=True)
    pol_l = torch.tensor([-5.0, -2.0, -2.5, -1.0])
    ref_w = torch.tensor([-4.0, -5.0, -2.0, -6.0])
    ref_l = torch.tensor([-4.0, -3.0, -2.0, -2.0])
    priv = torch.tensor([True, True, False, False])
    # h = (π_w − ref_w) − (π_l − ref_l):  (1) − (−1) = 2;  (−1) − (1) = −2;  0 − (−0.5) = 0.5;  (−1) − 1 = −2
    loss, h = dpo_pair_losses(pol_w, pol_l, ref_w, ref_l, beta)
    assert h.tolist() == [2.0, -2.0, 0.5, -2.0]
    # ℓ = −log σ(β h) = log(1 + e^{−β h})
    ell = [softplus(-1.0), softplus(1.0), softplus(-0.25), softplus(1.0)]
    assert loss.tolist() == pytest.approx(ell, abs=1e-6)
    L_P, L_N = generation_group_losses(pol_w, pol_l, ref_w, ref_l, priv, beta=beta, epsilon=eps)
    # L_P: mean DPO loss over the P pairs = (0.313262 + 1.313262) / 2
    assert float(L_P.detach()) == pytest.approx((softplus(-1.0) + softplus(1.0)) / 2, abs=1e-6)
    assert float(L_P.detach()) == pytest.approx(0.813262, abs=1e-6)
    # L_N: mean over N of max(0, ℓ − ℓ_ref − ε), ℓ_ref = −log σ(0) = log 2 (the reference against itself):
    # pair 3: 0.575939 − 0.693147 − 0.05 < 0 → 0;  pair 4: 1.313262 − 0.693147 − 0.05 = 0.570115
    hinge4 = softplus(1.0) - math.log(2.0) - eps
    assert float(L_N) == pytest.approx((0.0 + hinge4) / 2, abs=1e-6)
    assert float(L_N) == pytest.approx(0.285057, abs=1e-6)
    # gradient of L_P w.r.t. π_w of pair 1: −β σ(−β h) / 2 = −0.5·σ(−1)/2; pair 3 (N, inactive hinge): 0
    (L_P + L_N).backward()
    sig = lambda x: 1 / (1 + math.exp(-x))
    g = pol_w.grad.tolist()
    assert g[0] == pytest.approx(-beta * sig(-1.0) / 2, abs=1e-6)
    assert g[2] == 0.0
    assert g[3] == pytest.approx(-beta * sig(1.0) / 2, abs=1e-6)  # active hinge: the DPO gradient, halved
    # ε large enough switches the last hinge off; a batch with no N pair gives L_N = 0
    _, L_N_off = generation_group_losses(pol_w, pol_l, ref_w, ref_l, priv, beta=beta, epsilon=0.7)
    assert float(L_N_off) == 0.0
    _, L_N_none = generation_group_losses(pol_w, pol_l, ref_w, ref_l, torch.ones(4, dtype=torch.bool), beta=beta)
    assert float(L_N_none) == 0.0


# -- a tiny GPT-2 directory, trained end to end through the CLI ---------------------------------------
@pytest.fixture(scope="module")
def model_dir(tiny_lm_dir):
    return tiny_lm_dir


def small(model_dir, **extra) -> list[str]:
    sets = {
        "problem.args.model_path": str(model_dir),
        "problem.args.n_train": 6,
        "problem.args.n_test": 4,
        "problem.args.max_prompt_tokens": 24,
        "problem.args.max_response_tokens": 16,
        "problem.args.privileged_keywords": "[" + ", ".join(KEYWORDS) + "]",
        "experiment.args.steps": 6,
        "experiment.args.batch_per_group": 2,
        "experiment.args.lr": 0.01,
        "experiment.args.lora_r": 2,
        **extra,
    }
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def independent_group(prompt: str) -> str:
    """P iff a human turn contains one of KEYWORDS as a word (written apart from the code under test)."""
    turns = re.findall(r"\n\nHuman:(.*?)(?=\n\nAssistant:|\Z)", prompt, flags=re.S)
    words = {w for t in turns for w in re.findall(r"[a-z]+", t.lower())}
    return "P" if words & set(KEYWORDS) else "N"


def loop_logprob(model, tok, prompt: str, response: str, max_p: int, max_r: int) -> float:
    """Σ_t log p(y_t | x, y_<t), one token at a time (no padding, no batching)."""
    p = tok(prompt, add_special_tokens=False)["input_ids"][-max_p:]
    r = tok(response, add_special_tokens=False)["input_ids"][:max_r]
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    return sum(float(torch.log_softmax(logits[t - 1], -1)[ids[0, t]]) for t in range(len(p), len(p) + len(r)))


def check_groups_against_an_independent_reading(out) -> tuple[list, list]:
    """The P/N groups of pairs.csv follow the recipe's keyword rule, checked against an independent
    reading of the prompts; returns (every HH-RLHF pair, the rows of pairs.csv)."""
    pairs = load_hh_pairs(DATA_FILE)
    rows = read_csv(out / "pairs.csv")
    for split, n in (("train", 6), ("test", 4)):
        for g in ("P", "N"):
            assert sum(r["split"] == split and r["group"] == g for r in rows) == n
    assert len({(r["pair_index"]) for r in rows}) == len(rows) == 20  # no pair in two splits
    for r in rows:
        assert r["group"] == independent_group(pairs[int(r["pair_index"])]["prompt"])
    return pairs, rows


def check_log_probs_token_by_token(out, model_dir, pairs: list, rows: list) -> None:
    """Reference log-probs (the model directory) and the trained policy's (the saved LoRA adapter),
    recomputed token by token for one pair of each group."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), out / "model").eval()
    assert (out / "model" / "adapter_model.safetensors").is_file()
    for r in (next(r for r in rows if r["group"] == "P"), next(r for r in rows if r["group"] == "N")):
        pair = pairs[int(r["pair_index"])]
        for col, resp in (("chosen", pair["chosen"]), ("rejected", pair["rejected"])):
            assert float(r[f"ref_{col}"]) == pytest.approx(
                loop_logprob(ref_model, tok, pair["prompt"], resp, 24, 16), abs=1e-3
            )
            assert float(r[f"policy_{col}"]) == pytest.approx(
                loop_logprob(policy, tok, pair["prompt"], resp, 24, 16), abs=1e-3
            )


def check_group_metrics_by_hand(out, rows: list, beta: float, eps: float) -> None:
    """Per-group metrics in groups.csv, recomputed from the per-pair log-probs with the formulas by
    hand; six steps at lr 0.01 move the policy below the reference's DPO loss on the training pairs."""
    groups = {(g["split"], g["group"], g["model"]): g for g in read_csv(out / "groups.csv")}
    for split in ("train", "test"):
        for g in ("P", "N", "all"):
            sel = [r for r in rows if r["split"] == split and (g == "all" or r["group"] == g)]
            h = [
                (float(r["policy_chosen"]) - float(r["ref_chosen"]))
                - (float(r["policy_rejected"]) - float(r["ref_rejected"]))
                for r in sel
            ]
            ell = [softplus(-beta * x) for x in h]
            want = {
                "n": len(sel),
                "acc": sum(float(r["policy_chosen"]) > float(r["policy_rejected"]) for r in sel) / len(sel),
                "reward_acc": sum(x > 0 for x in h) / len(h),
                "margin": sum(h) / len(h),
                "dpo_loss": sum(ell) / len(ell),
                "hinge": sum(max(0.0, v - math.log(2) - eps) for v in ell) / len(ell),
            }
            got = groups[(split, g, "trained")]
            for k, v in want.items():
                assert float(got[k]) == pytest.approx(v, abs=1e-4), (split, g, k)
            before = groups[(split, g, "reference")]
            assert float(before["acc"]) == pytest.approx(
                sum(float(r["ref_chosen"]) > float(r["ref_rejected"]) for r in sel) / len(sel)
            )
            assert float(before["dpo_loss"]) == pytest.approx(math.log(2), abs=1e-6)  # float32
            assert float(before["reward_acc"]) == 0.0 and float(before["hinge"]) == 0.0
    assert float(groups[("train", "all", "trained")]["dpo_loss"]) < math.log(2) - 0.01


def check_alpha_trajectory(out) -> None:
    """α trajectory: plain GRPO from (0.5, 0.5), α_g ∝ α_g·exp(η·L_g) on the recorded losses, η = 0.05."""
    trace = read_csv(out / "trace.csv")
    assert [int(t["step"]) for t in trace] == list(range(1, 7))
    a_p, a_n = 0.5, 0.5
    for t in trace:
        lp, ln = float(t["loss_p"]), float(t["loss_n"])
        a_p, a_n = a_p * math.exp(0.05 * lp), a_n * math.exp(0.05 * ln)
        a_p, a_n = a_p / (a_p + a_n), a_n / (a_p + a_n)
        assert float(t["alpha_p"]) == pytest.approx(a_p, abs=1e-9)
        assert float(t["loss"]) == pytest.approx(a_p * lp + a_n * ln, rel=1e-5)
    assert float(trace[0]["loss_p"]) == pytest.approx(math.log(2), abs=1e-5)  # step 1: policy = reference
    assert float(trace[0]["loss_n"]) == 0.0


def test_trains_a_tiny_gpt2_through_the_cli(tmp_path, model_dir, capsys):
    out = tmp_path / "run"
    argv = [
        "experiment",
        "fairpo_generation_hh_rlhf",
        "--out",
        str(out),
        "--quiet",
        "--seed",
        "3",
        *small(model_dir, **{"experiment.args.save_model": "true"}),
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"evofair: wrote {out} (experiment fairpo_generation, ")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["experiment"]["args"]["steps"] == 6 and config["problem"]["args"]["n_train"] == 6
    beta, eps = 0.1, 0.05  # the recipe's
    assert config["experiment"]["args"]["beta"] == beta and config["experiment"]["args"]["epsilon"] == eps

    pairs, rows = check_groups_against_an_independent_reading(out)
    check_log_probs_token_by_token(out, model_dir, pairs, rows)
    check_group_metrics_by_hand(out, rows, beta, eps)
    check_alpha_trajectory(out)
    report = (out / "report.md").read_text()
    assert "ℓ_ref = log 2" in report and "| test | P | 4 |" in report and (out / "plots" / "alpha.png").is_file()

    # same seed, same run
    again = tmp_path / "again"
    assert cli.main([*argv[:3], str(again), *argv[4:]]) == 0
    assert (again / "trace.csv").read_text() == (out / "trace.csv").read_text()


def test_full_fine_tuning_without_lora(tmp_path, model_dir):
    out = tmp_path / "full"
    argv = [
        "experiment",
        "fairpo_generation_hh_rlhf",
        "--out",
        str(out),
        "--quiet",
        *small(
            model_dir,
            **{
                "experiment.args.lora_r": 0,
                "experiment.args.steps": 3,
                "experiment.args.weighting": "grpo_stable",
                "experiment.args.lr": 0.001,
            },
        ),
    ]
    assert cli.main(argv) == 0
    trace = read_csv(out / "trace.csv")
    # stabilised GRPO's first step is the plain step, clamped (GroupWeights, the authors' code)
    lp, ln = float(trace[0]["loss_p"]), float(trace[0]["loss_n"])
    want = math.exp(0.05 * lp) / (math.exp(0.05 * lp) + math.exp(0.05 * ln))
    assert float(trace[0]["alpha_p"]) == pytest.approx(want, abs=1e-9)
    assert "every weight (no LoRA)" in (out / "report.md").read_text()


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------
def one_error_line(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evofair: error: ") and "Traceback" not in err, err
    return lines[0]


def test_no_model_directory(tmp_path, capsys):
    out = tmp_path / "o"
    line = one_error_line(
        capsys,
        [
            "experiment",
            "fairpo_generation_hh_rlhf",
            "--out",
            str(out),
            "--set",
            f"problem.args.model_path={tmp_path / 'missing'}",
        ],
    )
    assert "problem.args.model_path" in line and "config.json" in line
    assert not out.exists()


def test_empty_groups(tmp_path, model_dir, capsys):
    out = tmp_path / "o"
    line = one_error_line(
        capsys,
        [
            "experiment",
            "fairpo_generation_hh_rlhf",
            "--out",
            str(out),
            *small(model_dir, **{"problem.args.privileged_keywords": "[zqxjvv]"}),
        ],
    )
    assert "privileged_keywords" in line and "(P) is empty" in line
    assert not out.exists()
    # every pair matches: N is empty
    data = tmp_path / "all_women.jsonl.gz"
    with gzip.open(data, "wt") as fh:
        for i in range(3):
            t = f"\n\nHuman: what do women think of topic {i}?\n\nAssistant:"
            fh.write(json.dumps({"chosen": t + f" answer {i}", "rejected": t + f" other {i}"}) + "\n")
    line = one_error_line(
        capsys,
        [
            "experiment",
            "fairpo_generation_hh_rlhf",
            "--out",
            str(out),
            *small(model_dir, **{"problem.args.data_path": str(data)}),
        ],
    )
    assert "(N) is empty" in line
    # too few pairs in a group for n_train + n_test
    line = one_error_line(
        capsys,
        [
            "experiment",
            "fairpo_generation_hh_rlhf",
            "--out",
            str(out),
            *small(model_dir, **{"problem.args.n_train": 500}),
        ],
    )
    assert "problem.args.n_train" in line and "group P has" in line
    assert not out.exists()


def test_not_an_evolutionary_problem(tmp_path, model_dir, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "problem": {
                    "name": "hh_rlhf_groups",
                    "args": {"model_path": str(model_dir), "privileged_keywords": ["women"]},
                },
                "algorithm": {"pop_size": 4, "generations": 1},
            }
        )
    )
    line = one_error_line(capsys, ["run", str(recipe), "--out", str(tmp_path / "o")])
    assert "objective" in line
    assert not (tmp_path / "o").exists()
