"""LoRA-genome baselines as LoRA fine-tunes (problems/common/lora_baselines.py): the evolution's
budget, every epoch a candidate, val-non-dominated selection (pymoo's sorting as the oracle), their
points in baselines.csv and the report, and a hand check of the loss (λ = 0 is plain CE)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_hf_export import tiny_lora_recipe

import evofair
from evofair.analysis.uncertainty import hv_difference_interval
from evofair.errors import UserError
from evofair.problems.common.lora_baselines import LORA_METHODS, start_weights
from evofair.problems.fapareto.biasbios import BiasBios, BiasBiosParams
from evofair.store.run_store import RunStore


def _hand_tpr_gap(probs: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    """Soft ΔTPR written out: per class, mean p(class|x) per group; max − min over the groups that
    have the class; mean over the classes present in two groups or more."""
    gaps = []
    for c in np.unique(y):
        tprs = [probs[(y == c) & (g == a), c].mean() for a in np.unique(g) if ((y == c) & (g == a)).any()]
        if len(tprs) >= 2:
            gaps.append(max(tprs) - min(tprs))
    return float(np.mean(gaps)) if gaps else 0.0


def _assert_selected_are_the_val_non_dominated_candidates(base: dict, epochs_per_model: int) -> None:
    """Every epoch of each LoRA fine-tune is a candidate; the selected models are the
    val-non-dominated candidates (a repeated point once), by pymoo's sorting."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    for method in ("lora_vanilla", "lora_scalarisation"):
        mine = [c for c in base["candidates"] if c["method"] == method]
        assert sorted(c["epoch"] for c in mine) == list(range(1, epochs_per_model + 1))
        F = np.array([[c["metrics"]["val"]["error"], c["metrics"]["val"]["dtpr"]] for c in mine])
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        point = lambda c: tuple(c["metrics"][s][n] for s in ("val", "test") for n in ("error", "dtpr"))
        expected = {point(mine[i]) for i in front}
        chosen = [m for m in base["models"] if m["method"] == method]
        assert [point(m) for m in chosen] == sorted(expected, key=[point(m) for m in chosen].index)
        assert len(chosen) == len(expected) > 0


def _assert_hv_difference_unites_the_reported_lora_models(out) -> None:
    """The paired-bootstrap HV difference against the LoRA fine-tunes (fapareto_vs_baselines.py
    --against lora) unites the same selected models the report does."""
    summary = json.loads((out / "summary.json").read_text())
    iv = hv_difference_interval(out, level=0.9, n_boot=40, seed=0, methods=LORA_METHODS)
    assert iv["hv_union"] == pytest.approx(summary["hv_lora_union_test"], abs=1e-15) and iv["hv_union"] > 0
    assert iv["hv_front"] == pytest.approx(summary["hv_front_test"], abs=1e-15) and iv["lo"] <= iv["hi"]
    assert summary["hv_lora_union_test"] != summary["hv_union_ab_test"]  # so `methods` picked the LoRA models
    with pytest.raises(UserError, match="no stored model of nonexistent"):
        hv_difference_interval(out, n_boot=10, methods=("nonexistent",))


def _assert_loss_is_ce_plus_lambda_times_the_soft_gap(problem) -> None:
    """The loss by hand: no weight or λ = 0 is cross-entropy exactly; λ = 2 adds 2 × the soft TPR gap."""
    batch = next(iter(problem.train_batches(0, 10)))
    y, g = batch["y"].numpy(), batch["g"].numpy()
    for lam in (None, 0.0, 2.0):
        model = problem.build_model(start_weights(problem, 7, lam)).eval()
        loss = float(problem.loss(model, batch).detach())
        with torch.no_grad():
            logits = model(batch.get("input_ids"), batch["attention_mask"], hidden=batch.get("hidden")).double()
        probs = torch.softmax(logits, -1).numpy()
        ce = float(-np.log(probs[np.arange(len(y)), y]).mean())
        if lam is None or lam == 0.0:
            assert loss == float(torch.nn.functional.cross_entropy(logits.float(), batch["y"]))
            assert abs(loss - ce) < 1e-6
        else:
            assert abs(loss - (ce + lam * _hand_tpr_gap(probs, y, g))) < 1e-5
            assert _hand_tpr_gap(probs, y, g) > 0


