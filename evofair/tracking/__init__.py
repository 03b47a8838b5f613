"""Following a run: callbacks, the TensorBoard and MLflow loggers, logging and progress.

See docs/operations.md ("Following a run"). The loggers' modules import their tracker package
only when a logger is built, so `import evofair` never needs tensorboard or mlflow.
"""

from evofair.tracking.callbacks import Callback, CallbackError, GenerationInfo, ModelInfo, RunInfo, RunStartInfo

__all__ = ["Callback", "CallbackError", "GenerationInfo", "ModelInfo", "RunInfo", "RunStartInfo"]
