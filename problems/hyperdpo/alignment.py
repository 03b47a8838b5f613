"""HyperDPO for language models: sequence-level listwise DPO + ICOS on preference data, conditioned
by Hyper Prompt Tuning on top of LoRA, for any local Hugging Face causal-LM directory.

Data: Anthropic HH-RLHF harmless-base pairs (data/hh_rlhf_harmless_base). Objectives:
- `harmless`: the human label — the `chosen` response was judged less harmful;
- `shorter`: a *heuristic* label, not a human judgement — the response with fewer characters is
  preferred (ties: no preference). It stands in for a second attribute because only one human
  attribute of HH-RLHF is available as plain files (see PROVENANCE.md).
Each prompt's responses form a group (n = 2 here; scoring and the loss take any n); s(y|x) is the response's
sequence log-probability; the reference is the same LM with adapters disabled and no prefix.
Metric per objective: preference accuracy of the implicit reward s_θ − s_ref on held-out prompts
(maximised; ties count as wrong), plus the listwise DPO loss.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from evofair.core.problem import Objective, VectorProblem
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.errors import UserError
from evofair.problems.common.causal_lm import sequence_logprob
from evofair.problems.common.hh_rlhf import check_lm_inputs, hh_data_path, load_hh_pairs
from evofair.problems.hyperdpo.hyper_prompt import HyperPromptLM, HyperPromptTuning, trainable_parameters
from evofair.problems.hyperdpo.losses import icos_objective, listwise_dpo_loss, sample_w, weight_grid


def preference_labels(pairs: list[dict[str, str]], objectives: list[str]) -> np.ndarray:
    """[N, 2, m] labels over (chosen, rejected): 1 for the preferred response, 0.5/0.5 for no preference."""
    z = np.zeros((len(pairs), 2, len(objectives)), np.float32)
    for i, p in enumerate(pairs):
        for j, obj in enumerate(objectives):
            if obj == "harmless":
                z[i, :, j] = (1.0, 0.0)
            else:
                a, b = len(p["chosen"].strip()), len(p["rejected"].strip())
                z[i, :, j] = (1.0, 0.0) if a < b else (0.0, 1.0) if b < a else (0.5, 0.5)
    return z


class AlignmentParams(Args):
    model_path: str | None = Field(None, description="a local Hugging Face causal-LM directory (with tokenizer)")
    data_path: str | None = Field(None, description="HH-RLHF style JSONL(.gz); default: the shipped subset")
    objectives: list[Literal["harmless", "shorter"]] = Field(["harmless", "shorter"], min_length=2)
    n_train: int = Field(256, ge=1)
    n_eval: int = Field(64, ge=1, description="prompts in each of the val and test splits")
    max_prompt_tokens: int = Field(128, ge=1, description="keep the prompt's last tokens")
    max_response_tokens: int = Field(64, ge=1, description="keep the response's first tokens")
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(8.0, gt=0)
    lora_targets: str | list[str] = Field("all-linear", description="peft target_modules")
    k: int = Field(8, ge=1, description="Hyper Prompt virtual tokens")
    r: int = Field(4, ge=1, description="rank of the Hyper Prompt mask")
    hpt_hidden: int = Field(32, ge=1)
    beta: float = Field(0.1, gt=0, description="DPO temperature (paper: 0.1)")
    temperature_conditioned: bool = Field(
        False, description="also feed log β to the prompt; β ~ log-uniform on beta_range per batch"
    )
    beta_range: tuple[float, float] = (0.05, 0.5)
    alpha: float = Field(1.0, gt=0)
    lam: float = Field(1.0, ge=0)
    steps: int = Field(200, ge=0)
    batch_size: int = Field(4, ge=1, description="prompts per step")
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    device: str = "cpu"


@component("problem", "hh_rlhf", AlignmentParams)
class AlignmentProblem(VectorProblem):
    """One HyperDPO-conditioned LM (trained in setup); a genome is a weight vector w (normalised to Δ_m)."""

    name = "hh_rlhf"

    def __init__(self, params=None, *, data_root=None):
        super().__init__(params, data_root=data_root)
        self.obj_keys = list(self.params.objectives)
        self.n_aux = self.n_var = len(self.obj_keys)
        self.xl, self.xu = np.zeros(self.n_var), np.ones(self.n_var)
        self.objectives = tuple(Objective(f"acc_{o}", "max") for o in self.obj_keys)
        self.default_hv_ref = (0.0,) * self.n_var

    def _data_path(self) -> Path:
        return hh_data_path(self.params.data_path, self.data_root)

    def check_inputs(self) -> None:
        check_lm_inputs(self.params.model_path, self._data_path())

    # -- setup: data, model, one ICOS training ---------------------------------------------------
    def setup(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = self.params
        self.check_inputs()
        need = p.n_train + 2 * p.n_eval
        pairs = load_hh_pairs(self._data_path(), limit=None)
        if len(pairs) < need:
            raise UserError(f"problem.args.n_train: {need} pairs needed, the data has {len(pairs)}")
        order = np.random.default_rng(p.seed).permutation(len(pairs))[:need]
        pairs = [pairs[i] for i in order]
        self.tok = AutoTokenizer.from_pretrained(p.model_path, local_files_only=True)
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        splits = {
            "train": pairs[: p.n_train],
            "val": pairs[p.n_train : p.n_train + p.n_eval],
            "test": pairs[p.n_train + p.n_eval :],
        }
        self.data = {s: self._encode(v) for s, v in splits.items()}
        with torch_seeded(p.seed):
            lm = AutoModelForCausalLM.from_pretrained(p.model_path, local_files_only=True)
            self.hlm = build_hyper_lm(lm, self.n_aux, p)
        self.hlm.to(p.device).eval()  # eval: no dropout, so policy and reference see the same network
        for d in self.data.values():
            d["ref"] = self._scores(d, None)
        self.train_log = self.train()

    def _encode(self, pairs: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        """Token ids [N, n, T] (prompt + response, right-padded), attention and response masks."""
        p, tok = self.params, self.tok
        seqs, resp = [], []
        for pair in pairs:
            prompt = tok(pair["prompt"], add_special_tokens=False)["input_ids"][-p.max_prompt_tokens :]
            for y in (pair["chosen"], pair["rejected"]):
                ids = tok(y, add_special_tokens=False)["input_ids"][: p.max_response_tokens]
                seqs.append(prompt + ids)
                resp.append([0] * len(prompt) + [1] * len(ids))
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), tok.pad_token_id, dtype=torch.long)
        attn, rmask = torch.zeros(len(seqs), T, dtype=torch.long), torch.zeros(len(seqs), T)
        for i, (s, r) in enumerate(zip(seqs, resp)):
            ids[i, : len(s)], attn[i, : len(s)], rmask[i, : len(s)] = (
                torch.tensor(s),
                1,
                torch.tensor(r, dtype=torch.float),
            )
        n = 2
        return {
            "ids": ids.view(len(pairs), n, T),
            "attn": attn.view(len(pairs), n, T),
            "resp": rmask.view(len(pairs), n, T),
            "labels": torch.from_numpy(preference_labels(pairs, self.obj_keys)),
        }

    def _scores(self, d, w, idx=None, beta=None, grad: bool = False) -> torch.Tensor:
        """Sequence log-probs [N, n]; w=None: the reference (adapters off, no prefix)."""
        dev = self.params.device
        sel = slice(None) if idx is None else idx
        ids, attn, resp = (d[k][sel] for k in ("ids", "attn", "resp"))
        N, n, T = ids.shape
        flat = lambda x: x.reshape(N * n, T).to(dev)
        with torch.set_grad_enabled(grad):
            if w is None:
                with self.hlm.lm.disable_adapter():
                    logits = self.hlm.lm(input_ids=flat(ids), attention_mask=flat(attn)).logits
            else:
                logits = self.hlm(flat(ids), flat(attn), torch.as_tensor(w, dtype=torch.float32), beta)
            return sequence_logprob(logits, flat(ids), flat(resp)).view(N, n).cpu()

    def train(self) -> dict:
        """ICOS: per step w ~ Dir(α) (and β if temperature-conditioned), loss wᵀL − λ·cos(w, L)."""
        p = self.params
        d = self.data["train"]
        rng = np.random.default_rng(p.seed)
        opt = torch.optim.AdamW(trainable_parameters([self.hlm]), lr=p.lr, weight_decay=0.0)
        losses, t0 = [], time.perf_counter()
        order = np.empty(0, dtype=int)
        for _ in range(p.steps):
            if len(order) < p.batch_size:
                order = np.concatenate([order, rng.permutation(len(d["ids"]))])
            idx, order = torch.as_tensor(order[: p.batch_size]), order[p.batch_size :]
            w = sample_w(rng, self.n_aux, p.alpha)
            beta = float(np.exp(rng.uniform(*np.log(p.beta_range)))) if p.temperature_conditioned else p.beta
            s = self._scores(d, w, idx, beta if p.temperature_conditioned else None, grad=True)
            mask = torch.ones(s.shape, dtype=torch.bool)
            L = listwise_dpo_loss(s, d["ref"][idx], d["labels"][idx], mask, beta, "l1")
            loss = icos_objective(L, torch.as_tensor(w, dtype=torch.float32), p.lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return {"steps": p.steps, "seconds": time.perf_counter() - t0, "loss": losses}

    # -- evaluation --------------------------------------------------------------------------------
    def metrics_at(self, w, split: str, beta: float | None = None) -> dict[str, float]:
        p = self.params
        d = self.data[split]
        w = np.asarray(w, dtype=float)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
        b = (beta or p.beta) if p.temperature_conditioned else None
        s = self._scores(d, w, beta=b)
        margin = s - d["ref"]
        out, losses = {}, {}
        for j, o in enumerate(self.obj_keys):
            z = d["labels"][..., j]
            has = z[:, 0] != z[:, 1]
            pref = z.argmax(-1)
            correct = margin.gather(1, pref[:, None]).squeeze(1) > margin.gather(1, 1 - pref[:, None]).squeeze(1)
            out[f"acc_{o}"] = float(correct[has].float().mean()) if bool(has.any()) else float("nan")
            losses[f"loss_{o}"] = float(
                listwise_dpo_loss(s, d["ref"], z, torch.ones(s.shape, dtype=torch.bool), beta or p.beta, "l1")[0]
            )
        return {**out, **losses}

    def evaluate(self, genomes, split):
        rows = [self.metrics_at(w, split) for w in np.atleast_2d(np.asarray(genomes, dtype=float))]
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def build_hyper_lm(lm, n_obj: int, p: AlignmentParams) -> HyperPromptLM:
    """LoRA (peft) on the LM, then a Hyper Prompt prefix; only adapters and prompt are trainable."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=0.0, target_modules=p.lora_targets)
    peft_lm = get_peft_model(lm, cfg)
    emb = peft_lm.get_input_embeddings()
    hpt = HyperPromptTuning(
        n_obj,
        emb.embedding_dim,
        k=p.k,
        r=p.r,
        hidden=p.hpt_hidden,
        temperature=p.temperature_conditioned,
        init_std=float(emb.weight.std()),
        seed=p.seed,
    )
    return HyperPromptLM(peft_lm, hpt)


