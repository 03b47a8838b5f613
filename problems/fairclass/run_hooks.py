"""What `fair_classification` adds around the evolution: the reference point the data decides
(at setup), splits.json and the baselines (after the run), its report sections, and the portable
export. Kept apart from problem.py, which reads, splits and featurises the table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from evofair.analysis.run_reader import HV_REF_META
from evofair.problems.fairclass.splits import splits_about

log = logging.getLogger(__name__)


class FairRunHooks:
    """Mixed into `FairClassification` (before its problem base, so `setup` runs the base's first)."""

    info: dict[str, Any]
    default_hv_ref: tuple[float, ...] | None

    def setup(self) -> None:
        """The splits, then the reference point the data decides (defaults.py)."""
        from evofair.problems.fairclass.defaults import data_hv_ref

        super().setup()  # type: ignore[misc]
        self.default_hv_ref, self.info["hv_ref"] = data_hv_ref(self)

    def after_run(self, store, out, recipe) -> dict[str, float]:
        """splits.json, a warning when a pinned hv_ref leaves out the constant predictor, the baselines."""
        from evofair.analysis.splits_file import write_splits
        from evofair.problems.fairclass.baselines import run_fair_baselines
        from evofair.problems.fairclass.defaults import hv_ref_markdown

        p: Any = self
        rows = {s: p.table_rows[r] for s, r in p.rows.items()}
        write_splits(store, Path(out), rows, splits_about(self.info))
        if recipe.hv_ref is None and self.default_hv_ref is not None:  # for readers without the problem
            store.set_meta(HV_REF_META, list(self.default_hv_ref))
        warning = hv_ref_markdown(recipe.hv_ref, self.info["hv_ref"], p.objective_names)[1]
        if warning:
            log.warning(warning)
            store.log_event("hv_ref_excludes_constant", warning)
        return run_fair_baselines(self, store, Path(out), recipe, p.params.baselines)

    def report_sections(self, store, out, recipe) -> dict[str, Any]:
        from evofair.problems.fairclass.defaults import hv_ref_markdown
        from evofair.problems.fairclass.report import fair_report_sections
        from evofair.problems.fairclass.summary import data_markdown

        p: Any = self
        sections = dict(fair_report_sections(self, store, Path(out), recipe))
        sections["markdown"] = {
            "Data and groups": data_markdown(self),
            "Hypervolume reference": hv_ref_markdown(recipe.hv_ref, self.info["hv_ref"], p.objective_names)[0],
            **sections.get("markdown", {}),
        }
        return sections

    def front_sections(self, front_metrics, test_predictions, ref) -> dict[str, str]:
        """The accurate-end check of this problem's own report, for a front another problem built
        (a `merge` of its checkpoints): the front's best error against the constant predictor and a
        plain LogisticRegression on the same split, near-constant models counted."""
        from evofair.analysis.metrics import is_near_constant
        from evofair.problems.fairclass.report import references_markdown

        flags = is_near_constant(test_predictions) if len(front_metrics) else []
        summary: dict[str, Any] = {"n_front_near_constant": int(sum(flags))}
        remedy = "train the merged checkpoints longer: a `merge` recipe's `train_anchors.epochs`"
        return {"Accurate end vs simple references": references_markdown(self, front_metrics, ref, summary, remedy)}

    def export_head(self, weights, path) -> dict[str, Any] | None:
        """`evofair export`: the preprocessing and the MLP as one skops file (portable.py)."""
        from evofair.problems.fairclass.portable import export_tabular

        return export_tabular(self, weights, Path(path))
