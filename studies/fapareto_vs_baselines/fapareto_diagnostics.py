"""Why the evolved front does not pull ahead of the baselines: diagnostics of finished BiasBios runs.

Reads run directories that `evofair run` (or `fapareto_vs_baselines.py --out DIR`) wrote with the
head genome and prints, per run and as ranges over all of them:

- the union (a)+(b)'s test HV against baseline (b) scalarisation's alone (how much (a) adds);
- the lowest validation error of any evolved model (archive.csv) against the vanilla heads' (a);
- how many val-non-dominated points lie inside the HV reference box, front vs union, and the test
  HV of the union's `--k` best points by validation HV (greedy) against all of them — whether the
  union wins by having more points;
- the *ceiling* of each candidate pool: the test HV of every model the evolution evaluated, of
  every (b) candidate and of every (a)+(b) candidate, each selected on test itself (an oracle no
  method has) — whether any selection rule could make the front win, or the pool itself is worse;
- the winner's curse: mean test − validate ΔTPR of the front's models and of the union's selected
  ones (inside the reference box), and of the front's models with validate ΔTPR < `--low`.

    .venv/bin/python studies/fapareto_vs_baselines/fapareto_diagnostics.py out/bench_fapareto/*-seed*
    .venv/bin/python studies/fapareto_vs_baselines/fapareto_diagnostics.py --baselines lora OUT/default-seed1   # a LoRA-genome run

With `--baselines lora` "(a)" and "(b)" read the LoRA fine-tunes (LoRA CE, LoRA CE+λ·gap).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from evofair.core.indicators import hypervolume, non_dominated
from evofair.store.run_store import RunStore


def greedy_subset(F: np.ndarray, k: int, ref) -> list[int]:
    """Indices of k points chosen one at a time for the largest HV gain (greedy HV subset selection)."""
    chosen: list[int] = []
    for _ in range(min(k, len(F))):
        rest = [j for j in range(len(F)) if j not in chosen]
        chosen.append(max(rest, key=lambda j: hypervolume(F[chosen + [j]], ref)))
    return chosen


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def dtpr_shift(rows, ref, below: float = np.inf) -> float:
    """Mean test − validate ΔTPR over the rows whose validate and test points lie inside `ref`."""
    d = [
        float(r["dtpr_test"]) - float(r["dtpr_val"])
        for r in rows
        if float(r["error_val"]) < ref[0]
        and float(r["dtpr_val"]) < min(ref[1], below)
        and float(r["error_test"]) < ref[0]
        and float(r["dtpr_test"]) < ref[1]
    ]
    return float(np.mean(d)) if d else float("nan")


#: --baselines: the vanilla and scalarised methods compared with (head baselines, or the LoRA fine-tunes)
BASELINES = {
    "ab": ("vanilla", "scalarisation", "hv_union_ab_test"),
    "lora": ("lora_vanilla", "lora_scalarisation", "hv_lora_union_test"),
}


def oracle(run: Path, cands, ref, scalarised: str = "scalarisation", low: float = 0.03) -> dict[str, float]:
    """Each pool's test HV when selected on test (the ceiling of any selection rule), and how many
    candidates of each pool look fairer on validate than ΔTPR `low` (inside the box on validate)."""
    store = RunStore(run, readonly=True)
    try:
        evolved = [i.metrics for i in store.individuals() if "test" in i.metrics]
    finally:
        store.close()

    def hv_on_test(metrics) -> float:
        return hypervolume(np.array([[m["test"]["error"], m["test"]["dtpr"]] for m in metrics]).reshape(-1, 2), ref)

    def n_low(metrics) -> int:
        return sum(m["val"]["error"] < ref[0] and m["val"]["dtpr"] < low for m in metrics)

    union = [m["metrics"] for m in cands]
    return {
        "oracle_evolved": hv_on_test(evolved),
        "oracle_b": hv_on_test([m["metrics"] for m in cands if m["method"] == scalarised]),
        "oracle_union": hv_on_test(union),
        "oracle_evolved_and_union": hv_on_test(evolved + union),
        "n_evolved": len(evolved),
        "evolved_low_n": n_low(evolved),
        "union_low_n": n_low(union),
    }


def diagnose(run: Path, k: int, low: float = 0.03, baselines: str = "ab") -> dict[str, float]:
    vanilla, scalarised, union_key = BASELINES[baselines]
    summary = json.loads((run / "summary.json").read_text())
    ref = summary["hv_ref"]
    cands = [
        m
        for m in json.loads((run / "baselines.json").read_text())["candidates"]
        if m["method"] in (vanilla, scalarised)
    ]
    V = np.array([[m["metrics"]["val"]["error"], m["metrics"]["val"]["dtpr"]] for m in cands])
    T = np.array([[m["metrics"]["test"]["error"], m["metrics"]["test"]["dtpr"]] for m in cands])
    nd = non_dominated(V)
    with open(run / "archive.csv", newline="") as fh:
        evolved_err = min(float(r["error_val"]) for r in csv.DictReader(fh))
    with open(run / "front.csv", newline="") as fh:
        front_rows = list(csv.DictReader(fh))
    front = np.array([[float(r["error_val"]), float(r["dtpr_val"])] for r in front_rows])
    with open(run / "baselines.csv", newline="") as fh:
        union_rows = [r for r in csv.DictReader(fh) if r["method"] in (vanilla, scalarised)]
    union = summary[union_key]
    ceiling = oracle(run, cands, ref, scalarised, low)
    return {
        "union_vs_b": 1 - ratio(summary[f"hv_{scalarised}_test"], union),
        "min_val_error_evolved": evolved_err,
        "min_val_error_vanilla": min(m["metrics"]["val"]["error"] for m in cands if m["method"] == vanilla),
        "union_nondominated": len(nd),
        "union_inside_ref": int(np.all(V[nd] < ref, axis=1).sum()),
        "front_inside_ref": int(np.all(front < ref, axis=1).sum()),
        "union_test_hv": hypervolume(T[nd], ref),
        "union_best_k_test_hv": hypervolume(T[nd][greedy_subset(V[nd], k, ref)], ref),
        **ceiling,
        "ceiling_vs_b": ratio(ceiling["oracle_evolved"], ceiling["oracle_b"]),
        # the best any selection from the evolved pool could do against the union as selected on validate
        "ceiling_vs_union_selected": ratio(ceiling["oracle_evolved"], union),
        "front_dtpr_shift": dtpr_shift(front_rows, ref),
        "union_dtpr_shift": dtpr_shift(union_rows, ref),
        "front_low_dtpr_shift": dtpr_shift(front_rows, ref, below=low),
        "front_low_n": sum(float(r["dtpr_val"]) < low for r in front_rows),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--k", type=int, default=16, help="points of the union kept by greedy validation HV")
    ap.add_argument("--low", type=float, default=0.03, help="validate ΔTPR below which the front's shift is also shown")
    ap.add_argument(
        "--baselines",
        choices=sorted(BASELINES),
        default="ab",
        help="ab: (a) vanilla and (b) scalarised heads; lora: the LoRA fine-tunes (a LoRA-genome run)",
    )
    args = ap.parse_args(argv)
    rows = {
        run: diagnose(run, args.k, args.low, args.baselines) for run in args.runs if (run / "baselines.json").exists()
    }
    keys = list(next(iter(rows.values())))
    print("| run | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for run, r in rows.items():
        print(f"| {run.parent.name}/{run.name} | " + " | ".join(f"{r[c]:.4g}" for c in keys) + " |")
    col = lambda c: np.array([r[c] for r in rows.values()])
    print(
        f"\n{len(rows)} runs. (a) adds to (b): {100 * col('union_vs_b').min():.1f}–{100 * col('union_vs_b').max():.1f}% "
        f"of the union's test HV (median {100 * np.median(col('union_vs_b')):.1f}%). Lowest validation error: "
        f"evolved {col('min_val_error_evolved').min():.3f}–{col('min_val_error_evolved').max():.3f}, vanilla "
        f"{col('min_val_error_vanilla').min():.3f}–{col('min_val_error_vanilla').max():.3f}. Union: "
        f"{col('union_nondominated').min()}–{col('union_nondominated').max()} val-non-dominated points, "
        f"{col('union_inside_ref').min()}–{col('union_inside_ref').max()} inside the reference box (median "
        f"{np.median(col('union_inside_ref')):g}); front {col('front_inside_ref').min()}–"
        f"{col('front_inside_ref').max()} (median {np.median(col('front_inside_ref')):g}). Union's {args.k} best by validation HV / "
        f"all of it, test HV: {(col('union_best_k_test_hv') / col('union_test_hv')).min():.3f}–"
        f"{(col('union_best_k_test_hv') / col('union_test_hv')).max():.3f}."
    )
    ceil_b, ceil_u = col("ceiling_vs_b"), col("oracle_evolved") / col("oracle_union")
    adds = col("oracle_evolved_and_union") / col("oracle_union") - 1
    low = col("front_low_dtpr_shift")
    low_median = float(np.median(low[np.isfinite(low)])) if np.isfinite(low).any() else float("nan")
    print(
        f"Ceiling (every candidate selected on test): evolved pool / (b)'s pool {ceil_b.min():.3f}–{ceil_b.max():.3f} "
        f"(median {np.median(ceil_b):.3f}), / (a)+(b)'s pool {ceil_u.min():.3f}–{ceil_u.max():.3f} "
        f"(median {np.median(ceil_u):.3f}); evolved pool / the union as selected on validate "
        f"{col('ceiling_vs_union_selected').min():.3f}–{col('ceiling_vs_union_selected').max():.3f} (mean "
        f"{np.mean(col('ceiling_vs_union_selected')):.3f}); the evolved models raise (a)+(b)'s ceiling by "
        f"{100 * adds.min():.1f}–{100 * adds.max():.1f}%. Test − validate ΔTPR, mean over a run's selected models: front "
        f"{col('front_dtpr_shift').min():+.3f} to {col('front_dtpr_shift').max():+.3f} (median "
        f"{np.median(col('front_dtpr_shift')):+.3f}), union {col('union_dtpr_shift').min():+.3f} to "
        f"{col('union_dtpr_shift').max():+.3f} (median {np.median(col('union_dtpr_shift')):+.3f}); the front's models "
        f"with validate ΔTPR < {args.low:g} (median {np.median(col('front_low_n')):g} per run): median "
        f"{low_median:+.3f}. Candidates with validate ΔTPR < {args.low:g} (and error inside the box): evolved "
        f"{col('evolved_low_n').min()}–{col('evolved_low_n').max()}, (a)+(b) {col('union_low_n').min()}–"
        f"{col('union_low_n').max()} per run."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
