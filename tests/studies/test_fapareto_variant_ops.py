"""The variant components of studies/fapareto_vs_baselines/fapareto_variant_ops.py that its results rest on,
checked against independent computations: the scheduled refiner with a constant lr and no
averaging IS the shipped `sft` (same weights, bit for bit); its SWA tail is the plain mean of
the iterates it passed through; linear decay ends at lr 0. The validate-side metric variants are
checked on a synthetic problem against fairness_metrics on hand-sliced predictions."""

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "studies" / "fapareto_vs_baselines"))
sys.path.insert(0, str(ROOT / "tests" / "problems" / "common"))

import fapareto_variant_ops as ops  # noqa: E402
from test_classification import Synthetic  # noqa: E402

from evofair.analysis.metrics import fairness_metrics  # noqa: E402
from evofair.operators.refine import SFTArgs, sft  # noqa: E402
from evofair.problems.common.classification import HeadArgs  # noqa: E402


def _problem():
    return Synthetic(HeadArgs(hidden=[8], init_noise=1.0, local_loss="ce+tpr_gap")).ensure_setup()


def test_constant_schedule_without_averaging_is_sft():
    problem = _problem()
    w = problem.init_weights(3)
    common = dict(epochs=2, optimizer="adamw", lr=1e-3, batch_size=32)
    mine = ops.sft_scheduled(w, ops.ScheduledSFTArgs(**common, schedule="constant"), seed=11, problem=problem)
    ref = sft(w, SFTArgs(**common), seed=11, problem=problem)
    assert mine.log["steps"] == ref.log["steps"] == ops._n_steps(problem, SFTArgs(**common)) == 16
    for k in ref.weights:
        assert torch.equal(mine.weights[k], ref.weights[k]), k


def test_swa_tail_is_the_mean_of_the_iterates_and_linear_decay_ends_at_zero(monkeypatch):
    problem = _problem()
    w = problem.init_weights(4)
    seen, lrs = [], []
    real_step = ops.train_step

    def spy(problem_, model, opt, batch, clip):
        out = real_step(problem_, model, opt, batch, clip)
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        lrs.append(opt.param_groups[0]["lr"])
        return out

    monkeypatch.setattr(ops, "train_step", spy)
    args = ops.ScheduledSFTArgs(
        epochs=1, optimizer="adamw", lr=1e-3, batch_size=32, schedule="linear", average_tail=0.5
    )
    out = ops.sft_scheduled(w, args, seed=5, problem=problem)
    total = len(seen)
    assert total == 8 and lrs[0] == 1e-3 and abs(lrs[-1] - 1e-3 / total) < 1e-15  # the step before the last sched.step
    tail = seen[total // 2 :]
    for k in out.weights:
        expect = torch.stack([s[k] for s in tail]).mean(0)
        assert torch.allclose(out.weights[k], expect, atol=1e-7), k


def test_pooled_and_max_train_metrics_match_hand_slices():
    base = _problem()
    tr, va = base.splits["train"], base.splits["val"]

    class Pooled(ops.BiasBiosPooledMetrics):  # the variant's metrics on the synthetic splits, train pooled into val
        name = "synthetic-pooled"
        class_names = ("a", "b")
        pos_label = None

        def load_splits(self):
            s = dict(base.splits)
            s["val"] = ops.SplitData(
                torch.cat([tr.X, va.X]), np.concatenate([tr.y, va.y]), np.concatenate([tr.g, va.g])
            )
            self._n_train = len(tr)
            return s

        def check_inputs(self):
            pass

    genomes = [base.init_weights(s) for s in range(5)]
    own = fairness_metrics(base.predictions(genomes, "val"), va.y, va.g, classes=np.arange(2))
    train = fairness_metrics(base.predictions(genomes, "train"), tr.y, tr.g, classes=np.arange(2))
    pooled_rows = np.concatenate([base.predictions(genomes, "train"), base.predictions(genomes, "val")], 1)
    pooled = fairness_metrics(
        pooled_rows, np.concatenate([tr.y, va.y]), np.concatenate([tr.g, va.g]), classes=np.arange(2)
    )
    for combine, expect_dtpr in (("pooled", pooled["dtpr"]), ("max", np.maximum(own["dtpr"], train["dtpr"]))):
        p = Pooled(ops.PooledDtprParams(hidden=[8], init_noise=1.0, combine=combine)).ensure_setup()
        got = p.evaluate(genomes, "val")
        np.testing.assert_allclose(got["dtpr"], expect_dtpr, atol=1e-15)
        np.testing.assert_allclose(got["error"], own["error"], atol=1e-15)  # error: validate alone


def test_soft_val_dtpr_is_the_gap_of_mean_true_class_probabilities():
    base = _problem()

    class Soft(ops.BiasBiosSoftVal):  # the variant's metrics on the synthetic splits
        name = "synthetic-soft"
        class_names = ("a", "b")
        pos_label = None

        def load_splits(self):
            return dict(base.splits)

        def check_inputs(self):
            pass

    p = Soft(ops.BiasBiosParams(hidden=[8], init_noise=1.0)).ensure_setup()
    genomes = [base.init_weights(s) for s in range(4)]
    got = p.evaluate(genomes, "val")
    probs, v = base.scores(genomes, "val"), base.splits["val"]
    hand = np.mean(
        [
            np.abs(probs[:, (v.y == c) & (v.g == "F"), c].mean(1) - probs[:, (v.y == c) & (v.g == "M"), c].mean(1))
            for c in (0, 1)
        ],
        axis=0,
    )
    np.testing.assert_allclose(got["dtpr"], hand, atol=1e-12)
    plain = base.evaluate(genomes, "val")
    np.testing.assert_array_equal(got["error"], plain["error"])
    assert not np.allclose(got["dtpr"], plain["dtpr"])
    np.testing.assert_array_equal(p.evaluate(genomes, "test")["dtpr"], base.evaluate(genomes, "test")["dtpr"])
