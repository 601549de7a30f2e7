"""A run as the tables analysts use: an xarray Dataset with named, labelled dimensions
(step, tensor, stat, bin) and a long pandas DataFrame of statistics. xarray and pandas
are imported here only, when asked for."""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.store.layout import STAT_NAMES

# `run` is a weightlapse Run: this module reads it through its public methods only, so
# that Run (which offers these as methods) can import it.
Run = Any


def to_xarray(run: Run, kind: str = "param") -> Any:
    """Statistics (step, tensor, stat), histogram counts (step, tensor, bin) and every
    scalar (step) of one kind's tensors; steps where a tensor was not recorded are NaN.

    >>> ds = weightlapse.open("runs/a").to_xarray(); ds.stats.sel(stat="l2", tensor="fc.weight")
    """
    try:
        import xarray as xr
    except ImportError as exc:
        raise MissingDependencyError("xarray", "analysis") from exc
    names = run.names(kind)
    steps = run.steps
    stats = np.full((len(steps), len(names), len(STAT_NAMES)), np.nan)
    bins = next((run.history(n, kind).histograms.counts.shape[1] for n in names), 0)
    counts = np.zeros((len(steps), len(names), bins), dtype=np.int64)
    for t, name in enumerate(names):
        history = run.history(name, kind)
        rows = np.searchsorted(steps, history.stats.steps)
        stats[rows, t] = history.stats.table
        hist = history.histograms  # on the steps that have one
        counts[np.searchsorted(steps, hist.steps), t] = hist.counts
    data = {
        "stats": (("step", "tensor", "stat"), stats),
        "hist": (("step", "tensor", "bin"), counts),
    }
    for scalar, values in run.scalars.items():
        data[scalar] = (("step",), values)
    coords = {
        "step": steps,
        "tensor": names,
        "stat": list(STAT_NAMES),
        "epoch": ("step", run.epochs),
        "wall_time": ("step", run.wall_times),
    }
    return xr.Dataset(data, coords=coords, attrs={"kind": kind, "path": str(run.path)})


def to_pandas(run: Run, kind: str = "param") -> Any:
    """One row per (tensor, step): its statistics, with the step's epoch.

    >>> df = weightlapse.open("runs/a").to_pandas(); df[df.tensor == "fc.weight"].l2.plot()
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError("pandas", "analysis") from exc
    epochs = dict(zip(run.steps.tolist(), run.epochs.tolist()))
    frames = []
    for name in run.names(kind):
        table = run.history(name, kind).stats
        frame = pd.DataFrame(table.table, columns=list(STAT_NAMES))
        frame.insert(0, "step", table.steps)
        frame.insert(0, "tensor", name)
        frame.insert(2, "epoch", [epochs[int(s)] for s in table.steps])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["tensor", "step", "epoch", *STAT_NAMES])
    return pd.concat(frames, ignore_index=True)
