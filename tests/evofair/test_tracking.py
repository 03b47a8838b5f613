"""Following a run: callbacks from Python and recipes, the TensorBoard and
MLflow loggers read back against history.csv / front.csv, and a failing callback that leaves the
store consistent and resumable."""

from __future__ import annotations

import copy
import csv
import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from tracking_parts import Recording

import evofair
from evofair.errors import UserError
from evofair.store.run_store import RunStore

HERE = Path(__file__).parent


def history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv") as fh:
        return list(csv.DictReader(fh))


def front_ids(out: Path) -> list[str]:
    with open(out / "front.csv") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


@pytest.fixture
def zdt_recipe(zdt_recipe):
    """conftest's 5-generation ZDT1 run, with a reference point its early fronts reach (HV > 0, changing)."""
    return {**zdt_recipe, "hv_ref": [10.0, 10.0]}


@pytest.fixture
def reference(tmp_path_factory, zdt_recipe):
    """The zdt recipe run once with no callback at all."""
    out = tmp_path_factory.mktemp("ref") / "run"
    evofair.run(zdt_recipe, out, progress=False)
    return out


def test_callbacks_see_every_model_and_generation_and_never_change_the_front(tmp_path, zdt_recipe, reference):
    rec = Recording()
    recipe = {**copy.deepcopy(zdt_recipe), "callbacks": [{"name": "tensorboard"}]}
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False, callbacks=[rec])
    # same front and HV history with two callbacks (one Python, one from the recipe) as with none
    assert (out / "front.csv").read_bytes() == (reference / "front.csv").read_bytes()
    assert [r["hv_val"] for r in history(out)] == [r["hv_val"] for r in history(reference)]

    (start,) = rec.of("start")
    assert start.start_generation == 0 and start.generations == 5 and start.objectives == ("f1", "f2")
    assert start.recipe["callbacks"] == [{"name": "tensorboard", "args": {}}]
    gens = rec.of("generation")
    rows = history(out)
    assert [g.generation for g in gens] == [int(r["generation"]) for r in rows] == [0, 1, 2, 3, 4]
    assert [f"{g.hv_val:.6g}" for g in gens] == [f"{float(r['hv_val']):.6g}" for r in rows]
    assert len({g.hv_val for g in gens}) > 2 and min(g.hv_val for g in gens) > 0  # a history worth comparing
    assert [g.n_front for g in gens] == [int(r["n_front"]) for r in rows]
    assert [g.evaluations for g in gens] == [int(r["evaluations"]) for r in rows]
    models = rec.of("model")
    assert len(models) == int(rows[-1]["evaluations"])
    store = RunStore(out, readonly=True)
    try:
        stored = {ind.id: ind for ind in store.individuals()}
    finally:
        store.close()
    assert {m.id for m in models} == set(stored)  # every evaluated model once, with its stored metrics
    for m in models[::17]:
        assert m.metrics == stored[m.id].metrics and m.objectives == {"f1": m.val["f1"], "f2": m.val["f2"]}
    (end,) = rec.of("end")
    assert [m.id for m in end.front] and sorted(m.id for m in end.front) == sorted(front_ids(out))
    assert [h["hv_val"] for h in end.history] == [g.hv_val for g in gens]
    assert end.front_plot == out / "plots" / "front.png" and rec.closed


