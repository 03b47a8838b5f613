"""`merge`: the Pareto front of merges of fixed anchors, judged by another problem's objectives.

The recipe names an *inner* weights problem (BiasBios, a table, the toy, your own) and the anchors:
checkpoints you already have, or ones the inner problem trains along its trade-off from one shared
initialisation. An individual is a merge recipe (`genome.MergeRecipeGenome`); evaluating it merges
the anchors with mergekit and hands the merged weights to the inner problem's batched `evaluate`,
so a generation costs merges and forward passes, no training. The inner problem is built by name
through the plugin registry, so this family imports no other family.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from mergekit.merge_methods.api import merge_state_dicts
from pydantic import Field, model_validator

from evofair.analysis.run_reader import final_front
from evofair.core.individual import Weights
from evofair.core.plugins import registry
from evofair.core.problem import FrontSections, PerExampleOutputs, VectorProblem
from evofair.core.registry import Args, component
from evofair.core.seeding import torch_seeded
from evofair.errors import UserError
from evofair.problems.merging.anchors import TrainedAnchors, choose_lambdas, train_anchors
from evofair.problems.merging.blocks import tensors_by_block
from evofair.problems.merging.checkpoints import CheckpointSpec, load_anchors, load_checkpoint
from evofair.problems.merging.cross_fit import CrossFittedAnchors
from evofair.problems.merging.genome import MergeRecipeGenome
from evofair.problems.merging.hybrid import HybridCfg, hybrid_stages
from evofair.problems.merging.thresholds import PER_GROUP_NOTE, ThresholdGenes, ThresholdMode
from evofair.tracking.progress import progress_bar

DENSITY_METHODS = ("ties", "dare_linear", "dare_ties")
BASE_METHODS = ("task_arithmetic", *DENSITY_METHODS)


class InnerProblem(Args):
    """The problem whose `evaluate` judges merged weights (any weights problem, by recipe name)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class MergeParams(Args):
    inner: InnerProblem
    anchors: list[CheckpointSpec] = Field(default_factory=list, description="your checkpoints (at least 2)")
    train_anchors: TrainedAnchors | None = Field(None, description="or anchors the inner problem trains")
    base: CheckpointSpec | None = Field(
        None, description="the origin of task-arithmetic deltas (default: the inner problem's base_weights)"
    )
    method: Literal["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"] = "linear"
    blocks: list[str] = Field(
        default_factory=list,
        description="tensor-name prefixes: one coefficient per anchor for each block (blocks.py); "
        "empty: one per anchor for every tensor",
    )
    scale_max: float = Field(1.0, gt=0, le=10, description="upper bound of each anchor's coefficient")
    density_min: float = Field(0.1, gt=0, le=1, description="lower bound of the density gene (TIES/DARE)")
    selection: Literal["validate", "cross_fit"] = Field(
        "validate",
        description="cross_fit: score recipes on out-of-fold predictions over train ∪ validate "
        "(with train_anchors; cross_fit.py)",
    )
    folds: int = Field(3, ge=2, le=10, description="folds of cross_fit selection")
    threshold: ThresholdMode = Field(
        "off", description="evolve a decision threshold too: global, or per_group (reads the sensitive attribute)"
    )
    threshold_span: float = Field(2.0, gt=0, le=50, description="threshold genes shift the logit margin in ±span")
    hybrid: HybridCfg = Field(
        default_factory=HybridCfg,
        description="rounds of fine-tuning the front's best merges into anchors and searching again (hybrid.py)",
        exclude_if=lambda value: value == HybridCfg(),  # a Python object's config.yaml stays as before
    )

    @model_validator(mode="after")
    def _one_source_of_anchors(self):
        if bool(self.anchors) == (self.train_anchors is not None):
            raise ValueError("give either anchors (your checkpoints) or train_anchors, not both or neither")
        if self.hybrid.rounds and self.train_anchors is None:
            raise ValueError("hybrid.rounds: fine-tunes front merges into train_anchors.refined: give train_anchors")
        if self.selection == "cross_fit" and self.train_anchors is None:
            raise ValueError("selection: cross_fit trains its anchors per fold: give train_anchors")
        if self.blocks and (self.hybrid.rounds or (self.train_anchors and self.train_anchors.refined)):
            raise ValueError("blocks: the hybrid schedule refines whole-model recipes; drop blocks or hybrid")
        if self.anchors and len(self.anchors) < 2:
            raise ValueError(f"anchors: expected at least 2 checkpoints, got {len(self.anchors)}")
        if self.train_anchors is not None:
            before = self.train_anchors.n_trained
            for j, r in enumerate(self.train_anchors.refined):
                n = len(r.recipe) - int(self.method in DENSITY_METHODS)
                if not 2 <= n <= before + j:
                    raise ValueError(
                        f"train_anchors.refined[{j}].recipe: expected 2 to {before + j} coefficients over the "
                        f"anchors before it{' plus a density' if self.method in DENSITY_METHODS else ''}, got {n}"
                    )
        return self

    @property
    def n_anchors(self) -> int:
        return len(self.anchors) if self.anchors else self.train_anchors.n_anchors  # type: ignore[union-attr]

    @property
    def n_coefficients(self) -> int:
        """Mixing coefficients in a recipe: one per anchor, for each block."""
        return self.n_anchors * max(1, len(self.blocks))


