"""The `hyperdpo_table` experiment: HyperDPO against its baselines on LETOR (the paper's Table 1).

The methods and how each obtains its front are in table_methods.py; this module runs them on the
`letor` problem and writes fronts.csv, table.csv, table.md, report.md and plots/front.png.
"""

from __future__ import annotations

import copy
import csv
import time
from pathlib import Path

import numpy as np

from evofair.core.registry import component
from evofair.problems.hyperdpo.ranker import temperature_scale
from evofair.problems.hyperdpo.ranking import RankingProblem
from evofair.problems.hyperdpo.table_methods import (
    LABELS,
    MethodResult,
    TableArgs,
    measure_front,
    model_scores,
    run_methods,
)


# -- outputs ----------------------------------------------------------------------------------
def table_markdown(problem, results: dict[str, MethodResult], split: str = "test") -> str:
    k = problem.params.k
    lines = [
        f"| Method | Aux. HV ({split}) | Avg. main NDCG@{k} (± std over front points) | Training time (s) "
        "| # Parameters | Front points |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {LABELS[name]} | {r.hv(split):.4e} | {r.main[split].mean():.4f} (± {r.main[split].std():.4f}) "
            f"| {r.seconds:.2f} | {r.n_params:,} | {len(r.points[split])} |"
        )
    return "\n".join(lines)