def test_lora_baselines_are_fine_tunes_with_the_evolution_budget(tmp_path):
    recipe = tiny_lora_recipe(tmp_path, "dense")
    recipe["problem"]["args"]["baselines"] = {
        "vanilla": 1,
        "lambdas": [1.0],
        "epochs": 1,
        "threshold": [],
        "lora": {"vanilla": 1, "lambdas": [2.0]},
    }
    recipe["hv_ref"] = [1.01, 1.01]  # 10 test bios of a random tiny BERT: keep every model inside the box
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    base = json.loads((out / "baselines.json").read_text())
    rec = base["budget"]["lora"]
    store = RunStore(out, readonly=True)
    # the evolution's local learning, recounted: every refine ran `steps` batches of 5 bios
    used = sum(
        ind.operator["log"]["refine"]["steps"] * 5
        for ind in store.individuals()
        if (ind.operator.get("log") or {}).get("refine")
    )
    n_train = 10
    assert used > 0 and rec["epochs_per_model"] == math.ceil(used / n_train)  # one fine-tune per method
    assert rec["examples_per_method"] == rec["epochs_per_model"] * n_train >= used
    assert (rec["rank"], rec["alpha"], rec["lr"], rec["batch_size"], rec["optimizer"]) == (2, 4, 1e-3, 5, "adamw")
    _assert_selected_are_the_val_non_dominated_candidates(base, rec["epochs_per_model"])
    csv = (out / "baselines.csv").read_text().splitlines()
    assert {"lora_vanilla", "lora_scalarisation"} <= {line.split(",")[0] for line in csv[1:]}
    report = (out / "report.md").read_text()
    for needle in (
        "| LoRA CE |",
        "| LoRA CE+λ·gap |",
        "| union of LoRA CE and LoRA CE+λ·gap (fine-tunes) |",
        "Evolved front vs union of the LoRA fine-tunes",
    ):
        assert needle in report, needle
    _assert_hv_difference_unites_the_reported_lora_models(out)

    # a selected LoRA baseline is a fine-tuned encoder + head whose stored metrics are its own
    problem = BiasBios(BiasBiosParams(**recipe["problem"]["args"])).ensure_setup()
    m = next(m for m in base["models"] if m["method"] == "lora_scalarisation")
    w = store.get_weights(m["weights_hash"])
    store.close()
    assert float(w["delta.encoder.layer.1.attention.self.query.weight"].abs().max()) > 0
    again = problem.evaluate([w], "test")
    assert again["error"][0] == m["metrics"]["test"]["error"] and again["dtpr"][0] == m["metrics"]["test"]["dtpr"]

    _assert_loss_is_ce_plus_lambda_times_the_soft_gap(problem)


def test_fair_classification_lora_baselines_and_export(tmp_path):
    """`fair_classification` with `model.kind: lora`: the same LoRA baselines next to fairlearn's,
    their predictions stored, and the export reloaded with transformers only (the README snippet)."""
    import re

    from test_hf_export import REPO

    from evofair.cli import main
    from evofair.lifecycle.recipe import load_recipe
    from evofair.problems.fairclass.baselines import read_predictions

    tiny = tiny_lora_recipe(tmp_path, "factors")
    args = tiny["problem"]["args"]
    recipe = load_recipe(REPO / "runs" / "biasbios_fair_classification.yaml").model_dump(mode="json", by_alias=True)
    recipe["base_dir"] = None
    recipe["problem"]["args"].update(
        {
            "data": {"path": args["data_file"]},
            "encoder": args["model_dir"],
            "model": {"kind": "lora", "hidden": []},
            "embedding": {"max_length": 32, "cache_dir": args["cache_dir"]},
            "lora": args["lora"],
            "torch_threads": None,
            "baselines": {
                "vanilla": 1,
                "lambdas": [1.0],
                "epochs": 1,
                "threshold": [],
                "expgrad": False,
                "grid_size": 2,
                "reductions": ["demographic_parity"],
                "n_jobs": 1,
                "lora": {"vanilla": 1, "lambdas": [2.0], "epochs": 2},
            },
        }
    )
    for key in ("algorithm", "operators"):
        recipe[key] = tiny[key]
    out = tmp_path / "run"
    res = evofair.run(recipe, out, progress=False)
    base = json.loads((out / "baselines.json").read_text())
    assert base["budget"]["lora"]["epochs_per_model"] == 2
    chosen = [m for m in base["models"] if m["method"].startswith("lora_")]
    assert {m["method"] for m in chosen} == {"lora_vanilla", "lora_scalarisation"}
    preds = read_predictions(out)
    store = RunStore(out, readonly=True)
    from evofair.problems.fairclass.params import parse_params
    from evofair.problems.fairclass.problem import FairClassification

    problem = FairClassification(parse_params(recipe["problem"]["args"])).ensure_setup()
    for m in chosen:  # stored predictions are the LoRA model's, not a head's on frozen features
        P = problem.predictions([store.get_weights(m["weights_hash"])], "test")[0]
        np.testing.assert_array_equal(preds[m["id"]]["test"], P)
    report = (out / "report.md").read_text()
    for needle in ("| LoRA CE |", "| LoRA CE+λ·gap |", "union of the LoRA fine-tunes", "LoRA baselines: 1 CE"):
        assert needle in report, needle

    ind = res.front[0]
    stored = problem.predictions([store.get_weights(ind.weights_hash)], "test")[0]
    store.close()
    assert main(["export", str(out), ind.id, "--to", str(tmp_path / "exp")]) == 0
    readme = (tmp_path / "exp" / "README.md").read_text()
    env = {"texts": problem.raw["test"]["text"]}
    exec(re.search(r"```python\n(.*?)```", readme, re.S).group(1).replace('"./', f'"{tmp_path / "exp"}/'), env)  # noqa: S102
    cfg = json.loads((tmp_path / "exp" / "head_config.json").read_text())
    np.testing.assert_array_equal([cfg["classes"].index(c) for c in env["labels"]], stored)
    assert cfg["classes"] == list(problem.class_names)
