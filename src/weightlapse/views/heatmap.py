"""Weight matrix heat maps: any 2-D weight (other tensors reshaped to 2-D) at a step, or
the difference between two steps. Matrices too big to draw pixel for pixel are reduced
by blocks with a stated method, never silently cut."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.views.colors import DIVERGING, nonfinite_note, symmetric_limit
from weightlapse.views.figure import new_figure
from weightlapse.views.panels import Panels, draw_panels

REDUCTIONS = ("mean", "maxabs")


def as_matrix(values: np.ndarray) -> np.ndarray:
    """1-D -> one row; N-D -> (first axis, everything else)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return values.reshape(1, 1)
    if values.ndim == 1:
        return values[None, :]
    return values.reshape(values.shape[0], -1)


def block_reduce(matrix: np.ndarray, max_size: int, method: str) -> tuple[np.ndarray, tuple]:
    """Blocks of (fr, fc) cells become one: their NaN-ignoring mean, or the value of
    largest magnitude ('maxabs', keeps sign). Returns the matrix and (fr, fc)."""
    if method not in REDUCTIONS:
        raise WeightlapseError(f"reduce={method!r}: choose one of {', '.join(REDUCTIONS)}.")
    rows, cols = matrix.shape
    fr, fc = math.ceil(rows / max_size), math.ceil(cols / max_size)
    if fr == 1 and fc == 1:
        return matrix, (1, 1)
    padded = np.full((math.ceil(rows / fr) * fr, math.ceil(cols / fc) * fc), np.nan)
    padded[:rows, :cols] = matrix
    blocks = padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(blocks.shape[0], blocks.shape[2], -1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        if method == "mean":
            return np.nanmean(blocks, axis=2), (fr, fc)
        magnitude = np.where(np.isnan(blocks), -1.0, np.abs(blocks))
        pick = np.argmax(magnitude, axis=2)[..., None]
        return np.take_along_axis(blocks, pick, axis=2)[..., 0], (fr, fc)


def heatmap_panels(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    minus_step: int | None = None,
    max_size: int = 512,
    reduce: str = "mean",
    limit: float | None = None,
    cmap: str = DIVERGING,
) -> Panels:
    """The data of `heatmap` at one step."""
    label = name or "weights"
    if isinstance(source, Run):
        if name is None:
            raise WeightlapseError("heatmap(run, name): name the tensor to draw.")
        history = source[name]
        step = history.snapshot_step(step)
        values = history.at(step).astype(np.float64)
        where = f" at step {step}"
        if minus_step is not None:
            values = values - history.at(minus_step)
            where = f": step {step} minus step {minus_step}"
    else:
        values, where = np.asarray(source, dtype=np.float64), ""
    if isinstance(source, Run) and values.ndim == 2:
        per_unit = _per_unit(source, name or "", values, limit, where, minus_step)
        if per_unit is not None:
            return per_unit
    matrix = as_matrix(values)
    shown, (fr, fc) = block_reduce(matrix, max_size, reduce)
    how = "" if (fr, fc) == (1, 1) else f"; {reduce} of {fr}x{fc} blocks"
    limit = limit or symmetric_limit(matrix)
    title = f"{label}{where} ({matrix.shape[0]}x{matrix.shape[1]}{how}){nonfinite_note(matrix)}"
    return Panels(
        [shown],
        [""],
        [(-limit, limit)],
        cmap,
        title,
        colorbar_label="difference" if minus_step is not None else "value",
        ncols=1,
    )


def _per_unit(
    run: Run, name: str, values: np.ndarray, limit: float | None, where: str, minus: int | None
) -> Panels | None:
    """A dense weight whose inputs are an image, or a long strip of flat features, reads
    better unit by unit: in the input's shape, or each unit's row wrapped."""
    from weightlapse.views.weight_images import weight_panels

    history = run[name]
    layer_input = run.meta.get("layer_inputs", {}).get(history.layer)
    strip = max(values.shape) > 8 * min(values.shape)
    if not (strip or (layer_input and len(layer_input) > 1)):
        return None
    try:
        panels = weight_panels(
            values,
            name,
            meta=run.meta,
            layer=history.layer,
            layout=history.layout,
            limit=limit or symmetric_limit(values),
        )
    except WeightlapseError:
        return None  # no shape to draw it in: the plain matrix
    panels.title = f"{name}{where}" + panels.title.removeprefix(name)
    panels.colorbar_label = "difference" if minus is not None else "value"
    return panels


def heatmap(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    fig: Figure | None = None,
    **options: Any,
) -> Figure:
    """A 2-D view of a tensor, symmetric diverging colours; `minus_step=` draws a change.

    >>> heatmap(run, "fc1.weight", step=1000, minus_step=0)
    >>> heatmap(np.random.randn(4096, 4096), reduce="maxabs")  # 8x8 blocks, said in the title
    """
    panels = heatmap_panels(source, name, step=step, **options)
    if len(panels.images) > 1:  # unit by unit: the panels' own layout
        return draw_panels(panels, fig=fig)
    rows, cols = panels.images[0].shape
    size = (min(12.0, 3 + cols / 40), min(12.0, 1.5 + rows / 40))
    return draw_panels(panels, fig=fig or new_figure(size))