def test_tensorboard_event_file_holds_history_csv(tmp_path, zdt_recipe):
    """The acceptance test: run with the TensorBoard logger, read the event file back with
    TensorBoard's own EventAccumulator, compare with history.csv."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = {**zdt_recipe, "callbacks": [{"name": "tensorboard"}]}
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    rows = history(out)
    for tag, column in [
        ("run/hv_val", "hv_val"),
        ("run/n_front", "n_front"),
        ("run/evaluations", "evaluations"),
        ("run/seconds", "seconds"),
    ]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [int(r["generation"]) for r in rows]
        # event files hold float32; history.csv prints 6 significant digits
        np.testing.assert_allclose([e.value for e in events], [float(r[column]) for r in rows], rtol=1e-5)
    # one point per evaluated model and metric; the last model's f1 equals the store's
    per_model = acc.Scalars("models/val/f1")
    assert len(per_model) == int(rows[-1]["evaluations"])
    store = RunStore(out, readonly=True)
    try:
        last = store.individuals()[-1]
    finally:
        store.close()
    assert per_model[-1].value == pytest.approx(last.metrics["val"]["f1"], rel=1e-6)
    assert "front" in acc.Tags()["images"]
    image = acc.Images("front")[0]
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and image.width > 100
    assert "recipe/text_summary" in acc.Tags()["tensors"]


def test_tensorboard_log_dir_names_the_run_folder(tmp_path, zdt_recipe):
    recipe = {
        **zdt_recipe,
        "algorithm": {**zdt_recipe["algorithm"], "generations": 2},
        "callbacks": [{"name": "tensorboard", "args": {"log_dir": str(tmp_path / "tb"), "per_model": False}}],
    }
    evofair.run(recipe, tmp_path / "my-run", progress=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb" / "my-run"))
    acc.Reload()
    assert "run/hv_val" in acc.Tags()["scalars"] and "models/val/f1" not in acc.Tags()["scalars"]
    assert not (tmp_path / "my-run" / "tensorboard").exists()


class _FakeMlflow(types.ModuleType):
    """A recording stand-in for mlflow's fluent API (mlflow itself is not installed here)."""

    def __init__(self):
        super().__init__("mlflow")
        self.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
        self.calls: list[tuple] = []
        self._active = None

    def get_tracking_uri(self):
        return "file:///the-callers-own"

    def set_tracking_uri(self, uri):
        self.calls.append(("set_tracking_uri", uri))

    def set_experiment(self, name):
        self.calls.append(("set_experiment", name))

    def active_run(self):
        return self._active

    def start_run(self, run_name=None, nested=False):
        self.calls.append(("start_run", run_name, nested))
        self._active = types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))
        return self._active

    def log_params(self, params):
        self.calls.append(("log_params", dict(params)))

    def log_metric(self, key, value, step=None):
        self.calls.append(("log_metric", key, value, step))

    def log_metrics(self, metrics, step=None):
        self.calls.append(("log_metrics", dict(metrics), step))

    def log_artifact(self, local_path, artifact_path=None):
        self.calls.append(("log_artifact", local_path, artifact_path))

    def end_run(self, status="FINISHED"):
        self.calls.append(("end_run", status))
        self._active = None

    def of(self, name):
        return [c[1:] for c in self.calls if c[0] == name]


def test_mlflow_logger_against_a_recording_stand_in(tmp_path, zdt_recipe, monkeypatch):
    """mlflow's public calls with the numbers of history.csv, on a recording stand-in module (runs
    whether or not mlflow is installed; the real store is read back in the next test)."""
    fake = _FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    recipe = {
        **zdt_recipe,
        "callbacks": [{"name": "mlflow", "args": {"tracking_uri": str(tmp_path / "mlruns"), "experiment": "zdt"}}],
    }
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    rows = history(out)
    assert fake.of("set_tracking_uri") == [(str(tmp_path / "mlruns"),), ("file:///the-callers-own",)]  # put back
    assert fake.of("set_experiment") == [("zdt",)]
    assert fake.of("start_run") == [("run", False)]
    ((params,),) = fake.of("log_params")
    assert params["algorithm.pop_size"] == 20 and params["problem.name"] == "zdt1" and params["seed"] == 3
    hv = [(step, value) for key, value, step in fake.of("log_metric") if key == "hv_val"]
    assert [s for s, _ in hv] == [int(r["generation"]) for r in rows]
    np.testing.assert_allclose([v for _, v in hv], [float(r["hv_val"]) for r in rows], rtol=1e-5)
    evals = [v for key, v, _ in fake.of("log_metric") if key == "evaluations"]
    assert evals == [int(r["evaluations"]) for r in rows]
    per_model = fake.of("log_metrics")
    assert len(per_model) == int(rows[-1]["evaluations"]) and [s for _, s in per_model] == list(range(len(per_model)))
    logged = {Path(p).relative_to(out).as_posix(): folder for p, folder in fake.of("log_artifact")}
    assert logged == {
        "plots/front.png": "plots",
        "plots/hv.png": "plots",
        "front.csv": None,
        "history.csv": None,
        "config.yaml": None,
        "report.md": None,
    }
    assert fake.calls[-2:] == [("end_run", "FINISHED"), ("set_tracking_uri", "file:///the-callers-own")]


def test_mlflow_logger_read_back_from_a_real_local_store(tmp_path, zdt_recipe, monkeypatch):
    """With mlflow installed (the `test` extra has mlflow-skinny): a real local tracking store, read
    back with MlflowClient: the HV history equals history.csv, the recipe is the params, the
    artifacts are there and the run is FINISHED."""
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a folder store without it
    uri = (tmp_path / "mlruns").as_uri()
    recipe = {**zdt_recipe, "callbacks": [{"name": "mlflow", "args": {"tracking_uri": uri, "experiment": "zdt"}}]}
    out = tmp_path / "run"
    evofair.run(recipe, out, progress=False)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("zdt").experiment_id])
    rows = history(out)
    hv = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "hv_val"))
    assert [s for s, _ in hv] == [int(r["generation"]) for r in rows]
    np.testing.assert_allclose([v for _, v in hv], [float(r["hv_val"]) for r in rows], rtol=1e-6)
    n_front = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "n_front"))
    assert [v for _, v in n_front] == [float(r["n_front"]) for r in rows]
    assert len(client.get_metric_history(run.info.run_id, "model.val.f1")) == int(rows[-1]["evaluations"])
    assert run.data.params["algorithm.pop_size"] == "20" and run.data.params["problem.name"] == "zdt1"
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "front.csv",
        "history.csv",
        "config.yaml",
        "report.md",
        "plots",
    }
    assert mlflow.get_tracking_uri() != uri  # the logger put the caller's tracking URI back


