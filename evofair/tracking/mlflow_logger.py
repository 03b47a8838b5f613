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

Bounded waits: MLflow's own HTTP defaults (a 120 s timeout, 7 retries with backoff) keep a run
waiting for minutes on a tracking server that accepts connections and never answers. While this
logger works it sets MLflow's `MLFLOW_HTTP_REQUEST_TIMEOUT` / `MLFLOW_HTTP_REQUEST_MAX_RETRIES` /
`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` from its `timeout_s` and `max_retries` args (put back in
`close()`), probes an http(s) tracking URI with a TCP connect first, and turns a failure to reach
the server into one line naming it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

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
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="seconds to wait for each HTTP answer of a tracking server (connect and read)"
    )
    max_retries: int = Field(1, ge=0, le=5, description="retries of a failed HTTP request (no backoff wait)")


class TrackingServerUnreachable(ConnectionError):
    """The tracking server did not answer (in time): one line naming it, no MLflow internals."""


def _http_settings(args: MlflowArgs) -> dict[str, str]:
    """MLflow's environment knobs for one request's wait; read by MLflow at every request."""
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{args.timeout_s:g}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(args.max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    }


def probe(uri: str, timeout: float) -> None:
    """A TCP connect to an http(s) tracking URI, so a closed port or an unroutable host is one line
    at once rather than MLflow's retries; other URIs (files, sqlite, databricks) are left alone."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise TrackingServerUnreachable(f"MLflow tracking server {uri}: cannot connect ({reason})") from None


@contextmanager
def reaching(uri: str, timeout: float) -> Iterator[None]:
    """Name the server in one line when a request to it fails (MLflow's own message is a paragraph)."""
    try:
        yield
    except TrackingServerUnreachable:
        raise
    except Exception as exc:
        if urlsplit(uri).scheme not in ("http", "https"):
            raise
        text = " ".join(str(exc).split())
        if "timed out" in text.lower() or "timeout" in text.lower():
            raise TrackingServerUnreachable(
                f"MLflow tracking server {uri}: no answer within {timeout:g} s (the logger's "
                "timeout_s and max_retries set the wait)"
            ) from None
        raise TrackingServerUnreachable(f"MLflow tracking server {uri}: {text[:200]}") from None


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
        self._saved_env: dict[str, str | None] | None = None

    def on_run_start(self, info: RunStartInfo) -> None:
        import mlflow

        self.mlflow = mlflow
        settings = _http_settings(self.args)
        self._saved_env = {k: os.environ.get(k) for k in settings}  # put back in close()
        os.environ.update(settings)
        if self.args.tracking_uri:
            self._previous_uri = mlflow.get_tracking_uri()  # put back in close(): the caller's own setting
            mlflow.set_tracking_uri(self.args.tracking_uri)
        uri = str(mlflow.get_tracking_uri())
        probe(uri, self.args.timeout_s)
        with reaching(uri, self.args.timeout_s):
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
        for key, value in (self._saved_env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.mlflow, self.run_id, self._previous_uri, self._saved_env = None, None, None, None
