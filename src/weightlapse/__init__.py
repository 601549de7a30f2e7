"""weightlapse: record what happens inside a neural network while it trains, and see it.

>>> import weightlapse
>>> with weightlapse.create("runs/demo") as run:
...     run.log(0, {"dense/kernel": kernel}, loss=0.5)
>>> weightlapse.open("runs/demo")["dense/kernel"].stats["l2"]

Framework recorders: `weightlapse.keras.Recorder`, `weightlapse.torch.watch`.
Names load on first use, so `import weightlapse` stays fast (no matplotlib until a view
is drawn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "MissingDependencyError": "weightlapse.errors",
    "RecordingError": "weightlapse.errors",
    "RunFormatError": "weightlapse.errors",
    "StepNotRecordedError": "weightlapse.errors",
    "UnknownNameError": "weightlapse.errors",
    "UnknownTensorError": "weightlapse.errors",
    "WeightlapseError": "weightlapse.errors",
    "Every": "weightlapse.record.schedule",
    "LogSpaced": "weightlapse.record.schedule",
    "PerEpoch": "weightlapse.record.schedule",
    "Run": "weightlapse.run",
    "TensorHistory": "weightlapse.history",
    "open": "weightlapse.run",
    "RunWriter": "weightlapse.run_writer",
    "create": "weightlapse.run_writer",
    "Finding": "weightlapse.health",
    "diagnose": "weightlapse.health",
    "activations": "weightlapse.interpret.activations",
    "load_weights": "weightlapse.io.importing",
    "activation_grid": "weightlapse.views.activations",
    "animate": "weightlapse.views.animate",
    "attribution_grid": "weightlapse.views.attributions",
    "attribution_map": "weightlapse.views.attributions",
    "attribution_overlay": "weightlapse.views.attributions",
    "filter_grid": "weightlapse.views.filters",
    "heatmap": "weightlapse.views.heatmap",
    "histogram_ridgeline": "weightlapse.views.histograms",
    "histograms_over_time": "weightlapse.views.histograms",
    "overview": "weightlapse.views.statistics",
    "statistics_over_time": "weightlapse.views.statistics",
    "trajectories": "weightlapse.views.trajectories",
    "weight_images": "weightlapse.views.weight_images",
    "widget": "weightlapse.nbwidget",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'weightlapse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from weightlapse.errors import (  # noqa: F401
        MissingDependencyError,
        RecordingError,
        RunFormatError,
        StepNotRecordedError,
        UnknownNameError,
        UnknownTensorError,
        WeightlapseError,
    )
    from weightlapse.health import Finding, diagnose  # noqa: F401
    from weightlapse.history import TensorHistory  # noqa: F401
    from weightlapse.interpret.activations import activations  # noqa: F401
    from weightlapse.io.importing import load_weights  # noqa: F401
    from weightlapse.nbwidget import widget  # noqa: F401
    from weightlapse.record.schedule import Every, LogSpaced, PerEpoch  # noqa: F401
    from weightlapse.run import Run, open  # noqa: F401
    from weightlapse.run_writer import RunWriter, create  # noqa: F401
    from weightlapse.views.activations import activation_grid  # noqa: F401
    from weightlapse.views.animate import animate  # noqa: F401
    from weightlapse.views.attributions import (  # noqa: F401
        attribution_grid,
        attribution_map,
        attribution_overlay,
    )
    from weightlapse.views.filters import filter_grid  # noqa: F401
    from weightlapse.views.heatmap import heatmap  # noqa: F401
    from weightlapse.views.histograms import histogram_ridgeline, histograms_over_time  # noqa: F401
    from weightlapse.views.statistics import overview, statistics_over_time  # noqa: F401
    from weightlapse.views.trajectories import trajectories  # noqa: F401
    from weightlapse.views.weight_images import weight_images  # noqa: F401