def test_mlflow_missing_is_one_line_before_anything_is_written(tmp_path, zdt_recipe, monkeypatch, capsys):
    from conftest import one_error_line

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow fails, as when not installed
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**zdt_recipe, "callbacks": [{"name": "mlflow"}]}))
    line = one_error_line(capsys, ["run", str(path), "--out", str(tmp_path / "out")], tmp_path / "out")
    assert "pip install mlflow" in line


@pytest.mark.parametrize(
    "callbacks, expected",
    [
        ([{"name": "wandb"}], "callbacks[0].name: unknown callback 'wandb'"),
        ([{"name": "tensorboard", "args": {"flush_secs": -1}}], "callbacks[0].args.flush_secs"),
        (
            [{"name": "tensorboard", "args": {"logdir": "x"}}],
            "callbacks[0].args.logdir: unknown key (did you mean 'log_dir'?)",
        ),
        ([{"name": "tracking_parts:Recording"}], "is not a callback"),
    ],
)
def test_bad_recipe_callbacks_are_one_line_and_write_nothing(tmp_path, zdt_recipe, capsys, callbacks, expected):
    from conftest import one_error_line

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**zdt_recipe, "callbacks": callbacks, "paths": [str(HERE)]}))
    line = one_error_line(capsys, ["run", str(path), "--out", str(tmp_path / "out")], tmp_path / "out")
    assert expected in line, line


def test_python_callbacks_must_be_callbacks(tmp_path, zdt_recipe):
    with pytest.raises(UserError, match=r"callbacks\[0\]: expected an evofair.tracking.Callback"):
        evofair.run(zdt_recipe, tmp_path / "out", progress=False, callbacks=[print])
    assert not (tmp_path / "out").exists()


def test_a_failing_callback_fails_the_run_in_one_line_and_resume_gives_the_same_front(
    tmp_path, zdt_recipe, reference, capsys
):
    """Decision: a callback that raises stops the run (one line, exit 2) after its generation was
    committed; the store verifies, the traceback is in the events and run.log, and `--resume` with
    the callback dropped finishes with the uninterrupted run's front."""
    from evofair.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **zdt_recipe,
                "paths": [str(HERE)],
                "callbacks": [{"name": "tracking_parts:RaiseAt", "args": {"at_generation": 2}}],
            }
        )
    )
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert (
        "callbacks[0] (tracking_parts:RaiseAt): on_generation_end raised ConnectionError: tracker "
        "unreachable at generation 2; generation 2 is committed"
        in err
        and "--resume" in err
    )
    store = RunStore(out, readonly=True)
    try:
        assert store.verify() == [] and store.last_generation()["generation"] == 2
        (event,) = store.events("callback_error")
        assert "ConnectionError" in event["data"]["traceback"]
    finally:
        store.close()
    log = (out / "run.log").read_text()
    assert "callback_error" in log and "Traceback (most recent call last)" in log and "raise ConnectionError" in log

    assert main(["run", "--resume", str(out), "--set", "callbacks=[]", "--quiet"]) == 0
    assert (out / "front.csv").read_bytes() == (reference / "front.csv").read_bytes()


def test_resume_may_change_callbacks_and_callbacks_hear_only_new_generations(tmp_path, zdt_recipe):
    short = {**zdt_recipe, "algorithm": {**zdt_recipe["algorithm"], "generations": 3}}
    out = tmp_path / "run"
    evofair.run(short, out, progress=False)
    rec = Recording()
    evofair.run(
        {**zdt_recipe, "callbacks": [{"name": "tensorboard", "args": {"per_model": False}}]},
        out,
        resume=True,
        progress=False,
        callbacks=[rec],
    )
    assert rec.of("start")[0].start_generation == 3
    assert [g.generation for g in rec.of("generation")] == [3, 4]
    store = RunStore(out, readonly=True)
    try:
        (changed,) = store.events("resume_recipe_changed")
    finally:
        store.close()
    assert "callbacks" in changed["data"]


def test_problems_lists_the_callbacks_and_their_args(capsys):
    from evofair.cli import main

    assert main(["problems"]) == 0
    out = capsys.readouterr().out.split("callbacks:\n", 1)[1]
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert {"tensorboard", "mlflow"} <= set(lines)
    assert "log_dir=None" in lines["tensorboard"] and "experiment='evofair'" in lines["mlflow"]
