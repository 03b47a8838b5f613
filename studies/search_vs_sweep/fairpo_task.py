"""The FairPO yeast task: merges of FairPO-trained heads against FairPO's own table of methods.

Multi-label heads have no λ to sweep; FairPO's baselines are its table (BCE-SFT, re-weighting, group
DRO, six FairPO variants, four ablations), each trained alone from the same initialisation with the
family's own checkpoint rule (best validate mAP_P). The pipeline trains a few of those methods as
anchors (same initialisation, so they merge within one basin), saves them as safetensors files and
runs `merge` over them as a user would over their own checkpoints: task arithmetic from the shared
initialisation, recipes scored on validate. Budgets are training steps (every method uses the same
batch size); the BCE-SFT reference both sides train against (one per seed) is counted on neither.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import yaml
from safetensors.torch import save_file
from tasks import result_row

from evofair.api import run as evofair_run
from evofair.core.indicators import hypervolume
from evofair.core.plugins import registry
from evofair.core.torch_utils import torch_threads
from evofair.problems.fairpo.metrics import population_metrics

ROOT = Path(__file__).resolve().parents[2]
REF = (0.93, 0.61)  # the constant predictor's (1 − mAP_P, 1 − mAP_N) on test is (0.925, 0.605)
ANCHOR_METHODS = ("sft", "groupdro", "dpo_stable", "simpo_stable")


def yeast_problem():
    args = yaml.safe_load((ROOT / "runs" / "fairpo_memetic_yeast.yaml").read_text())["problem"]["args"]
    spec = registry("problem").get("multilabel")
    return spec.fn(spec.parse_args(args, "problem.args")).ensure_setup(), args


def train_methods(problem, keys, seed: int, epochs: int):
    """Each method trained alone (the table's rule); its selected heads and the steps they took."""
    from evofair.problems.fairpo.mulan import privileged_labels
    from evofair.problems.fairpo.train import METHODS, train_selected

    alt = privileged_labels(problem.y["train"], problem.label_names, fraction=0.5)
    heads, steps = [], 0
    with torch_threads(1):
        reference = problem.reference_weights()
        for key in keys:
            m = METHODS[key]
            res = train_selected(
                problem,
                m.config,
                seed=seed,
                epochs=epochs,
                reference=reference,
                privileged=alt if m.alt_partition else None,
            )
            heads.append(res.weights)
            steps += res.steps
    return heads, steps


def points(problem, probs: np.ndarray, split: str, idx: np.ndarray | None = None) -> np.ndarray:
    """(G, 2) of (1 − mAP_P, 1 − mAP_N); `idx` resamples the split's examples."""
    y = problem.y[split] if idx is None else problem.y[split][idx]
    probs = probs if idx is None else probs[:, idx]
    groups = {"_P": problem.priv, "_N": problem.nonpriv}
    m = population_metrics(probs, y, groups)
    return np.column_stack([1 - m["map_P"], 1 - m["map_N"]])


def selected_test_probs(problem, heads, nondominated) -> np.ndarray:
    val = points(problem, problem.probabilities(heads, "val"), "val")
    keep = nondominated(val)
    return problem.probabilities([heads[i] for i in keep], "test")


def pipeline(problem, args_inner, seed: int, args, folder: Path):
    """The anchors trained, saved and merged; test probabilities of the validate-selected front."""
    anchors, steps = train_methods(problem, ANCHOR_METHODS, seed, args.fairpo_epochs)
    names = []
    for key, head in zip(ANCHOR_METHODS, anchors):
        save_file({k: v.contiguous() for k, v in head.items()}, str(folder / f"{key}.safetensors"))
        names.append({"path": str(folder / f"{key}.safetensors")})
    save_file({k: v.contiguous() for k, v in problem.random_head(seed).items()}, str(folder / "init.safetensors"))
    recipe = {
        "name": f"merge-fairpo-yeast-seed{seed}",
        "seed": seed,
        "problem": {
            "name": "merge",
            "args": {
                "inner": {"name": "multilabel", "args": copy.deepcopy(args_inner)},
                "anchors": names,
                "base": {"path": str(folder / "init.safetensors")},
                "method": "task_arithmetic",
                "scale_max": args.scale_max,
            },
        },
        "algorithm": {"pop_size": args.pop, "generations": args.gens},
        "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
        "hv_ref": list(REF),
    }
    result = evofair_run(recipe, folder / "run", progress=False)
    heads = [result.problem.weights_of(result.x(i)) for i in result.ids]
    evaluations = int(result.history["evaluations"].iloc[-1])
    return problem.probabilities(heads, "test"), steps, evaluations


def one_seed_fairpo(seed: int, args, nondominated, n_boot: int) -> dict:
    from evofair.problems.fairpo.train import METHODS

    problem, inner_args = yeast_problem()
    with tempfile.TemporaryDirectory() as tmp:
        front, steps, evaluations = pipeline(problem, inner_args, seed, args, Path(tmp))
    keys = list(METHODS)
    steps_per_epoch = -(-len(problem.y["train"]) // METHODS["sft"].config.batch_size)
    equal_epochs = max(1, round(steps / (len(keys) * steps_per_epoch)))
    equal_heads, equal_steps = train_methods(problem, keys, seed, equal_epochs)
    double_heads, double_steps = train_methods(problem, keys, seed, 2 * equal_epochs)
    equal = selected_test_probs(problem, equal_heads, nondominated)
    double = selected_test_probs(problem, double_heads, nondominated)
    hv_p, hv_e, hv_d = (hypervolume(points(problem, P, "test"), REF) for P in (front, equal, double))
    rng, n, diffs = np.random.default_rng(seed), front.shape[1], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        diffs.append(
            hypervolume(points(problem, front, "test", idx), REF)
            - hypervolume(points(problem, equal, "test", idx), REF)
        )
    lo, hi = float(np.percentile(diffs, 5)), float(np.percentile(diffs, 95))
    return {
        **result_row("fairpo_yeast", seed, hv_p, hv_e, hv_d, lo, hi),
        "budget_pipeline": steps,
        "budget_sweep_equal": equal_steps,
        "budget_unit": "training steps",
        "evaluations_pipeline": evaluations,
        "n_front": int(front.shape[0]),
        "anytime_sweep": [[equal_steps, hv_e], [double_steps, hv_d]],
        "anytime_pipeline": [[steps, evaluations, hv_p]],
    }
