"""MLflow logger (`callbacks: [{name: mlflow, args: {tracking_uri: ..., experiment: ...}}]`).

Written against mlflow's public fluent API only (`get/set_tracking_uri`, `set_experiment`,
`start_run`, `log_params`, `log_metric(step=)`, `log_metrics(step=)`, `log_artifact`,
`end_run`), imported when the logger is built: without mlflow installed the recipe fails in
one line naming `pip install mlflow`, before any file is written. What it logs:

- params: the resolved recipe, flattened to dotted keys (`algorithm.pop_size`, ...);
- metrics per generation (step = generation): `hv_val`, `n_front`, `evaluations`, `seconds`,
  the same numbers as history.csv;
- per-model metrics (step = the model's running number in the run): `model.<split>.<metric>`
  (`per_model: false` leaves them out);
- artifacts at the end: plots/front.png, plots/hv.png, front.csv, history.csv, config.yaml, report.md.

If an MLflow run is already active (the caller's own), evofair's run is started nested under it.
The run ends FINISHED after `on_run_end`, FAILED if the evofair run stopped before that.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import Field

from evofair.core.registry import Args, component
from evofair.tracking.callbacks import Callback, GenerationInfo, ModelInfo, RunInfo, RunStartInfo
from evofair.tracking.tensorboard_logger import flat_params, require

ARTIFACTS = ("plots/front.png", "plots/hv.png", "front.csv", "history.csv", "config.yaml", "report.md")
MAX_PARAM_CHARS = 500  # the smallest limit of MLflow's backends on a param value


class MlflowArgs(Args):
    tracking_uri: str | None = Field(
        None,
        description="where MLflow records (sqlite:///mlflow.db, http://host:5000, "
        "or a folder: MLflow 3 wants MLFLOW_ALLOW_FILE_STORE=true for that); unset: "
        "MLflow's own default / MLFLOW_TRACKING_URI",
    )
    experiment: str = Field("evofair", min_length=1, description="MLflow experiment name (created if missing)")
    run_name: str | None = Field(None, description="MLflow run name; unset: the run folder's name")
    per_model: bool = Field(True, description="also log every evaluated model's metrics")


@component("callback", "mlflow", MlflowArgs)
class MlflowLogger(Callback):
    """Per-generation HV / front size / evaluations / seconds, per-model metrics, the recipe as params
    and the run's plots and tables as artifacts, to an MLflow tracking store."""

    def __init__(self, args: MlflowArgs | None = None, **kwargs: Any):
        require("mlflow", "mlflow", "mlflow")
        self.args = args if args is not None else MlflowArgs(**kwargs)
        self.mlflow: ModuleType | None = None  # the mlflow module, once a run started
        self.run_id: str | None = None
        self._previous_uri: str | None = None
        self._models = 0
        self._finished = False

    def on_run_start(self, info: RunStartInfo) -> None:
        import mlflow

        self.mlflow = mlflow
        if self.args.tracking_uri:
            self._previous_uri = mlflow.get_tracking_uri()  # put back in close(): the caller's own setting
            mlflow.set_tracking_uri(self.args.tracking_uri)
        mlflow.set_experiment(self.args.experiment)
        run = mlflow.start_run(run_name=self.args.run_name or info.out.name, nested=mlflow.active_run() is not None)
        self.run_id = run.info.run_id
        params = {
            k: (v if not isinstance(v, str) else v[:MAX_PARAM_CHARS]) for k, v in flat_params(info.recipe).items()
        }
        params["evofair.start_generation"] = info.start_generation
        mlflow.log_params(params)
        self._models = 0

    def on_model_evaluated(self, info: ModelInfo) -> None:
        self._models += 1
        if not self.args.per_model or self.mlflow is None:
            return
        values = {f"model.{split}.{name}": float(v) for split, per in info.metrics.items() for name, v in per.items()}
        self.mlflow.log_metrics(values, step=self._models - 1)

    def on_generation_end(self, info: GenerationInfo) -> None:
        if self.mlflow is None:
            return
        if info.hv_val is not None:
            self.mlflow.log_metric("hv_val", info.hv_val, step=info.generation)
        self.mlflow.log_metric("n_front", info.n_front, step=info.generation)
        self.mlflow.log_metric("evaluations", info.evaluations, step=info.generation)
        self.mlflow.log_metric("seconds", info.seconds, step=info.generation)

    def on_run_end(self, info: RunInfo) -> None:
        if self.mlflow is None:
            return
        for rel in ARTIFACTS:
            path = info.out / rel
            if path.is_file():
                folder = str(rel.rpartition("/")[0]) or None
                self.mlflow.log_artifact(str(path), artifact_path=folder)
        self._finished = True

    def close(self) -> None:
        if self.mlflow is not None and self.run_id is not None:
            self.mlflow.end_run(status="FINISHED" if self._finished else "FAILED")
        if self.mlflow is not None and self._previous_uri is not None:
            self.mlflow.set_tracking_uri(self._previous_uri)
        self.mlflow, self.run_id, self._previous_uri = None, None, None
