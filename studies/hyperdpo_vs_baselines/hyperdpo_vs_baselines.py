"""HyperDPO vs DPO-LS (and DPO Soup, MO-DPO) on LETOR MQ2008, measured in the same process.

For 2 and 3 auxiliary objectives and 3 seeds, trains every method's 11-point front from the same
base ranker and prints HV(HyperDPO)/HV(DPO-LS) and time(HyperDPO)/time(DPO-LS) per seed and
their means. HV: auxiliary NDCG@10 on the test queries, maximised, reference point (0, …, 0).
The paper (MSLR-WEB10K, 5 objectives) reports HV ratio 2.039/1.648 = 1.24 at time ratio 1/3.6.
Methods run in alternating order across seeds so slow drift of a shared machine hits both.

    .venv/bin/python studies/hyperdpo_vs_baselines/hyperdpo_vs_baselines.py                 # all 4 methods, ~10–15 min here
    .venv/bin/python studies/hyperdpo_vs_baselines/hyperdpo_vs_baselines.py --m 2 --methods hyperdpo dpo_ls   # ~40 s on a quiet machine
    .venv/bin/python studies/hyperdpo_vs_baselines/hyperdpo_vs_baselines.py --m 2 --methods hyperdpo dpo_ls --lam 0 \
        --hyper-hidden 128 --val-every 5                                 # the best fair setting tried

The other flags (β, lr, epochs, patience, widths, α, w per query, per-w temperature selection — for
HyperDPO only or, with --select-c-dpo-ls, for DPO-LS too —, per-w snapshot selection and stopping,
K w per batch, front-w draws, FiLM conditioning, restarts) are the settings tried to close HyperDPO's
HV gap to DPO-LS; every run is in the README beside this script. The per-w snapshot count of HyperDPO's
stored front is printed next to the parameter counts ("stored models").
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evofair.problems.hyperdpo.ranking import RankingParams, RankingProblem
from evofair.problems.hyperdpo.table_methods import LABELS, TableArgs, run_methods

OBJECTIVES = {2: [41, 46], 3: [41, 46, 44]}


def argument_parser() -> argparse.ArgumentParser:
    """The comparison's flags: which objectives, seeds and methods, and the settings tried to close
    HyperDPO's HV gap (defaults = runs/hyperdpo_mq2008.yaml)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--m", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument("--methods", nargs="+", default=["hyperdpo", "dpo_ls", "dpo_soup", "mo_dpo"])
    ap.add_argument("--lam", type=float, default=1.0, help="ICOS cosine penalty λ (COSMOS default 1)")
    # settings varied to close the HV gap (README.md beside this script); defaults = runs/hyperdpo_mq2008.yaml
    ap.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration of the ICOS w draws")
    ap.add_argument("--beta", type=float, default=1.0, help="DPO temperature β (every method)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (every method)")
    ap.add_argument("--epochs", type=int, default=300, help="max epochs of each baseline model")
    ap.add_argument("--hyper-epochs", type=int, default=600, help="max epochs of the HyperDPO model")
    ap.add_argument("--patience", type=int, default=20, help="early-stopping patience (epochs), every method")
    ap.add_argument("--hyper-patience", type=int, default=None, help="HyperDPO's patience only (default: --patience)")
    ap.add_argument("--hidden", type=int, default=64, help="width of every fine-tuned g")
    ap.add_argument("--hyper-hidden", type=int, default=0, help="width of HyperDPO's g only (0: --hidden)")
    ap.add_argument("--w-scale", type=float, default=5.0, help="w enters HyperDPO's g as w_scale·w")
    ap.add_argument("--hyper-lr", type=float, default=None, help="HyperDPO's learning rate only (default: --lr)")
    ap.add_argument(
        "--w-per",
        choices=["batch", "query"],
        default="batch",
        help="HyperDPO draws one w per batch (paper) or per query",
    )
    ap.add_argument(
        "--select-c",
        type=float,
        nargs="*",
        default=[],
        help="HyperDPO: per front w, the temperature scale c (of these and 1) best on validation",
    )
    ap.add_argument("--val-every", type=int, default=1, help="HyperDPO validates every k-th epoch")
    ap.add_argument(
        "--hyper-select",
        choices=["shared", "per_w"],
        default="shared",
        help="HyperDPO: one best epoch for the front, or each front w's own best-epoch snapshot",
    )
    ap.add_argument(
        "--hyper-stop",
        choices=["shared", "per_w"],
        default="shared",
        help="HyperDPO: patience on the front's mean, or until every front w's patience ran out",
    )
    ap.add_argument("--k-w", type=int, default=1, help="HyperDPO: w draws per batch (losses averaged)")
    ap.add_argument(
        "--grid-mix",
        type=float,
        default=0.0,
        help="HyperDPO: probability that a w draw is a front grid point instead of Dirichlet",
    )
    ap.add_argument("--cond", choices=["concat", "film"], default="concat", help="HyperDPO's conditioning")
    ap.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="HyperDPO: conditioned models trained (seeds seed + 7919·r); per w the best on validation",
    )
    ap.add_argument(
        "--select-c-dpo-ls",
        action="store_true",
        help="give DPO-LS the same per-w temperature selection as --select-c (fair comparison)",
    )
    ap.add_argument("--json", help="write all per-seed numbers here")
    return ap


