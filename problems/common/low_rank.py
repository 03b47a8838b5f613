"""Merges of low-rank adapters that act on the deltas the factors represent.

A factor genome stores, for every adapted matrix t, `lora_B.{t}` (out × k) and `lora_A.{t}` (k × in)
with ΔW_t = B·A (LoRA's α/r scaling folded into B). Crossover must mean the same as the dense-delta
genome's crossover (problems/common/lora_model.py), i.e. the merge of ΔW₁ and ΔW₂, not of the
factors: averaging factors, (B₁+B₂)(A₁+A₂)/4, is not the average of the deltas.

- Linear combinations (linear, task_arithmetic, uniform with one scalar per tensor) are exact as
  *stacked* factors: w₁B₁A₁ + w₂B₂A₂ = [w₁B₁ | w₂B₂]·[A₁; A₂], rank k₁ + k₂. Above `max_rank` the
  product is truncated to its best rank-`max_rank` approximation (Eckart–Young) without ever
  forming the dense matrix (`truncate_factors`).
- Element-wise and non-linear merges (uniform element-wise, TIES, DARE, SLERP, any other crossover)
  are computed on the dense delta of ONE matrix at a time, with exactly the random draws the dense
  genome makes (the same names in the same sorted order, the same seeds), and the result is
  re-factorised by truncated SVD (`factorise`). Their error is the norm of the discarded singular
  values, which `FactorMerge.log` reports per matrix.

Names: the dense genome's tensor `delta.{t}.weight` is this genome's pair; every other tensor (the
classifier head) is merged exactly as the dense genome merges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from evofair.core.individual import Weights
from evofair.core.seeding import torch_seeded

SVD = Literal["exact", "randomized"]
STACKED = ("linear", "task_arithmetic")
PER_MATRIX_MERGEKIT = ("ties", "dare_ties", "dare_linear", "slerp")


def a_key(target: str) -> str:
    return f"lora_A.{target}.weight"


def b_key(target: str) -> str:
    return f"lora_B.{target}.weight"


def dense_key(target: str) -> str:
    """The name the dense genome gives this matrix's delta (merges walk names in its sorted order)."""
    return f"delta.{target}.weight"


def targets_of(weights: Weights) -> list[str]:
    return sorted(k[len("lora_A.") : -len(".weight")] for k in weights if k.startswith("lora_A."))


def delta_of(weights: Weights, target: str) -> torch.Tensor:
    """ΔW = B·A of one matrix (materialised on demand, one matrix at a time)."""
    return weights[b_key(target)] @ weights[a_key(target)]


def to_dense(weights: Weights) -> Weights:
    """The dense-delta genome this factor genome represents (tests, export, small models only)."""
    out = {k: v for k, v in weights.items() if not k.startswith(("lora_A.", "lora_B."))}
    out.update({dense_key(t): delta_of(weights, t) for t in targets_of(weights)})
    return out


