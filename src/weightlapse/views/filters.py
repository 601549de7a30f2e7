"""Filter grids (user story 4): every filter of a conv layer in one grid image.

Kernels are brought to (out, in, *spatial) from their recorded layout: Keras stores
(h, w, in, out), PyTorch (out, in, h, w). Three input channels make RGB filters; any
other count gives one grid per input channel (or the chosen `channel`). Signed weights
are drawn on one symmetric diverging scale for the whole figure, with a colour bar;
gaps between filters take a grey no weight takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks.layouts import to_out_in_spatial
from weightlapse.run import Run
from weightlapse.views.colors import DIVERGING, nonfinite_note, symmetric_limit
from weightlapse.views.panels import Panels, draw_panels, tile_with_gaps


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
    if scale == "filter":  # each filter alone: shapes show, magnitudes do not compare
        peak = np.nanmax(np.where(np.isfinite(k), np.abs(k), np.nan), axis=(1, 2, 3), keepdims=True)
        k = k / np.where(peak > 0, peak, 1.0)
        limit = 1.0
        title += "; each filter scaled to its own max |w|"
    else:
        limit = symmetric_limit(k)
    if use_rgb and channel is None:
        # signed weights as colour: 0 is mid grey, +limit full, -limit none, per channel
        cells = 0.5 + 0.5 * np.clip(np.moveaxis(k, 1, -1) / limit, -1.0, 1.0)
        mosaic, gaps = tile_with_gaps(cells, ncols)
        return Panels(
            [mosaic],
            [f"RGB filters: grey = 0, full colour = +{limit:.3g}, none = -{limit:.3g}"],
            [(0.0, 1.0)],
            DIVERGING,
            title,
            ncols=1,
            gaps=[gaps],
        )
    channels = [channel] if channel is not None else list(range(n_in))
    images, gap_masks = [], []
    for c in channels:
        mosaic, gaps = tile_with_gaps(k[:, c], ncols)
        images.append(mosaic)
        gap_masks.append(gaps)
    titles = [f"input channel {c}" for c in channels]
    return Panels(
        images,
        titles,
        [(-limit, limit)] * len(images),  # one symmetric scale for the whole figure
        DIVERGING,
        title,
        colorbar_label="weight / its filter's max |w|" if scale == "filter" else "weight",
        ncols=min(len(images), 4),
        gaps=gap_masks,
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
    grid per input channel, on one symmetric scale. `scale='filter'` scales each filter
    alone (and says so in the title).

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