class AlignmentTableArgs(Args):
    n_points: int = Field(11, ge=2, description="weight vectors evaluated from the one conditioned model")


@component("experiment", "hyperdpo_alignment", AlignmentTableArgs)
def hyperdpo_alignment(recipe, problem, args: AlignmentTableArgs, out: Path, progress: bool = True) -> dict[str, float]:
    """Evaluate the HyperDPO-conditioned LM over a grid of w: accuracies, losses, HV, plots/front.png."""
    from evofair.core.indicators import hypervolume

    if not isinstance(problem, AlignmentProblem):
        raise UserError("experiment.name: hyperdpo_alignment needs problem hh_rlhf")
    t = time.perf_counter()
    grid = weight_grid(problem.n_aux, args.n_points, recipe.seed)
    rows = [(w, problem.metrics_at(w, "val"), problem.metrics_at(w, "test")) for w in grid]
    names = problem.objective_names
    F = np.array([[r[2][n] for n in names] for r in rows])
    hv = hypervolume(-F, np.zeros(len(names)))
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    keys = list(rows[0][1])
    lines = ["| w | " + " | ".join(f"{k} (test)" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [
        "| " + ", ".join(f"{x:.2f}" for x in w) + " | " + " | ".join(f"{te[k]:.4f}" for k in keys) + " |"
        for w, _, te in rows
    ]
    p = problem.params
    md = [
        f"# HyperDPO (Hyper Prompt Tuning + LoRA) on {Path(p.model_path).name}",
        "",
        f"Objectives: {', '.join(problem.obj_keys)} (`harmless` = HH-RLHF human label; `shorter` = heuristic: "
        "fewer characters preferred). Accuracy = share of held-out prompts whose preferred response gets the "
        "larger implicit reward s_θ − s_ref.",
        f"Prompts train/val/test: {p.n_train}/{p.n_eval}/{p.n_eval}; ICOS steps {p.steps} (batch {p.batch_size}), "
        f"β = {p.beta}, α = {p.alpha}, λ = {p.lam}; LoRA r = {p.lora_r}; prompt k = {p.k}, r = {p.r}; "
        f"training time {problem.train_log['seconds']:.1f} s.",
        "",
        f"HV of the test accuracies over {len(grid)} weight vectors (maximised, reference point 0): {hv:.4f}.",
        "",
        *lines,
    ]
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _plot(out / "plots" / "front.png", F, names)
    if progress:
        print("\n".join(md))
    return {"train (ICOS)": problem.train_log["seconds"], "evaluate grid": time.perf_counter() - t}


def _plot(path: Path, F: np.ndarray, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.plot(F[:, 0], F[:, 1], "o-", label="HyperDPO (one model, w grid)")
    ax.set_xlabel(f"{names[0]} (test)")
    ax.set_ylabel(f"{names[1]} (test)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
