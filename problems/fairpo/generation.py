"""FairPO's generation variant (paper appendix A, docs/method-definitions.md#generation-variant): sequence-level DPO over attribute groups.

A preference pair (x, y_w ≻ y_l) belongs to the privileged group P or to N by the attribute that
drove the preference. With s(y|x) the sequence log-probability of the response (summed over its
tokens, `sequence_logprob`) and π_ref the frozen reference policy, per pair

    h = [s_θ(y_w|x) − s_ref(y_w|x)] − [s_θ(y_l|x) − s_ref(y_l|x)],     ℓ_θ = −log σ(β·h)   (DPO)

    L_P = mean over P-pairs of ℓ_θ                                          (paper eq. 20)
    L_N = mean over N-pairs of max(0, ℓ_θ − ℓ_ref − ε)                        (paper eq. 21)

where ℓ_ref is the reference policy's own DPO loss on the pair. The DPO loss is measured relative
to π_ref, so for π_ref itself h = 0 and ℓ_ref = −log σ(0) = log 2 on every pair: N is penalised
only where the policy prefers y_l over y_w by more, relative to the reference, than the slack ε
allows — "no significant degradation against the baseline", the generation analogue of the
classification hinge max(0, BCE_θ − BCE_ref − ε). GRPO balances the two exactly as in the
classification setting (`GroupWeights`: α ← α·exp(η·L), normalise; or the FairPO code's
stabilised form), then one optimiser step on α_P·L_P + α_N·L_N.

HH-RLHF does not record which attribute drove a preference, so the groups here come from a rule
stated in the recipe: a pair is in P when its prompt mentions one of `privileged_keywords` (whole
words, case-insensitive). This module holds the loss, the data/group split, the training loop, the
per-group metrics and the problem `hh_rlhf_groups` (data, tokenizer, LM, reference log-probs); the
experiment `fairpo_generation` (LoRA or full fine-tuning, report) is in `generation_experiment.py`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from evofair.core.problem import Problem
from evofair.core.registry import Args, component
from evofair.errors import UserError
from evofair.problems.common.causal_lm import sequence_logprob
from evofair.problems.common.hh_rlhf import ASSISTANT, HUMAN, check_lm_inputs, hh_data_path, load_hh_pairs
from evofair.problems.fairpo.losses import GroupWeights

REF_DPO_LOSS = math.log(2.0)  # ℓ_ref = −log σ(β·0): the reference's DPO loss against itself (docstring)
GROUPS = ("P", "N")


# -- the loss ------------------------------------------------------------------------------------
def dpo_pair_losses(
    pol_w: torch.Tensor, pol_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair (ℓ_θ = −log σ(β·h), h): sequence log-probs of the preferred (w) and dispreferred (l) response."""
    h = (pol_w - ref_w.detach()) - (pol_l - ref_l.detach())
    return -F.logsigmoid(beta * h), h


def _mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = int(mask.sum())
    return x[mask].sum() / n if n > 0 else x.sum() * 0.0