def table_args_of(a: argparse.Namespace) -> dict:
    """The `TableArgs` fields the flags set (the rest are the experiment's defaults)."""
    return dict(
        lam=a.lam,
        alpha=a.alpha,
        epochs=a.epochs,
        hyper_epochs=a.hyper_epochs,
        patience=a.patience,
        hyper_patience=a.hyper_patience,
        hyper_hidden=a.hyper_hidden or None,
        hyper_lr=a.hyper_lr,
        hyper_val_every=a.val_every,
        hyper_w_per=a.w_per,
        hyper_select_c=a.select_c,
        hyper_select=a.hyper_select,
        hyper_stop=a.hyper_stop,
        hyper_k_w=a.k_w,
        hyper_grid_mix=a.grid_mix,
        hyper_cond=a.cond,
        select_c_dpo_ls=a.select_c_dpo_ls,
        hyper_restarts=a.restarts,
    )


def compare_one(a: argparse.Namespace, m: int, k: int, seed: int, table_args: dict, settings: dict) -> dict:
    """Every method's front with `m` objectives at `seed`, in alternating order (the k-th seed runs
    them reversed when k is odd, so a machine's slow drift does not favour one), and the
    HyperDPO/DPO-LS HV and time ratios."""
    problem = RankingProblem(
        RankingParams(aux_features=OBJECTIVES[m], seed=seed, beta=a.beta, lr=a.lr, hidden=a.hidden, w_scale=a.w_scale)
    ).ensure_setup()
    methods = list(a.methods) if k % 2 == 0 else list(reversed(a.methods))
    t = time.perf_counter()
    res = run_methods(problem, TableArgs(methods=methods, **table_args), seed)
    row = {"m": m, "seed": seed, "wall_s": time.perf_counter() - t, "settings": settings}
    for name, r in res.items():
        row[name] = {
            "hv": r.hv("test"),
            "hv_val": r.hv("val"),
            "seconds": r.seconds,
            "n_params": r.n_params,
            "main_mean": float(r.main["test"].mean()),
            "main_std": float(r.main["test"].std()),
            "epochs": [e if isinstance(e, str) else int(e) for e in r.epochs],
            "n_snapshots": r.n_snapshots,
        }
        if r.c is not None:
            row[name]["c"] = list(r.c)  # temperature scale per front w (--select-c, --select-c-dpo-ls)
    row["hv_ratio"] = row["hyperdpo"]["hv"] / row["dpo_ls"]["hv"]
    row["time_ratio"] = row["hyperdpo"]["seconds"] / row["dpo_ls"]["seconds"]
    print(
        f"m={m} seed={seed}: "
        + "; ".join(
            f"{LABELS[n]} HV {row[n]['hv']:.4f} main {row[n]['main_mean']:.4f} {row[n]['seconds']:.1f}s"
            for n in a.methods
        )
        + f" | HV ratio {row['hv_ratio']:.3f}, time ratio {row['time_ratio']:.3f}",
        flush=True,
    )
    return row


def print_hv_table(a: argparse.Namespace, rows: list[dict]) -> None:
    """HV of every method per seed, the two ratios, and per objective count their mean ± std."""
    print(
        "| objectives | seed | "
        + " | ".join(f"HV {LABELS[n]}" for n in a.methods)
        + " | HV(HyperDPO)/HV(DPO-LS) | time(HyperDPO)/time(DPO-LS) |"
    )
    print("|---" * (len(a.methods) + 4) + "|")
    for m in a.m:
        sub = [r for r in rows if r["m"] == m]
        for r in sub:
            print(
                f"| {m} | {r['seed']} | "
                + " | ".join(f"{r[n]['hv']:.4f}" for n in a.methods)
                + f" | {r['hv_ratio']:.3f} | {r['time_ratio']:.3f} |"
            )
        hv = np.array([r["hv_ratio"] for r in sub])
        tr = np.array([r["time_ratio"] for r in sub])
        print(
            f"| {m} | mean | "
            + " | ".join(f"{np.mean([r[n]['hv'] for r in sub]):.4f}" for n in a.methods)
            + f" | {hv.mean():.3f} ± {hv.std():.3f} | {tr.mean():.3f} ± {tr.std():.3f} |"
        )


def print_cost_table(a: argparse.Namespace, rows: list[dict]) -> None:
    """Per method: main NDCG, training time, parameters and stored models, what each front costs."""
    print("| objectives | method | avg. main NDCG@10 | training time (s) | # parameters | stored models |")
    print("|---|---|---|---|---|---|")
    for m in a.m:
        sub = [r for r in rows if r["m"] == m]
        for n in a.methods:
            print(
                f"| {m} | {LABELS[n]} | {np.mean([r[n]['main_mean'] for r in sub]):.4f} "
                f"| {np.mean([r[n]['seconds'] for r in sub]):.1f} | "
                + " / ".join(f"{r[n]['n_params']:,}" for r in sub)
                + " | "
                + (" / ".join(str(r[n]["n_snapshots"]) for r in sub) if n == "hyperdpo" else "-")
                + " |"
            )


def main() -> None:
    ap = argument_parser()
    a = ap.parse_args()
    if not {"hyperdpo", "dpo_ls"} <= set(a.methods):
        ap.error("--methods must include hyperdpo and dpo_ls")
    table_args = table_args_of(a)
    settings = dict(table_args, beta=a.beta, lr=a.lr, hidden=a.hidden, w_scale=a.w_scale)
    rows = [compare_one(a, m, k, seed, table_args, settings) for m in a.m for k, seed in enumerate(a.seeds)]
    print()
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(
        f"λ = {a.lam}. HV: test aux NDCG@10, reference point 0, maximised. Times: training of the whole 11-point front."
    )
    print_hv_table(a, rows)
    print()
    print_cost_table(a, rows)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
