"""The FairPO-DPO claim checked on the `fairpo_table` experiment's runs, and the caveats on reading it.

`claim` decides whether a method raised privileged mAP over BCE-SFT with non-privileged mAP within
ε, with the per-seed counts and spread that show whether a mean verdict is carried by a few noisy
seeds; `verdict_line` words it for the report. `positives_warnings` and `served_warning` flag data
under which the verdict means little: privileged labels with too few positives to learn from or to
select on, and a privileged group that BCE-SFT already serves at least as well as the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def claim(runs: Sequence[dict[str, Any]], method: str, epsilon: float, baseline: str = "sft") -> dict[str, Any]:
    """ "`method` raises privileged mAP over BCE-SFT while non-privileged mAP stays within ε" (test split).

    Holds when mean mAP_P(method) > mean mAP_P(BCE-SFT) and mean mAP_N(method) ≥ mean mAP_N(BCE-SFT) − ε
    (means over seeds). Alongside: on how many seeds each condition held, and the spread of the per-seed
    paired differences (sample std, ddof 1; 0 for one seed; min and max), so a verdict carried by the
    mean of a few noisy seeds reads as such.
    """
    by = {(r["method"], int(r["seed"])): r for r in runs}
    seeds = sorted(s for (m, s) in by if m == method and (baseline, s) in by)
    if not seeds:
        raise ValueError(f"no seeds with both {method} and {baseline}")
    dp = np.array([float(by[method, s]["map_P"]) - float(by[baseline, s]["map_P"]) for s in seeds])
    dn = np.array([float(by[method, s]["map_N"]) - float(by[baseline, s]["map_N"]) for s in seeds])
    raises, within = bool(dp.mean() > 0), bool(dn.mean() >= -epsilon)

    def spread(d):
        return {"std": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "min": float(d.min()), "max": float(d.max())}

    return {
        "method": method,
        "baseline": baseline,
        "epsilon": epsilon,
        "seeds": seeds,
        "map_P_method": float(np.mean([float(by[method, s]["map_P"]) for s in seeds])),
        "map_P_baseline": float(np.mean([float(by[baseline, s]["map_P"]) for s in seeds])),
        "map_N_method": float(np.mean([float(by[method, s]["map_N"]) for s in seeds])),
        "map_N_baseline": float(np.mean([float(by[baseline, s]["map_N"]) for s in seeds])),
        "delta_map_P": float(dp.mean()),
        "delta_map_N": float(dn.mean()),
        "seeds_P_raised": int((dp > 0).sum()),
        "seeds_N_within": int((dn >= -epsilon).sum()),
        **{f"delta_map_P_{k}": v for k, v in spread(dp).items()},
        **{f"delta_map_N_{k}": v for k, v in spread(dn).items()},
        "raises_P": raises,
        "N_within_epsilon": within,
        "holds": raises and within,
    }


def verdict_line(c: dict[str, Any]) -> str:
    """One claim as a report line: the verdict, the seed count and the spread of the per-seed gains.

    A verdict that holds on the mean but not on every seed, or whose mean gain is no larger than the
    seed-to-seed spread of the gains, says so in words.
    """
    n = len(c["seeds"])
    verdict = "HOLDS" if c["holds"] else "DOES NOT HOLD"
    line = (
        f"- {c['method']}: **{verdict}** — mAP_P rose on {c['seeds_P_raised']}/{n} seeds: per-seed Δ mAP_P "
        f"mean {c['delta_map_P']:+.4f}, std {c['delta_map_P_std']:.4f}, range [{c['delta_map_P_min']:+.4f}, "
        f"{c['delta_map_P_max']:+.4f}] (mAP_P {c['map_P_method']:.4f} vs {c['map_P_baseline']:.4f}); "
        f"mAP_N within ε={c['epsilon']} on {c['seeds_N_within']}/{n} seeds: Δ mAP_N mean {c['delta_map_N']:+.4f}, "
        f"std {c['delta_map_N_std']:.4f}, range [{c['delta_map_N_min']:+.4f}, {c['delta_map_N_max']:+.4f}] "
        f"(mAP_N {c['map_N_method']:.4f} vs {c['map_N_baseline']:.4f})."
    )
    caveats = []
    if c["holds"] and c["seeds_P_raised"] < n:
        caveats.append(f"mAP_P did not rise on {n - c['seeds_P_raised']} of {n} seeds")
    if c["holds"] and n > 1 and c["delta_map_P"] <= c["delta_map_P_std"]:
        caveats.append("the mean gain is no larger than the seed-to-seed std of the gains")
    if c["holds"] and c["seeds_N_within"] < n:
        caveats.append(f"mAP_N fell by more than ε on {n - c['seeds_N_within']} of {n} seeds")
    if caveats:
        line += " Caution: " + "; ".join(caveats) + "."
    return line


def positives_warnings(
    names: Sequence[str], priv: Sequence[int], y_train: np.ndarray, y_val: np.ndarray, min_train: int, min_val: int
) -> list[str]:
    """Privileged labels with too few positives to learn from (training rows) or to select on (validation)."""
    out = []
    n_tr, n_va = np.asarray(y_train).sum(axis=0), np.asarray(y_val).sum(axis=0)
    few_tr = [f"{names[i]} ({int(n_tr[i])})" for i in priv if n_tr[i] < min_train]
    few_va = [f"{names[i]} ({int(n_va[i])})" for i in priv if n_va[i] < min_val]
    if few_tr:
        out.append(
            f"privileged label(s) with fewer than {min_train} positives in the training rows: "
            + ", ".join(few_tr)
            + " — too few to learn a ranking from; gains on them are mostly noise."
        )
    if few_va:
        out.append(
            f"privileged label(s) with fewer than {min_val} positives in the validation rows: "
            + ", ".join(few_va)
            + " — every checkpoint is selected on validation mAP_P, which is then "
            "close to noise."
        )
    return out


def served_warning(runs: Sequence[dict[str, Any]], baseline: str = "sft") -> str | None:
    """Warn when BCE-SFT already serves the "privileged" (rarest) labels at least as well as the others.

    FairPO's premise is that P is the group a standard model serves worst; if BCE-SFT's test mAP_P
    (mean over seeds) is at least its mAP_N, raising mAP_P further is not a fairness gain.
    """
    rows = [r for r in runs if r["method"] == baseline]
    if not rows:
        return None
    mp, mn = (float(np.mean([float(r[k]) for r in rows])) for k in ("map_P", "map_N"))
    if mp >= mn:
        return (
            f"BCE-SFT already serves the privileged (rarest) labels at least as well as the others: test "
            f"mAP_P {mp:.4f} ≥ mAP_N {mn:.4f} (mean over {len(rows)} seeds). P is not the disadvantaged "
            "group here, so raising mAP_P is not evidence of a fairer model."
        )
    return None
