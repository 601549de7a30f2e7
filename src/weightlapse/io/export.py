"""Runs out to other tools: TensorBoard event files (scalars, every histogram at every
step, filter-grid images) and .npz (every snapshot, named by tensor and step)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.run import Run
from weightlapse.store.layout import STAT_NAMES


def export_npz(run: Run, out: str | Path) -> Path:
    """Snapshots as arrays named '{tensor}@{step}' (and '{kind}:{tensor}@{step}' for
    activations and other kinds).

    >>> export_npz(weightlapse.open("runs/x"), "x.npz")
    """
    arrays: dict[str, np.ndarray] = {}
    for kind in run.kinds:
        prefix = "" if kind == "param" else f"{kind}:"
        for name in run.names(kind):
            history = run.history(name, kind)
            for step in history.snapshot_steps:
                arrays[f"{prefix}{name}@{step}"] = history.at(step)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def export_tensorboard(run: Run, logdir: str | Path, *, images: bool = True) -> Path:
    """Event files a stock TensorBoard reads: every scalar, every tensor's histogram at
    every recorded step (params, gradients, updates), and conv kernels as filter-grid
    images at their snapshot steps.

    >>> export_tensorboard(weightlapse.open("runs/x"), "tb/x")   # tensorboard --logdir tb
    """
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise MissingDependencyError("tensorboard", "export") from exc
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    steps = run.steps
    times = run.wall_times
    wall = {int(s): float(t) if np.isfinite(t) else time.time() for s, t in zip(steps, times)}

    def emit(step: int, value: Any) -> None:
        writer.add_event(
            Event(wall_time=wall.get(step, time.time()), step=step, summary=Summary(value=[value]))
        )

    for name, values in run.scalars.items():
        for step, v in zip(steps, values):
            if np.isfinite(v):
                emit(int(step), Summary.Value(tag=f"scalars/{name}", simple_value=float(v)))
    for kind in run.kinds:
        for name in run.names(kind):
            history = run.history(name, kind)
            hist, stats = history.histograms, history.stats
            for i, step in enumerate(hist.steps):
                row = dict(zip(STAT_NAMES, stats.table[i]))
                if not np.isfinite(row["min"]):
                    continue
                finite = float(hist.counts[i].sum())
                proto = HistogramProto(
                    min=row["min"],
                    max=row["max"],
                    num=finite,
                    sum=row["mean"] * finite,
                    sum_squares=row["l2"] ** 2,
                    bucket_limit=hist.edges[i, 1:].tolist(),
                    bucket=hist.counts[i].astype(float).tolist(),
                )
                emit(int(step), Summary.Value(tag=f"{kind}/{name}", histo=proto))
    if images:
        _filter_images(run, emit, Summary)
    writer.flush()
    writer.close()
    return logdir


def _filter_images(run: Run, emit: Any, summary: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from weightlapse.views.filters import filter_grid

    for name in run.tensors:
        history = run[name]
        if len(history.shape) != 4 or not history.snapshot_steps:
            continue
        for step in history.snapshot_steps:
            fig = filter_grid(run, name, step=step)
            buffer = io.BytesIO()
            FigureCanvasAgg(fig).print_png(buffer)
            width, height = (int(v) for v in fig.canvas.get_width_height())
            image = summary.Image(
                height=height, width=width, colorspace=4, encoded_image_string=buffer.getvalue()
            )
            emit(int(step), summary.Value(tag=f"filters/{name}", image=image))
