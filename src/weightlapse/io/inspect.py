"""What is inside a saved-weights file: a row of statistics per tensor, and the views
that fit each layer (filter grids, class templates, heat maps, histograms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from weightlapse.frameworks.layouts import input_axis
from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.stats import Segments, summarize
from weightlapse.run import Run
from weightlapse.store.layout import STAT_NAMES
from weightlapse.views.filters import filter_grid
from weightlapse.views.heatmap import heatmap
from weightlapse.views.histograms import histogram_ridgeline
from weightlapse.views.weight_images import weight_images


def tensor_rows(tensors: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """name, shape, dtype, size and the recorder's statistics of every tensor."""
    rows = []
    for name, array in tensors.items():
        flat = np.asarray(array, dtype=np.float64).reshape(-1)
        segments = Segments.build([flat.size], [np.zeros(0, dtype=np.int64)])
        summary = summarize(
            NumpyOps(), [flat], segments, (segments.segment_ids, segments.probe_index)
        )
        stats = dict(zip(STAT_NAMES, summary.stats[0]))
        rows.append(
            {
                "name": name,
                "shape": tuple(array.shape),
                "dtype": str(array.dtype),
                "size": int(flat.size),
                **stats,
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