def _split_sqrt(U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced factors B = U√S, A = √S·Vh: neither factor carries all the scale, so Gaussian
    noise on the factors perturbs both sides comparably."""
    root = S.sqrt()
    return (U * root).to(dtype).contiguous(), (root[:, None] * Vh).to(dtype).contiguous()


def truncate_factors(B: torch.Tensor, A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-`rank` factors of B·A and the Frobenius norm of what was dropped.

    Written here rather than calling torch.svd_lowrank on B·A: with thin QRs B = Q_b R_b and
    Aᵀ = Q_a R_a, B·A = Q_b (R_b R_aᵀ) Q_aᵀ, so the exact SVD of the k × k core gives the exact
    truncated SVD of the product in O((m + n) k²), never forming the m × n matrix."""
    if B.shape[1] <= rank:
        return B, A, 0.0
    dtype = B.dtype
    Qb, Rb = torch.linalg.qr(B.double())
    Qa, Ra = torch.linalg.qr(A.double().T)
    U, S, Vh = torch.linalg.svd(Rb @ Ra.T)
    tail = float(S[rank:].square().sum().sqrt())
    B2, A2 = _split_sqrt(Qb @ U[:, :rank], S[:rank], Vh[:rank] @ Qa.T, dtype)
    return B2, A2, tail


def factorise(
    delta: torch.Tensor, rank: int, svd: SVD = "exact", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Rank-`rank` factors (B, A) of one dense delta and the norm of the discarded part.

    `exact`: torch.linalg.svd (optimal, Eckart–Young). `randomized`: torch.svd_lowrank with 8
    oversampling columns and 4 power iterations, for matrices too large for a full SVD; its
    error is measured, not assumed."""
    rank = min(rank, *delta.shape)
    d = delta.double()
    if svd == "exact":
        U, S, Vh = torch.linalg.svd(d, full_matrices=False)
        U, S, Vh = U[:, :rank], S[:rank], Vh[:rank]
    else:
        with torch_seeded(seed):
            U, S, V = torch.svd_lowrank(d, q=min(rank + 8, *d.shape), niter=4)
        U, S, Vh = U[:, :rank], S[:rank], V[:, :rank].T
    B, A = _split_sqrt(U, S, Vh, delta.dtype)
    err = float(torch.linalg.matrix_norm(d - (U * S) @ Vh))
    return B, A, err


@dataclass
class FactorMerge:
    """How a factor genome is varied: the rank cap and the SVD used when re-factorising."""

    max_rank: int
    svd: SVD = "exact"
    log: dict[str, Any] = field(default_factory=dict)  # per call: relative error per matrix

    # -- the entry point ---------------------------------------------------------------------
    def crossover(
        self, name: str, fn, parents: Sequence[Weights], args, *, seed: int, base: Weights | None
    ) -> list[Weights]:
        """Both children of crossover `name` (the registered `fn` with parsed `args`)."""
        from evofair.operators.merge import merge_coefficient

        if len(parents) != 2:
            raise ValueError(f"this merge takes 2 parents, got {len(parents)}")
        self.log = {}
        p1, p2 = parents
        if name == "uniform" and args.scalar:
            return self._uniform_scalar(p1, p2, seed)
        if name in STACKED:
            w = merge_coefficient(args.weight, seed)
            return [self._stacked(name, fn, p1, p2, args, seed, base, wa, wb) for wa, wb in ((w, 1 - w), (1 - w, w))]
        if name == "uniform":
            return self._uniform_elementwise(p1, p2, seed)
        if name in PER_MATRIX_MERGEKIT:
            return self._per_matrix_mergekit(name, p1, p2, args, seed, base)
        return self._dense_fallback(fn, p1, p2, args, seed, base)

    # -- exact: stacked factors ----------------------------------------------------------------
    def _cap(self, target: str, B: torch.Tensor, A: torch.Tensor, child: dict, norm: float | None = None) -> None:
        B, A, tail = truncate_factors(B, A, self.max_rank)
        if tail:
            total = float(torch.linalg.matrix_norm(B.double() @ A.double())) if norm is None else norm
            self.log.setdefault(target, []).append(tail / max((total**2 + tail**2) ** 0.5, 1e-30))
        child[b_key(target)], child[a_key(target)] = B, A

    def _heads(self, p: Weights) -> Weights:
        return {k: p[k] for k in sorted(p) if not k.startswith(("lora_A.", "lora_B."))}

    def _stacked(self, name, fn, p1, p2, args, seed, base, wa: float, wb: float) -> Weights:
        """linear / task_arithmetic: the head through the operator itself (weight fixed to wa), the
        deltas as [c₁B₁ | c₂B₂]·[A₁; A₂] with mergekit's coefficients c_i = λ·w_i / (Σw if normalize)."""
        head_args = args.model_copy(update={"weight": wa})
        heads = (
            fn(
                [self._heads(p1), self._heads(p2)],
                head_args,
                seed=seed,
                base=None if base is None else self._heads(base),
            )[0]
            if self._heads(p1)
            else {}
        )
        lam = getattr(args, "lambda_", 1.0)
        norm = (wa + wb) if (args.normalize and abs(wa + wb) >= 1e-8) else 1.0
        c1, c2 = lam * wa / norm, lam * wb / norm
        child = dict(heads)
        for t in targets_of(p1):
            B = torch.cat([c1 * p1[b_key(t)], c2 * p2[b_key(t)]], dim=1)
            A = torch.cat([p1[a_key(t)], p2[a_key(t)]], dim=0)
            self._cap(t, B, A, child)
        return child

    def _uniform_scalar(self, p1: Weights, p2: Weights, seed: int) -> list[Weights]:
        """One c ~ U(0,1) per tensor, drawn in the dense genome's name order (as operators.merge.uniform)."""
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        kids: list[dict] = [{}, {}]
        for name, t in _logical_names(p1):
            a = p1[name] if t is None else p1[b_key(t)]
            if not a.is_floating_point():
                kids[0][name], kids[1][name] = a.clone(), a.clone()
                continue
            c = torch.rand((), generator=gen, dtype=torch.float64).to(a.dtype)
            if t is None:
                kids[0][name], kids[1][name] = c * p1[name] + (1 - c) * p2[name], (1 - c) * p1[name] + c * p2[name]
                continue
            A = torch.cat([p1[a_key(t)], p2[a_key(t)]], dim=0)
            for kid, (ca, cb) in zip(kids, ((c, 1 - c), (1 - c, c))):
                self._cap(t, torch.cat([ca * p1[b_key(t)], cb * p2[b_key(t)]], dim=1), A, kid)
        return kids

    # -- re-factorised: one dense matrix at a time ---------------------------------------------
    def _refactor(self, target: str, merged: torch.Tensor, child: dict, seed: int) -> None:
        B, A, err = factorise(merged, self.max_rank, self.svd, seed)
        child[b_key(target)], child[a_key(target)] = B, A
        self.log.setdefault(target, []).append(err / max(float(torch.linalg.matrix_norm(merged.double())), 1e-30))

    def _uniform_elementwise(self, p1: Weights, p2: Weights, seed: int) -> list[Weights]:
        gen = torch.Generator().manual_seed(seed & 0xFFFFFFFFFFFF)
        kids: list[dict] = [{}, {}]
        for name, t in _logical_names(p1):
            a = p1[name] if t is None else delta_of(p1, t)
            if not a.is_floating_point():
                kids[0][name], kids[1][name] = a.clone(), a.clone()
                continue
            b = p2[name] if t is None else delta_of(p2, t)
            c = torch.rand(a.shape, generator=gen, dtype=torch.float64).to(a.dtype)
            m1, m2 = c * a + (1 - c) * b, (1 - c) * a + c * b
            if t is None:
                kids[0][name], kids[1][name] = m1, m2
            else:
                self._refactor(t, m1, kids[0], seed)
                self._refactor(t, m2, kids[1], seed + 1)
        return kids

    def _per_matrix_mergekit(self, name, p1, p2, args, seed, base) -> list[Weights]:
        """TIES / DARE / SLERP through mergekit, one tensor per call, under the same torch seed as
        operators.merge (so DARE's masks are the dense genome's masks, drawn in its name order)."""
        from mergekit.merge_methods.api import merge_state_dicts

        from evofair.operators.merge import merge_coefficient

        t_or_w = args.t if name == "slerp" else args.weight
        w = merge_coefficient(t_or_w, seed)
        kids = []
        for k, (wa, wb) in enumerate(((w, 1 - w), (1 - w, w))):
            if name == "slerp":
                params, ref = {"t": wa}, "a"
            else:
                params = {
                    "weight": {"a": wa, "b": wb},
                    "lambda": args.lambda_,
                    "normalize": args.normalize,
                    "density": args.density,
                }
                if name != "ties":
                    params["rescale"] = args.rescale
                ref = "base"
            child: dict = {}
            with torch_seeded(seed + k + 1):
                for lname, t in _logical_names(p1):
                    x1 = p1[lname] if t is None else delta_of(p1, t)
                    x2 = p2[lname] if t is None else delta_of(p2, t)
                    models = {"a": {lname: x1}, "b": {lname: x2}}
                    if ref == "base":
                        models["base"] = {lname: base[lname] if t is None else torch.zeros_like(x1)}
                    merged = merge_state_dicts(models, name, parameters=params, base=ref)[lname]
                    if t is None:
                        child[lname] = merged
                    else:
                        self._refactor(t, merged, child, seed + k)
            kids.append(child)
        return kids

    def _dense_fallback(self, fn, p1, p2, args, seed, base) -> list[Weights]:
        """A crossover with no factor form (a third party's): run it on the dense deltas of all
        matrices at once, then re-factorise each. Correct for any merge, but it holds every dense
        delta in memory; register a factor form in `crossover` for large models."""
        dense_base = None if base is None else to_dense(base)
        kids = fn([to_dense(p1), to_dense(p2)], args, seed=seed, base=dense_base)
        out = []
        for k, kid in enumerate(kids):
            child = {n: v for n, v in kid.items() if not n.startswith("delta.")}
            for t in targets_of(p1):
                self._refactor(t, kid[dense_key(t)], child, seed + k)
            out.append(child)
        return out


def _logical_names(weights: Weights) -> list[tuple[str, str | None]]:
    """(dense name, target or None) in the dense genome's sorted name order."""
    names = [(dense_key(t), t) for t in targets_of(weights)]
    names += [(k, None) for k in weights if not k.startswith(("lora_A.", "lora_B."))]
    return sorted(names)
