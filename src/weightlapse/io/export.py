"""Runs out to other tools: TensorBoard event files (scalars and statistics, every
histogram at every step, the pictures of every snapshot) and .npz (every snapshot, named
by tensor and step)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.names import resolve_tensors
from weightlapse.run import Run
from weightlapse.store.layout import STAT_NAMES


def export_npz(run: Run, out: str | Path, tensors: Sequence[str] | None = None) -> Path:
    """Snapshots as arrays named '{tensor}@{step}' (and '{kind}:{tensor}@{step}' for
    activations and other kinds); `tensors` (names, layers, globs) limits them.

    >>> export_npz(weightlapse.open("runs/x"), "x.npz")
    """
    arrays: dict[str, np.ndarray] = {}
    for kind, name in _chosen(run, tensors):
        prefix = "" if kind == "param" else f"{kind}:"
        history = run.history(name, kind)
        for step in history.snapshot_steps:
            arrays[f"{prefix}{name}@{step}"] = history.at(step)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


IMAGES = ("none", "snapshots", "all")
Progress = Callable[[int, int], None]  # (done, total): called as the export goes on


def export_tensorboard(
    run: Run,
    logdir: str | Path,
    *,
    images: str = "snapshots",
    tensors: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Event files a stock TensorBoard reads:
    - scalars: the run's own (`scalars/loss`), every recorded statistic of every tensor
      (`param.l2/conv1.weight`, `grad.nan/...`; see docs/format.md), and the update
      ratio ||dW||/||W|| (`update_ratio/...`) when updates were recorded;
    - histograms of every tensor at every recorded step (`param/conv1.weight`);
    - images (`images=`): "snapshots" (default) draws each tensor's best picture at each
      of its snapshots (filter grid, per-unit images, matrix; activation maps of the
      probe inputs); "all" every image view that fits; "none" no images.
    `tensors` (names, layers or globs) limits the tensors; the scalars always go.

    >>> export_tensorboard(weightlapse.open("runs/x"), "tb/x")   # tensorboard --logdir tb
    """
    if images not in IMAGES:
        raise WeightlapseError(f"images={images!r}: choose one of {', '.join(IMAGES)}.")
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as exc:
        raise MissingDependencyError("tensorboard", "export") from exc
    jobs = _chosen(run, tensors)
    drawings = _image_jobs(run, jobs, images)
    total, done = 1 + len(jobs) + len(drawings), 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    # TensorBoard's own record writer on a plain file: its EventFileWriter would import
    # TensorFlow (6 s here) only to open that file.
    name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.0"
    steps = run.steps
    wall = {int(s): float(t) for s, t in zip(steps, run.wall_times) if np.isfinite(t)}
    now = time.time()
    with (logdir / name).open("wb") as file:
        writer = RecordWriter(file)
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())

        def emit(step: int, value: Any) -> None:
            summary = Summary(value=[value])
            writer.write(
                Event(wall_time=wall.get(step, now), step=step, summary=summary).SerializeToString()
            )

        for scalar, values in run.scalars.items():
            _scalar_series(emit, Summary, f"scalars/{scalar}", steps, values)
        advance()
        for kind, tensor in jobs:
            _tensor_series(run, emit, Summary, kind, tensor)
            advance()
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for step, tag, png, shape in pool.map(lambda job: _draw(run, *job), drawings):
                image = Summary.Image(
                    height=shape[0], width=shape[1], colorspace=3, encoded_image_string=png
                )
                emit(step, Summary.Value(tag=tag, image=image))
                advance()
    return logdir


PER_TENSOR = ("param", "grad", "update")  # kinds named by tensor; the others by layer


def _chosen(run: Run, tensors: Sequence[str] | None) -> list[tuple[str, str]]:
    """(kind, name) of every tensor to export. Activations and attributions are named by
    layer: a chosen tensor brings its layer's."""
    jobs = [(kind, name) for kind in run.kinds for name in run.names(kind)]
    if not tensors:
        return jobs
    chosen = set(resolve_tensors(run, tensors))
    layers = {run.tensor_info(t).get("layer") for t in chosen}
    return [(k, n) for k, n in jobs if n in chosen or (k not in PER_TENSOR and n in layers)]


def _scalar_series(emit: Any, summary: Any, tag: str, steps: Any, values: Any) -> None:
    for step, v in zip(steps, values):
        if np.isfinite(v):
            emit(int(step), summary.Value(tag=tag, simple_value=float(v)))


def _tensor_series(run: Run, emit: Any, summary: Any, kind: str, name: str) -> None:
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    history = run.history(name, kind)
    stats = history.stats
    for stat in STAT_NAMES:
        _scalar_series(emit, summary, f"{kind}.{stat}/{name}", stats.steps, stats[stat])
    if kind == "param" and "update" in run.kinds and name in run.names("update"):
        ratio = history.update_ratio
        _scalar_series(emit, summary, f"update_ratio/{name}", ratio.steps, ratio.values)
    hist = history.histograms
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
        emit(int(step), summary.Value(tag=f"{kind}/{name}", histo=proto))


def _image_jobs(run: Run, jobs: list[tuple[str, str]], images: str) -> list[tuple]:
    """(view, kind, name, step) for every picture to draw."""
    from weightlapse.views.registry import image_views_for

    if images == "none":
        return []
    out = []
    for kind, name in jobs:
        if kind not in ("param", "activation", "attribution"):
            continue
        fitting = image_views_for(run, name, kind)
        for view in fitting[: 1 if images == "snapshots" else None]:
            out += [(view, kind, name, s) for s in run.history(name, kind).snapshot_steps]
    return out


def _draw(run: Run, view: str, kind: str, name: str, step: int) -> tuple:
    from weightlapse.views.pixels import mosaic_of, png_bytes, rgb8, upscale_for
    from weightlapse.views.registry import VIEWS

    pixels = rgb8(mosaic_of(VIEWS[view].panels(run, name, step=step)))
    scale = upscale_for(pixels)
    png = png_bytes(pixels, scale)
    return step, f"{view}/{name}", png, (pixels.shape[0] * scale, pixels.shape[1] * scale)
