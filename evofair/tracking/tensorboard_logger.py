"""TensorBoard logger (`callbacks: [{name: tensorboard}]`, extra `evofair[tensorboard]`).

Written with torch's own `torch.utils.tensorboard.SummaryWriter` (evofair already depends on
torch; only the `tensorboard` package is extra). What it logs, under the run's log folder:

- `run/hv_val`, `run/n_front`, `run/evaluations`, `run/seconds`: one point per generation
  (step = generation, the same numbers as history.csv);
- `models/<split>/<metric>`: every evaluated model's metrics (step = the model's running number
  in the run, i.e. evaluations before it), with `per_model: false` to leave them out;
- `front`: plots/front.png as an image at the end of the run;
- `recipe`: the resolved recipe as text at the start, and as hparams (flattened, dotted keys)
  with the final HV and front size at the end.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from evofair.core.registry import Args, component
from evofair.errors import UserError
from evofair.tracking.callbacks import Callback, GenerationInfo, ModelInfo, RunInfo, RunStartInfo

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

DEFAULT_SUBDIR = "tensorboard"


class TensorBoardArgs(Args):
    log_dir: str | None = Field(
        None,
        description="folder of TensorBoard runs; the run is written to "
        "LOG_DIR/<run folder name>. Unset: <run folder>/tensorboard",
    )
    per_model: bool = Field(True, description="also log every evaluated model's metrics")
    flush_secs: float = Field(10, gt=0, description="seconds between flushes of the event file")


def require(package: str, pip_name: str, extra: str | None = None) -> None:
    """A one-line `UserError` when an optional tracker package is missing (checked before any file is written)."""
    if importlib.util.find_spec(package) is None:
        how = f"pip install 'evofair[{extra}]' (or pip install {pip_name})" if extra else f"pip install {pip_name}"
        raise UserError(f"callbacks: the {package} package is not installed; {how}")


def flat_params(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested recipe as {dotted.key: scalar} (lists and None as text): trackers take flat params."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flat_params(v, f"{prefix}{k}."))
        return out
    key = prefix.rstrip(".")
    if isinstance(tree, (bool, int, float, str)):
        return {key: tree}
    return {key: "" if tree is None else str(tree)}


@component("callback", "tensorboard", TensorBoardArgs)
class TensorBoardLogger(Callback):
    """Per-generation HV / front size / evaluations / seconds, per-model metrics, the front plot and
    the recipe, to a TensorBoard event file."""

    def __init__(self, args: TensorBoardArgs | None = None, **kwargs: Any):
        require("tensorboard", "tensorboard", "tensorboard")
        self.args = args if args is not None else TensorBoardArgs(**kwargs)
        self.writer: SummaryWriter | None = None
        self.log_dir: Path | None = None
        self._recipe: Mapping[str, Any] = {}
        self._models = 0

    def on_run_start(self, info: RunStartInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from evofair.store.safe_io import check_inside

        if self.args.log_dir is None:
            self.log_dir = info.out / DEFAULT_SUBDIR
            check_inside(self.log_dir / "events", info.out)  # not through a linked folder
        else:
            self.log_dir = Path(self.args.log_dir).expanduser() / info.out.name
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=self.args.flush_secs)
        self._recipe = info.recipe
        self._models = 0
        if info.start_generation == 0:
            import yaml

            text = yaml.safe_dump(dict(info.recipe), sort_keys=False)
            self.writer.add_text("recipe", "```yaml\n" + text + "\n```", global_step=0)

    def on_model_evaluated(self, info: ModelInfo) -> None:
        self._models += 1
        if not self.args.per_model or self.writer is None:
            return
        for split, values in info.metrics.items():
            for name, value in values.items():
                self.writer.add_scalar(f"models/{split}/{name}", value, global_step=self._models - 1)

    def on_generation_end(self, info: GenerationInfo) -> None:
        w = self.writer
        if w is None:
            return
        if info.hv_val is not None:
            w.add_scalar("run/hv_val", info.hv_val, global_step=info.generation)
        w.add_scalar("run/n_front", info.n_front, global_step=info.generation)
        w.add_scalar("run/evaluations", info.evaluations, global_step=info.generation)
        w.add_scalar("run/seconds", info.seconds, global_step=info.generation)

    def on_run_end(self, info: RunInfo) -> None:
        w = self.writer
        if w is None:
            return
        last = info.history[-1] if info.history else {}
        step = int(last.get("generation", 0))
        if info.front_plot is not None and info.front_plot.is_file():
            import matplotlib.image

            image = matplotlib.image.imread(str(info.front_plot))  # float RGBA in [0, 1]
            w.add_image("front", image[..., :3], global_step=step, dataformats="HWC")
        metrics = {"final/n_front": float(last.get("n_front") or 0)}
        if last.get("hv_val") is not None:
            metrics["final/hv_val"] = float(last["hv_val"])
        w.add_hparams(flat_params(self._recipe), metrics, run_name=".", global_step=step)
        w.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