@component("problem", "merge", MergeParams)
class MergeFront(VectorProblem):
    """Merges of fixed anchor checkpoints, judged by another problem's objectives (no training)."""

    name = "merge"
    Params = MergeParams
    genome = MergeRecipeGenome()

    def __init__(self, params: MergeParams | None = None, *, data_root: str | None = None):
        super().__init__(params, data_root=data_root)
        p: MergeParams = self.params  # type: ignore[assignment]
        spec = registry("problem").get(p.inner.name, "problem.args.inner.name")
        self.inner = spec.fn(spec.parse_args(p.inner.args, "problem.args.inner.args"), data_root=data_root)
        if not callable(getattr(self.inner, "init_weights", None)):
            raise UserError(f"problem.args.inner.name: {p.inner.name!r} is not a weights problem (nothing to merge)")
        self.objectives = self.inner.objectives
        self.default_hv_ref = self.inner.default_hv_ref
        density = p.method in DENSITY_METHODS
        self.n_var = p.n_coefficients + int(density)
        self.xl = np.array([0.0] * p.n_coefficients + [p.density_min] * density)
        self.xu = np.array([p.scale_max] * p.n_coefficients + [1.0] * density)
        self.base_dir: str | None = None  # the recipe's folder: relative checkpoint paths start there
        self.anchors: list[Weights] = []
        self.base: Weights | None = None
        self.training_examples = 0
        self.anchor_lambdas: list[float] = []  # the trained anchors' fairness weights (train_anchors)
        self.cross_fit: CrossFittedAnchors | None = None
        self.thresholds: ThresholdGenes | None = None
        self.n_recipe = self.n_var  # the merge part of x; threshold genes follow it
        self.block_tensors: list[list[str]] = []  # each block's tensor names (blocks.py), with blocks
        if isinstance(self.inner, PerExampleOutputs):  # intervals and near-constant flags, as the inner's
            self.example_outputs = self._example_outputs

    @classmethod
    def stages(cls, params: MergeParams, recipe: dict[str, Any]):
        """The hybrid schedule's rounds when `hybrid.rounds` > 0 (evofair/lifecycle/stages.py runs them)."""
        return hybrid_stages(params, recipe)

    # -- setup: the inner problem, its anchors and the base ------------------------------------
    def check_inputs(self) -> None:
        self.inner.check_inputs()

    def setup(self) -> None:
        self._set_up_inner()
        p: MergeParams = self.params  # type: ignore[assignment]
        inner_base = self.inner.base_weights() if callable(getattr(self.inner, "base_weights", None)) else None
        self.base = load_checkpoint(p.base, self.base_dir, base=inner_base) if p.base else inner_base
        if p.method in BASE_METHODS and self.base is None:
            raise UserError(f"problem.args.method: {p.method!r} merges deltas from a base; give problem.args.base")
        if p.train_anchors is not None:
            self._set_up_trained_anchors(p, p.train_anchors)
        else:
            self.anchors = load_anchors(p.anchors, self.base_dir, base=self.base)
        if p.threshold != "off":
            self.thresholds = ThresholdGenes(p.threshold, self.inner)
            n = self.thresholds.n_genes
            self.n_var = self.n_recipe + n
            self.xl = np.concatenate([self.xl[: self.n_recipe], [-p.threshold_span] * n])
            self.xu = np.concatenate([self.xu[: self.n_recipe], [p.threshold_span] * n])
        self._check_layout()
        if p.blocks:
            self.block_tensors = tensors_by_block(self.anchors[0], p.blocks)

    def _set_up_trained_anchors(self, p: MergeParams, cfg: TrainedAnchors) -> None:
        """Where on the trade-off the anchors sit (chosen once, for every fold), then the anchors: per
        fold and on the whole pool under cross_fit, else once. Each fit ticks a progress bar, since
        an Adult-sized table takes tens of seconds before the first generation."""
        self.anchor_lambdas, self.training_examples = choose_lambdas(self.inner, cfg)
        fits = p.folds + 1 if p.selection == "cross_fit" else 1
        bar = progress_bar(fits, f"training {cfg.n_anchors} merge anchors", unit="fit", heartbeat=True)
        try:
            if p.selection == "cross_fit":
                self.cross_fit = CrossFittedAnchors(
                    self.inner, lambda view: self._train_anchors(view, cfg, bar), p.folds, cfg.seed
                )
                self.anchors = self.cross_fit.anchors
                self.training_examples += self.cross_fit.examples
            else:
                self.anchors, examples = self._train_anchors(self.inner, cfg, bar)
                self.training_examples += examples
        finally:
            bar.close()

    def _check_layout(self) -> None:
        """Anchors must hold the tensors the inner problem's genome holds (same names and shapes)."""
        expected = self.inner.init_weights(0)
        got = self.anchors[0]
        if set(got) != set(expected) or any(got[k].shape != expected[k].shape for k in expected):
            missing = (
                sorted(set(expected) ^ set(got))[:3] or [k for k in expected if got[k].shape != expected[k].shape][:3]
            )
            raise UserError(
                f"problem.args.anchors: the anchors' tensors do not match {self.params.inner.name!r}'s genome "  # type: ignore[attr-defined]
                f"(first differences: {', '.join(missing)})"
            )

    def _anchor_weights_label(self) -> str:
        """What the anchors' numbers are: gap bounds under the ε-constraint, weights otherwise."""
        cfg = self.params.train_anchors  # type: ignore[attr-defined]
        return "anchor gap bounds (ε)" if cfg.scalarisation == "epsilon" else "anchor fairness weights"

    def describe(self) -> dict[str, Any]:
        p: MergeParams = self.params  # type: ignore[assignment]
        source = "trained by the inner problem" if p.train_anchors else "the recipe's checkpoints"
        flag = {"decision thresholds": PER_GROUP_NOTE} if p.threshold == "per_group" else {}
        return {
            **flag,
            "inner problem": p.inner.name,
            "anchors": f"{p.n_anchors} ({source})",
            **(
                {self._anchor_weights_label(): ", ".join(f"{v:g}" for v in self.anchor_lambdas)}
                if self.anchor_lambdas
                else {}
            ),
            "merge method": p.method,
            **({"coefficient blocks": ", ".join(p.blocks)} if p.blocks else {}),
            "anchor training examples": self.training_examples,
            **{f"inner: {k}": v for k, v in self.inner.describe().items()},
        }

    @property
    def metric_names(self):
        return self.inner.metric_names

    # -- a recipe's weights, and their evaluation ----------------------------------------------
    def weights_of(self, x: Sequence[float]) -> Weights:
        """The merged weights recipe `x` stands for: the same x gives the same tensors, always."""
        return self.merge(self.anchors, x)

    def merge(self, anchors: list[Weights], x: Sequence[float]) -> Weights:
        """Recipe `x` applied to `anchors` (the run's, or one fold's under cross-fitted selection)."""
        p: MergeParams = self.params  # type: ignore[assignment]
        x = np.asarray(x, dtype=float)[: self.n_recipe]  # threshold genes do not change the weights
        if not p.blocks:
            return self._merged(anchors, x, p.n_anchors)
        K, B = p.n_anchors, len(p.blocks)
        merged: Weights = {}
        for b, names in enumerate(self.block_tensors):  # block b's K coefficients, then the shared density
            part = [{name: a[name] for name in names} for a in anchors[:K]]
            merged.update(self._merged(part, np.concatenate([x[b * K : (b + 1) * K], x[B * K :]]), K, names))
        return merged

    def _merged(self, anchors: list[Weights], x: np.ndarray, n: int, names: list[str] | None = None) -> Weights:
        """The first `n` coordinates of `x` mix `anchors[:n]`; a density gene, if any, follows them.
        `names`: the anchors hold only these tensors (one block), and so does the base used."""
        p: MergeParams = self.params  # type: ignore[assignment]
        anchors = anchors[:n]
        coeffs = [float(c) for c in x[:n]]
        if p.method == "linear" and sum(coeffs) <= 1e-12:
            coeffs = [1.0] * n  # an all-zero recipe has no normalised weights: the plain average
        models = {f"a{k}": dict(sorted(a.items())) for k, a in enumerate(anchors)}
        params: dict[str, Any] = {"weight": {f"a{k}": c for k, c in enumerate(coeffs)}}
        if p.method == "linear":
            return merge_state_dicts(models, "linear", parameters={**params, "normalize": True})
        assert self.base is not None
        base = self.base if names is None else {name: self.base[name] for name in names}
        params.update({"lambda": 1.0, "normalize": False})
        if p.method in DENSITY_METHODS:
            params["density"] = float(x[n])
        # DARE draws its drop masks from torch's global RNG: a seed from the recipe itself keeps x → weights fixed
        with torch_seeded(_recipe_seed(x)):
            merged = merge_state_dicts(
                {**models, "base": dict(sorted(base.items()))}, p.method, parameters=params, base="base"
            )
        return merged

    def predictions(self, anchors: list[Weights], recipes: Sequence[np.ndarray], split: str) -> np.ndarray:
        """Predicted classes (n_recipes, n) of the recipes merged from `anchors` on `split`."""
        heads = [self.merge(anchors, x) for x in recipes]
        if self.thresholds is None:
            return self.inner.predictions(heads, split)
        genes = np.array([np.asarray(x, dtype=float)[self.n_recipe :] for x in recipes])
        return self.thresholds.predictions(heads, genes, split)

    def evaluate(self, genomes, split):
        if split == "val" and self.cross_fit is not None:  # selection sees out-of-fold scores only
            return self.cross_fit.oof_metrics(self.predictions, genomes)
        if self.thresholds is None:
            return self.inner.evaluate([self.weights_of(x) for x in genomes], split)
        return self.inner.metrics_of_predictions(self.predictions(self.anchors, genomes, split), split)

    def _train_anchors(self, view, cfg: TrainedAnchors, bar) -> tuple[list[Weights], int]:
        """The anchors trained on `view`'s train split (the run's, or one fold's), refined ones included."""
        density = self.params.method in DENSITY_METHODS  # type: ignore[attr-defined]
        trained = train_anchors(view, cfg, self.anchor_lambdas, self._merged, density)
        bar.update()
        return trained

    def report_sections(self, store, out, recipe) -> dict[str, Any]:
        """report.md's account of what was merged (the report's `report_sections` hook): the anchors,
        their fairness weights or gap bounds, the method and the training the anchors cost, led by
        the per-group threshold flag when the models read the sensitive attribute; then what the
        inner problem says of the front (`FrontSections`: a table's accurate end)."""
        facts = "\n".join(f"- {name}: {value}" for name, value in self.describe().items())
        sections = {"Merge recipes": facts}
        if isinstance(self.inner, FrontSections):
            sections.update(self._inner_front_sections(store, recipe))
        return {"markdown": sections}

    def _inner_front_sections(self, store, recipe) -> dict[str, str]:
        """The inner problem's sections about the report's front, from the merged models' predictions."""
        front = final_front(store, self, recipe.parsed_constraints)
        if not front:
            return {}
        self.ensure_setup()
        P = self.predictions(self.anchors, [np.asarray(i.x, dtype=float) for i in front], "test")
        ref = recipe.hv_ref or self.inner.default_hv_ref or [1.0] * len(self.objectives)
        sections = self.inner.front_sections([i.metrics for i in front], P, ref)  # type: ignore[attr-defined]
        if self.cross_fit is not None:
            note = "Note: under `selection: cross_fit` the front's validate errors are out-of-fold scores over train ∪ validate."
            sections = {title: f"{text}\n\n{note}" for title, text in sections.items()}
        return sections

    def _example_outputs(self, genomes: Sequence[np.ndarray], split) -> dict[str, Any]:
        """The inner problem's per-example outputs with the merged models' predicted labels (their
        threshold genes applied): bootstrap intervals and near-constant flags for a merge front."""
        self.ensure_setup()
        out = self.inner.example_outputs([], split)  # type: ignore[attr-defined]
        if len(genomes):
            out["y_pred"] = self.predictions(self.anchors, list(genomes), split)
        return out

    def model_card(self, individual, store) -> dict[str, Any]:
        """The evolved decision thresholds of one model, flagged when they read the sensitive attribute."""
        if self.params.threshold == "off" or individual.x is None:  # type: ignore[attr-defined]
            return {}
        genes = self.thresholds or self._threshold_genes()
        rows = genes.card_rows(list(individual.x)[self.n_recipe :])
        title = "Decision thresholds (" + (PER_GROUP_NOTE if genes.mode == "per_group" else "global") + ")"
        return {title: rows}

    def _threshold_genes(self) -> ThresholdGenes:
        """The threshold genes' layout for a problem that is not set up (the explorer and export build
        it from config.yaml): the groups come from the inner problem's data; no anchor is trained."""
        self._set_up_inner()
        return ThresholdGenes(self.params.threshold, self.inner)  # type: ignore[attr-defined]

    def _set_up_inner(self) -> None:
        """The inner problem's data, read relative to this recipe's folder."""
        if hasattr(self.inner, "base_dir"):
            self.inner.base_dir = self.base_dir
        self.inner.ensure_setup()


def _recipe_seed(x: np.ndarray) -> int:
    """A seed that is a function of the whole recipe vector (its exact float64 bytes)."""
    return int.from_bytes(hashlib.sha256(np.asarray(x, dtype=np.float64).tobytes()).digest()[:4], "little")


def _trained_part(head: Weights) -> Weights:
    return {k: v for k, v in head.items() if k.startswith("layers.")}
