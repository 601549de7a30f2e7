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
    UnknownNameError,
    UnknownTensorError,
    WeightlapseError,
)
from weightlapse.health import Finding, diagnose
from weightlapse.interpret.activations import activations
from weightlapse.io.checkpoints import load_weights
from weightlapse.record.schedule import Every, LogSpaced, PerEpoch
from weightlapse.run import Run, TensorHistory, create, open
from weightlapse.views.activations import activation_grid
from weightlapse.views.animate import animate
from weightlapse.views.attributions import attribution_grid, attribution_map, attribution_overlay
from weightlapse.views.filters import filter_grid
from weightlapse.views.heatmap import heatmap
from weightlapse.views.histograms import histogram_ridgeline, histograms_over_time
from weightlapse.views.statistics import overview, statistics_over_time
from weightlapse.views.trajectories import trajectories
from weightlapse.views.weight_images import weight_images

__version__ = "0.1.0"

__all__ = [
    "Every",
    "Finding",
    "LogSpaced",
    "MissingDependencyError",
    "PerEpoch",
    "RecordingError",
    "Run",
    "RunFormatError",
    "StepNotRecordedError",
    "TensorHistory",
    "UnknownNameError",
    "UnknownTensorError",
    "WeightlapseError",
    "activation_grid",
    "activations",
    "animate",
    "attribution_grid",
    "attribution_map",
    "attribution_overlay",
    "create",
    "diagnose",
    "filter_grid",
    "heatmap",
    "histogram_ridgeline",
    "histograms_over_time",
    "load_weights",
    "open",
    "overview",
    "statistics_over_time",
    "trajectories",
    "weight_images",
]