def generation_group_losses(
    pol_w, pol_l, ref_w, ref_l, privileged: torch.Tensor, *, beta: float = 0.1, epsilon: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_P, L_N) of one batch of pairs; `privileged` (n,) bool marks P-pairs (module docstring).

    A group absent from the batch contributes 0; the trainer draws every batch from both groups so
    that GRPO never sees a spurious zero.
    """
    loss, _ = dpo_pair_losses(pol_w, pol_l, ref_w, ref_l, beta)
    privileged = privileged.to(torch.bool)
    hinge = torch.relu(loss - REF_DPO_LOSS - epsilon)
    return _mean(loss, privileged), _mean(hinge, ~privileged)


# -- data: pairs, groups, tokens ------------------------------------------------------------------
def human_turns(prompt: str) -> str:
    """The human's turns of an HH-RLHF transcript (what the user asked about, not the assistant's replies)."""
    return " ".join(t.split(ASSISTANT)[0] for t in prompt.split(HUMAN)[1:])


def keyword_pattern(keywords: list[str]) -> re.Pattern:
    words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
    if not words:
        raise UserError("problem.args.privileged_keywords: expected at least one non-empty keyword")
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


def matched_keywords(pattern: re.Pattern, text: str) -> list[str]:
    return sorted({m.lower() for m in pattern.findall(text)})


class GenerationParams(Args):
    model_path: str | None = Field(
        None,
        description="a local Hugging Face causal-LM directory (config.json, "
        "weights, tokenizer); it is also the reference policy π_ref",
    )
    data_path: str | None = Field(None, description="HH-RLHF style JSONL(.gz); default: the shipped subset")
    privileged_keywords: list[str] = Field(
        min_length=1,
        description="a pair is privileged (P) when its prompt mentions one of these (whole words, case-insensitive)",
    )
    match_in: Literal["human", "prompt"] = Field(
        "human", description="where keywords are looked for: the human turns of the prompt, or the whole prompt"
    )
    n_train: int = Field(96, ge=1, description="training pairs per group")
    n_test: int = Field(48, ge=1, description="held-out pairs per group")
    max_prompt_tokens: int = Field(128, ge=1, description="keep the prompt's last tokens")
    max_response_tokens: int = Field(64, ge=1, description="keep the response's first tokens")
    eval_batch_size: int = Field(16, ge=1, description="pairs per forward pass when scoring")
    seed: int = Field(0, description="seeds the choice and order of pairs in each group")
    device: str = "cpu"


def split_pairs(pairs: list[dict[str, str]], p: GenerationParams) -> dict[str, list[dict]]:
    """{train, test}: n_train + n_test pairs per group, drawn by a seeded permutation of each group.

    Each row: the pair, its index in the loaded file (`pair_index`), its group and matched keywords.
    An empty group, or one smaller than n_train + n_test, is a `UserError` (nothing is written yet).
    """
    pattern = keyword_pattern(p.privileged_keywords)
    rows = {g: [] for g in GROUPS}
    for i, pair in enumerate(pairs):
        text = human_turns(pair["prompt"]) if p.match_in == "human" else pair["prompt"]
        kws = matched_keywords(pattern, text)
        rows["P" if kws else "N"].append({**pair, "pair_index": i, "group": "P" if kws else "N", "keywords": kws})
    need = p.n_train + p.n_test
    for g, name in (("P", "privileged"), ("N", "non-privileged")):
        if not rows[g]:
            raise UserError(
                f"problem.args.privileged_keywords: the {name} group ({g}) is empty: no pair "
                f"{'matches' if g == 'P' else 'is left without'} a keyword in {p.match_in} text"
            )
    for g in GROUPS:
        if len(rows[g]) < need:
            raise UserError(
                f"problem.args.n_train: group {g} has {len(rows[g])} pairs, n_train + n_test = {need} needed per group"
            )
    rng = np.random.default_rng(p.seed)
    out = {"train": [], "test": []}
    for g in GROUPS:
        chosen = [rows[g][i] for i in rng.permutation(len(rows[g]))[:need]]
        out["train"] += chosen[: p.n_train]
        out["test"] += chosen[p.n_train :]
    return out


def encode_pairs(tok, pairs: list[dict], max_prompt: int, max_response: int) -> dict[str, torch.Tensor]:
    """Token ids [N, 2, T] for (prompt + chosen, prompt + rejected), right-padded; attention and
    response masks alike; `privileged` [N] bool."""
    seqs, resp = [], []
    for pair in pairs:
        prompt = tok(pair["prompt"], add_special_tokens=False)["input_ids"][-max_prompt:]
        for y in (pair["chosen"], pair["rejected"]):
            ids = tok(y, add_special_tokens=False)["input_ids"][:max_response]
            seqs.append(prompt + ids)
            resp.append([0] * len(prompt) + [1] * len(ids))
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), tok.pad_token_id, dtype=torch.long)
    attn, rmask = torch.zeros(len(seqs), T, dtype=torch.long), torch.zeros(len(seqs), T)
    for i, (s, r) in enumerate(zip(seqs, resp)):
        ids[i, : len(s)], attn[i, : len(s)] = torch.tensor(s), 1
        rmask[i, : len(s)] = torch.tensor(r, dtype=torch.float)
    N = len(pairs)
    return {
        "ids": ids.view(N, 2, T),
        "attn": attn.view(N, 2, T),
        "resp": rmask.view(N, 2, T),
        "privileged": torch.tensor([q["group"] == "P" for q in pairs]),
    }


def score_pairs(model, enc: dict[str, torch.Tensor], idx, device: str = "cpu", grad: bool = False) -> torch.Tensor:
    """Sequence log-probs [n, 2] (chosen, rejected) of the pairs `idx`; columns past the longest
    sequence of the batch are cut (right padding: nothing there is attended to or scored)."""
    ids, attn, resp = (enc[k][idx] for k in ("ids", "attn", "resp"))
    n, T = ids.shape[0], int(attn.sum(-1).max())
    flat = lambda x: x[..., :T].reshape(n * 2, T).to(device)
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=flat(ids), attention_mask=flat(attn)).logits
        return sequence_logprob(logits, flat(ids), flat(resp)).view(n, 2).cpu()


def score_all(model, enc, batch: int, device: str) -> torch.Tensor:
    N = len(enc["ids"])
    chunks = [score_pairs(model, enc, torch.arange(i, min(i + batch, N)), device) for i in range(0, N, batch)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 2)


# -- training: GRPO over the two group losses ---------------------------------------------------------
def _group_batches(privileged: torch.Tensor, per_group: int, rng: np.random.Generator):
    """Endless (P indices, N indices) batches: each group cycles through seeded permutations of itself,
    so every step has both group losses (a batch missing a group would hand GRPO an L_g of 0)."""
    pools = [torch.nonzero(privileged).flatten().numpy(), torch.nonzero(~privileged).flatten().numpy()]
    queues = [np.empty(0, dtype=int), np.empty(0, dtype=int)]
    while True:
        batch = []
        for g, pool in enumerate(pools):
            while len(queues[g]) < per_group:
                queues[g] = np.concatenate([queues[g], pool[rng.permutation(len(pool))]])
            batch.append(queues[g][:per_group])
            queues[g] = queues[g][per_group:]
        yield batch


def train_generation(
    model,
    enc: dict[str, torch.Tensor],
    ref: torch.Tensor,
    *,
    steps: int,
    batch_per_group: int,
    beta: float,
    epsilon: float,
    weighting: str,
    eta: float,
    alpha_p: float,
    lr: float,
    weight_decay: float,
    grad_clip: float | None,
    seed: int,
    device: str = "cpu",
) -> dict:
    """FairPO-generation on `enc` (train pairs) with π_ref's log-probs `ref` [N, 2]; trains `model`'s
    parameters that require grad (LoRA adapters, or all weights) in place. Per step: the batch's
    (L_P, L_N); α ← GroupWeights.update(detached losses); AdamW on α_P·L_P + α_N·L_N (clipped).
    Returns the trace {step lists: alpha_p, loss_p, loss_n, loss} and the count of skipped steps."""
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    alpha = GroupWeights(weighting, eta, (alpha_p, 1 - alpha_p))
    batches = _group_batches(enc["privileged"], batch_per_group, np.random.default_rng(seed))
    trace: dict[str, list[float]] = {"alpha_p": [], "loss_p": [], "loss_n": [], "loss": []}
    skipped = 0
    for _, (ip, inn) in zip(range(steps), batches):
        idx = torch.as_tensor(np.concatenate([ip, inn]))
        s = score_pairs(model, enc, idx, device, grad=True)
        r = ref[idx]
        priv = torch.arange(len(idx)) < len(ip)
        loss_p, loss_n = generation_group_losses(s[:, 0], s[:, 1], r[:, 0], r[:, 1], priv, beta=beta, epsilon=epsilon)
        a_p, a_n = alpha.update([float(loss_p.detach()), float(loss_n.detach())])
        loss = a_p * loss_p + a_n * loss_n
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
        else:  # never step on a non-finite loss; counted for the report
            skipped += 1
        for key, v in (
            ("alpha_p", a_p),
            ("loss_p", float(loss_p.detach())),
            ("loss_n", float(loss_n.detach())),
            ("loss", value),
        ):
            trace[key].append(v)
    return {"trace": trace, "skipped": skipped}


def group_metrics(
    pol: torch.Tensor, ref: torch.Tensor, privileged: torch.Tensor, *, beta: float, epsilon: float
) -> dict[str, dict[str, float]]:
    """Per group (P, N, all) of a policy's log-probs `pol` [N, 2] against π_ref's `ref` (pass `ref` as
    `pol` for the reference itself, i.e. "before"): n; likelihood preference accuracy s(y_w) > s(y_l)
    (ties wrong); implicit-reward accuracy h > 0 (ties wrong, so 0 for π_ref); mean margin h; mean DPO
    loss ℓ (log 2 for π_ref); mean hinge max(0, ℓ − log 2 − ε)."""
    loss, h = dpo_pair_losses(pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], beta)
    hinge = torch.relu(loss - REF_DPO_LOSS - epsilon)
    out = {}
    for g, mask in (("P", privileged), ("N", ~privileged), ("all", torch.ones_like(privileged))):
        m = mask.to(torch.bool)
        if not bool(m.any()):
            out[g] = {"n": 0, **{k: float("nan") for k in METRICS}}
            continue
        vals = {"acc": pol[:, 0] > pol[:, 1], "reward_acc": h > 0, "margin": h, "dpo_loss": loss, "hinge": hinge}
        out[g] = {"n": int(m.sum()), **{k: float(v[m].double().mean()) for k, v in vals.items()}}
    return out


METRICS = ("acc", "reward_acc", "margin", "dpo_loss", "hinge")


# -- the problem -------------------------------------------------------------------------------------
@component("problem", "hh_rlhf_groups", GenerationParams)
class PreferenceGroups(Problem):
    """HH-RLHF pairs in groups P/N by a keyword rule, a causal LM and π_ref's log-probs (for fairpo_generation).

    Experiment-only: it has no objectives, so `evofair run` refuses it (exit 2, one line)."""

    name = "hh_rlhf_groups"
    Params = GenerationParams
    objectives = ()  # experiment-only: `evofair run` refuses a problem without objectives (exit 2)

    def _data_path(self) -> Path:
        return hh_data_path(self.params.data_path, self.data_root)

    def check_inputs(self) -> None:
        check_lm_inputs(self.params.model_path, self._data_path())

    def setup(self) -> None:
        """Pairs and groups first (cheap, so a bad rule fails fast), then tokenizer, LM and π_ref's scores."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = self.params
        self.check_inputs()
        self.splits = split_pairs(load_hh_pairs(self._data_path()), p)
        try:
            self.tok = AutoTokenizer.from_pretrained(p.model_path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(p.model_path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"problem.args.model_path: {p.model_path}: cannot load a causal LM and its tokenizer "
                f"({' '.join(str(exc).split())[:200]})"
            ) from None
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        # eval mode throughout (training included): no dropout, so the policy at step 0 is π_ref exactly
        self.model.to(p.device).eval()
        self.data = {
            s: encode_pairs(self.tok, rows, p.max_prompt_tokens, p.max_response_tokens)
            for s, rows in self.splits.items()
        }
        self.ref = {s: score_all(self.model, d, p.eval_batch_size, p.device) for s, d in self.data.items()}

    def evaluate(self, genomes, split):
        raise UserError(
            "problem hh_rlhf_groups: serves the experiment fairpo_generation (`evofair experiment`), "
            "not an evolutionary run"
        )

    def describe(self) -> dict:
        return {s: {g: sum(r["group"] == g for r in rows) for g in GROUPS} for s, rows in self.splits.items()}
