"""What is inside a saved-weights file: a row of statistics per tensor, and the views
that fit each layer (filter grids, class templates, heat maps, histograms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from weightlapse.frameworks.layouts import input_axis
from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.stats import Segments, summarize_host
from weightlapse.run import Run
from weightlapse.store.layout import STAT_NAMES
from weightlapse.views.filters import filter_grid
from weightlapse.views.heatmap import heatmap
from weightlapse.views.histograms import histogram_ridgeline
from weightlapse.views.weight_images import weight_images

NUMPY = NumpyOps()


def tensor_rows(tensors: dict[str, np.ndarray], progress: bool = False) -> list[dict[str, object]]:
    """name, shape, dtype, size and the recorder's statistics of every tensor: in
    batches of tensors (one statistics pass per batch), so time grows with the data."""
    names = list(tensors)
    rows: list[dict[str, object]] = []
    batches = [names[i : i + 4096] for i in range(0, len(names), 4096)]
    if progress and len(names) > 4096:
        from rich.progress import track

        batches = track(batches, description="statistics", transient=True)
    for batch in batches:
        arrays = [np.asarray(tensors[n]) for n in batch]
        flat = NUMPY.host_copy(arrays)
        sizes = [a.size for a in arrays]
        segments = Segments.build(sizes, [np.zeros(0, dtype=np.int64)] * len(sizes))
        stats = summarize_host(flat, segments).stats
        for name, array, row in zip(batch, arrays, stats):
            rows.append(
                {
                    "name": name,
                    "shape": tuple(array.shape),
                    "dtype": str(array.dtype),
                    "size": int(array.size),
                    **dict(zip(STAT_NAMES, row.tolist())),
                }
            )
    return rows


def write_views(run: Run, out_dir: str | Path) -> list[Path]:
    """The views that fit each tensor of a one-step run, as PNGs in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    first_dense = True

    def save(fig: object, stem: str) -> None:
        path = out / f"{stem.replace('/', '_').replace('.', '_')}.png"
        fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
        written.append(path)

    for name in run.tensors:
        history = run[name]
        shape = history.shape
        if int(np.prod(shape)) < 2:
            continue
        if len(shape) in (3, 4, 5):
            save(filter_grid(run, name, step=0), f"{name}-filters")
        if len(shape) == 2:
            axis = input_axis(history.layout)
            n_in = shape[axis] if axis is not None else max(shape)
            if first_dense and math.isqrt(n_in) ** 2 == n_in and n_in >= 16:
                save(weight_images(run, name, step=0), f"{name}-weights")
                first_dense = False
            save(heatmap(run, name, step=0), f"{name}-heatmap")
        save(histogram_ridgeline(run, name, steps=[0]), f"{name}-histogram")
    return written
