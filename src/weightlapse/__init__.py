"""weightlapse: record what happens inside a neural network while it trains, and see it.

>>> import weightlapse
>>> with weightlapse.create("runs/demo") as run:
...     run.log(0, {"dense/kernel": kernel}, loss=0.5)
>>> weightlapse.open("runs/demo")["dense/kernel"].stats["l2"]

Framework recorders: `weightlapse.keras.Recorder`, `weightlapse.torch.watch`.
"""

from weightlapse.errors import (
    MissingDependencyError,
    RecordingError,
    RunFormatError,
    StepNotRecordedError,
    UnknownTensorError,
    WeightlapseError,
)
from weightlapse.record.schedule import Every, LogSpaced, PerEpoch
from weightlapse.run import Run, TensorHistory, create, open
from weightlapse.views.trajectories import trajectories
from weightlapse.views.weight_images import weight_images

__version__ = "0.1.0"

__all__ = [
    "Every",
    "LogSpaced",
    "MissingDependencyError",
    "PerEpoch",
    "RecordingError",
    "Run",
    "RunFormatError",
    "StepNotRecordedError",
    "TensorHistory",
    "UnknownTensorError",
    "WeightlapseError",
    "create",
    "open",
    "trajectories",
    "weight_images",
]
