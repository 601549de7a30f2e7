"""Filter grids (user story 4): every filter of a conv layer in one grid image.

Kernels are brought to (out, in, *spatial) from their recorded layout: Keras stores
(h, w, in, out), PyTorch (out, in, h, w). Three input channels make RGB filters; any
other count gives one grayscale grid per input channel (or the chosen `channel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks.layouts import to_out_in_spatial
from weightlapse.run import Run
from weightlapse.views.colors import nonfinite_note
from weightlapse.views.panels import Panels, draw_panels, tile


def filter_panels(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    layout: str | None = None,
    channel: int | None = None,
    scale: str = "grid",
    rgb: bool | None = None,
    ncols: int | None = None,
) -> Panels:
    """The data of a filter grid at one step (see `filter_grid`)."""
    kernel, where, run_layout = _kernel(source, name, step)
    k = to_out_in_spatial(kernel, layout if layout is not None else run_layout)
    if scale not in ("grid", "filter"):
        raise WeightlapseError(f"scale={scale!r}: scale per 'grid' or per 'filter'.")
    n_out, n_in = k.shape[:2]
    k = _as_images(k)  # (out, in, h, w)
    label = name or "kernel"
    use_rgb = (n_in == 3) if rgb is None else rgb
    if use_rgb and n_in != 3:
        raise WeightlapseError(f"rgb=True needs 3 input channels; {label} has {n_in}.")
    if channel is not None and not 0 <= channel < n_in:
        raise WeightlapseError(f"channel={channel}: {label} has input channels 0..{n_in - 1}.")
    title = f"{label}{where}: {n_out} filters x {n_in} input channels{nonfinite_note(kernel)}"
    if use_rgb and channel is None:
        cells = np.moveaxis(k, 1, -1)  # (out, h, w, 3)
        cells = _scaled(cells, scale, per_axis=(1, 2, 3))
        mosaic = tile(cells, ncols, pad_value=1.0)
        return Panels([mosaic], ["RGB filters"], [(0.0, 1.0)], "gray", title, ncols=1)
    channels = [channel] if channel is not None else list(range(n_in))
    images, limits = [], []
    for c in channels:
        cells = k[:, c]
        if scale == "filter":
            cells = _scaled(cells, scale, per_axis=(1, 2))
            lo, hi = 0.0, 1.0
        else:
            finite = cells[np.isfinite(cells)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            hi = hi if hi > lo else lo + 1.0
        images.append(tile(cells, ncols, pad_value=hi))
        limits.append((lo, hi))
    titles = [f"input channel {c}" for c in channels]
    label_bar = "weight" if scale == "grid" and len(channels) == 1 else None
    return Panels(
        images, titles, limits, "gray", title, colorbar_label=label_bar, ncols=min(len(images), 4)
    )


def filter_grid(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    fig: Figure | None = None,
    **options: Any,
) -> Figure:
    """All filters of a conv kernel in one grid; RGB for 3 input channels, else a
    grayscale grid per input channel. `scale='filter'` scales each filter alone.

    >>> filter_grid(run, "conv1.weight", step=-1).savefig("filters.png")
    >>> filter_grid(np.random.randn(3, 3, 1, 8), layout="h,w,in,out")
    """
    return draw_panels(filter_panels(source, name, step=step, **options), fig=fig)


def _kernel(source: Run | np.ndarray, name: str | None, step: int) -> tuple[np.ndarray, str, str]:
    if isinstance(source, Run):
        if name is None:
            raise WeightlapseError("filter_grid(run, name): name the conv kernel to draw.")
        history = source[name]
        step = history.snapshot_step(step)
        return history.at(step), f" at step {step}", history.layout
    return np.asarray(source, dtype=np.float64), "", ""


def _as_images(k: np.ndarray) -> np.ndarray:
    """(out, in, *spatial) -> (out, in, h, w): 1-D filters become one-pixel-high strips,
    3-D filters their depth slices side by side."""
    if k.ndim == 3:
        return k[:, :, None, :]
    if k.ndim == 5:
        out, n_in, d, h, w = k.shape
        return np.transpose(k, (0, 1, 3, 2, 4)).reshape(out, n_in, h, d * w)
    return k


def _scaled(cells: np.ndarray, scale: str, per_axis: tuple[int, ...]) -> np.ndarray:
    """Into [0, 1]: over all cells ('grid') or each cell alone ('filter')."""
    axes = per_axis if scale == "filter" else tuple(range(cells.ndim))
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(cells), cells, np.nan)
        lo = np.nanmin(finite, axis=axes, keepdims=True)
        hi = np.nanmax(finite, axis=axes, keepdims=True)
        width = np.where(hi > lo, hi - lo, 1.0)
        return np.where(np.isfinite(cells), (cells - lo) / width, np.nan)