def plot_fronts(path: Path, problem, results: dict[str, MethodResult], split: str = "test", extra=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = problem.objective_names
    fig, ax = plt.subplots(figsize=(6, 4.8))
    for k, (name, r) in enumerate(results.items()):
        P = r.points[split]
        order = np.argsort(P[:, 0])
        ax.plot(P[order, 0], P[order, 1], "-" + "osD^"[k % 4], ms=4, label=LABELS[name])
    for label, pt in (extra or {}).items():
        ax.scatter([pt[0]], [pt[1]], marker="x", c="k", s=50, label=label, zorder=5)
    ax.set_xlabel(f"{names[0]} ({split})")
    ax.set_ylabel(f"{names[1]} ({split})")
    more = f" (first 2 of {len(names)} objectives)" if len(names) > 2 else ""
    ax.set_title(f"Fronts on {problem.name}{more}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csvs(problem, results: dict[str, MethodResult], out: Path) -> None:
    """fronts.csv (every front point's weight vector and metrics, exact reprs so they can be
    re-scored) and table.csv (one row per method: HV, main NDCG, time, parameters)."""
    names = problem.objective_names
    with open(out / "fronts.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(
            ["method", "point"]
            + [f"w{j + 1}" for j in range(problem.n_aux)]
            + [f"{n}_{s}" for s in ("val", "test") for n in names + [problem.main_metric]]
        )
        for name, r in results.items():
            for i, w in enumerate(r.grid):
                wr.writerow(
                    [name, i]
                    + [f"{x:.4f}" for x in w]
                    + [repr(float(v)) for s in ("val", "test") for v in list(r.points[s][i]) + [r.main[s][i]]]
                )
    with open(out / "table.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["method", "hv_test", "hv_val", "main_mean_test", "main_std_test", "seconds", "n_params"])
        for name, r in results.items():
            wr.writerow(
                [name, r.hv("test"), r.hv("val"), r.main["test"].mean(), r.main["test"].std(), r.seconds, r.n_params]
            )


def temperature_markdown(problem, r: MethodResult, temperatures) -> list[str]:
    """The report's temperature section: HyperDPO's front at each scale c with no retraining, which
    shows the post-training control over β that the per-w baselines do not have."""
    md = [
        "",
        "## Post-training temperature control (HyperDPO, no retraining)",
        "",
        "s_{cβ} = (1 − 1/c)·s_base + (1/c)·s_β, applied by scaling g's output layer by 1/c.",
        "",
        "| c | Aux. HV (test) | Avg. main NDCG (test) |",
        "|---|---|---|",
    ]
    for c in [1.0] + list(temperatures):
        cond = temperature_scale({k: v for k, v in r.model.state_dict().items()}, c)
        model = copy.deepcopy(r.model)  # same shape as the trained one (hyper_hidden may differ)
        model.load_state_dict(cond)
        tmp = MethodResult("t")
        measure_front(problem, tmp, lambda split: [model_scores(problem, model, split, w) for w in r.grid])
        md.append(f"| {c:g} | {tmp.hv('test'):.4e} | {tmp.main['test'].mean():.4f} |")
    return md


def write_outputs(problem, results, out: Path, a: TableArgs, seed: int) -> None:
    """fronts.csv, table.csv, plots/front.png, report.md and table.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    names = problem.objective_names
    write_csvs(problem, results, out)
    base = problem.metrics_of_scores(problem.data["test"].base.numpy(), "test")
    plot_fronts(
        out / "plots" / "front.png", problem, results, "test", {"base ranker": [base[names[0]], base[names[1]]]}
    )
    md = [
        f"# HyperDPO vs baselines on {problem.name}",
        "",
        f"Auxiliary objectives ({problem.n_aux}): "
        + ", ".join(f"`{n}` (feature {f}, φ={ph})" for n, f, ph in zip(names, problem.aux_ids, problem.phi))
        + ".",
        f"Queries train/val/test: {len(problem.data['train'])}/{len(problem.data['val'])}/"
        f"{len(problem.data['test'])}; seed {seed}; β = {problem.params.beta}; α = {a.alpha}; λ = {a.lam}.",
        "",
        f"HV: hypervolume of the {len(names)} auxiliary NDCG@{problem.params.k} values of the {a.n_points} front "
        "points, maximised, reference point (0, …, 0) (pymoo HV on −NDCG). NDCG of a query without any "
        f"relevant document: {'0, as sklearn.metrics.ndcg_score' if problem.params.no_relevant == 'zero' else 'left out of the mean'}.",
        "Training time: all training the method needs for its whole front (the shared base ranker excluded); "
        "parameters: fine-tuned parameters (the frozen base excluded).",
        "",
        table_markdown(problem, results, "test"),
        "",
        "Base ranker (test): " + ", ".join(f"{k} {v:.4f}" for k, v in base.items()) + ".",
        "",
        "Best epochs per model: " + "; ".join(f"{LABELS[n]} {r.epochs}" for n, r in results.items()) + ".",
    ]
    if "hyperdpo" in results and a.hyper_select == "per_w":
        md += [
            "",
            f"HyperDPO per-w snapshots: {results['hyperdpo'].n_snapshots} distinct epochs for "
            f"{a.n_points} front points (parameters counted once per snapshot).",
        ]
    if "hyperdpo" in results and a.hyper_select_c:
        md += [
            "",
            "HyperDPO's temperature scale c per front point (chosen on validation): "
            + ", ".join(f"{c:g}" for c in results["hyperdpo"].c)
            + ".",
        ]
    if "hyperdpo" in results and a.temperatures:
        md += temperature_markdown(problem, results["hyperdpo"], a.temperatures)
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "table.md").write_text(table_markdown(problem, results, "test") + "\n")


@component("experiment", "hyperdpo_table", TableArgs)
def hyperdpo_table(recipe, problem, args: TableArgs, out: Path, progress: bool = True) -> dict[str, float]:
    """HyperDPO vs DPO-LS, DPO Soup and MO-DPO: HV, main NDCG, training time, parameters; plots/front.png."""
    if not isinstance(problem, RankingProblem):
        from evofair.errors import UserError

        raise UserError("experiment.name: hyperdpo_table needs problem letor")
    t = time.perf_counter()
    results = run_methods(problem, args, recipe.seed)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    write_outputs(problem, results, Path(out), args, recipe.seed)
    if progress:
        print(table_markdown(problem, results, "test"))
    timings = {f"train {LABELS[n]}": r.seconds for n, r in results.items()}
    timings.update({"experiment (all methods)": train_s, "report": time.perf_counter() - t})
    return timings
