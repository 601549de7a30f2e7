"""Dense weights as images: each output unit's incoming weights drawn in the shape of that
layer's own input (user story 2: ten 28x28 class templates on one symmetric diverging
scale). Inputs that are C maps (conv features) give a mosaic of C maps per unit; RGB
inputs their three planes side by side; flat features a heat map, as the title says."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks.layouts import input_axis as layout_input_axis
from weightlapse.run import Run
from weightlapse.views.colors import DIVERGING, nonfinite_note, symmetric_limit
from weightlapse.views.panels import Panels, draw_panels, tile, tile_with_gaps

WRAP = 64  # flat inputs: a unit's row is wrapped into lines of about this many


def weight_panels(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    image_shape: Sequence[int] | None = None,
    channels_last: bool | None = None,
    input_axis: int | None = None,
    unit_names: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = DIVERGING,
    limit: float | None = None,
    meta: dict[str, Any] | None = None,
    layer: str = "",
    layout: str = "",
) -> Panels:
    """The data of `weight_images` at one step; `limit` fixes the colour scale (+/-limit).
    For an array, `meta`, `layer` and `layout` say what a run would (input shapes)."""
    meta = dict(meta or {})
    if isinstance(source, Run):
        if name is None:
            raise WeightlapseError("weight_images(run, name): name the tensor to draw.")
        history = source[name]
        step = history.snapshot_step(step)
        weights = history.at(step)
        meta, layout, layer = source.meta, history.layout, history.layer
    else:
        weights = np.asarray(source)
    label = name or "weights"
    if weights.ndim != 2:
        raise WeightlapseError(
            f"{label} has shape {weights.shape}; weight_images draws 2-D dense weights. "
            "For conv kernels use filter_grid."
        )
    axis = _input_axis(weights.shape, layout, input_axis, image_shape, meta, layer)
    per_unit = weights if axis == 1 else weights.T  # (units, inputs)
    n_units, n_inputs = per_unit.shape
    shape, last = _input_shape(n_inputs, image_shape, channels_last, meta, layer, label)
    limit = limit or symmetric_limit(weights)
    finite = weights[np.isfinite(weights)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
    where = f" at step {step}" if isinstance(source, Run) else ""
    images, gaps, what = _unit_images(per_unit, shape, last)
    if len(images) == 1 and n_units > 1:  # flat features: one heat map of all units
        titles, ncols = [f"{n_units} units x {n_inputs} inputs"], 1
    else:
        titles = list(unit_names) if unit_names else [f"unit {u}" for u in range(n_units)]
    return Panels(
        images=images,
        titles=titles,
        limits=[(-limit, limit)] * len(images),
        cmap=cmap,
        title=f"{label}{where}: {what}; min {lo:.3g}, max {hi:.3g}{nonfinite_note(weights)}",
        colorbar_label="weight",
        ncols=ncols or min(len(images), 5),
        gaps=gaps,
    )


def weight_images(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    fig: Figure | None = None,
    title: str | None = None,
    **options: Any,
) -> Figure:
    """One panel per output unit in the shape of the layer's input, all on one colour
    scale symmetric around zero.

    The input axis is read from the run's layout (Keras kernels are (in, out), PyTorch
    weights (out, in)); the input shape from the layer's recorded input, else the model's,
    else `image_shape=`. Options: image_shape, channels_last, input_axis, unit_names,
    ncols, cmap, limit.
    >>> weight_images(run, "dense/kernel", step=-1).savefig("templates.png")
    >>> weight_images(np.random.randn(784, 10), image_shape=(28, 28))
    """
    panels = weight_panels(source, name, step=step, **options)
    if title:
        panels.title = title
    return draw_panels(panels, fig=fig)


def has_image_inputs(run: Run, name: str) -> bool:
    """Whether each unit of a 2-D weight reads an image, as the run recorded it (the
    layer's own input, else the model's), so that per-unit images show what it looks
    for. A square input count alone is no evidence: a 256-wide hidden layer is not 16x16."""
    history = run[name]
    if len(history.shape) != 2:
        return False
    meta = run.meta
    axis = _input_axis(history.shape, history.layout, None, None, meta, history.layer)
    n_inputs = history.shape[axis]
    last = meta.get("channels") == "last"
    for shape in (meta.get("layer_inputs", {}).get(history.layer), meta.get("input_shape")):
        if shape and _size(shape) == n_inputs:
            return len(_squeezed(shape, last)[0]) >= 2
    return False


def _unit_images(
    per_unit: np.ndarray, shape: tuple[int, ...], last: bool
) -> tuple[list, list | None, str]:
    """Each unit's inputs as the image it is drawn as, where its gaps are (a mosaic's
    separators and padding take the gap colour, never the NaN colour), and what the title
    says of it."""
    n_units, n_inputs = per_unit.shape
    if len(shape) == 1:  # flat features: one heat map, each unit's row wrapped
        width = min(n_inputs, WRAP if n_inputs > 4 * WRAP else n_inputs)
        lines = math.ceil(n_inputs / width)
        padded = np.full((n_units, lines * width), np.nan)
        padded[:, :n_inputs] = per_unit
        image, gaps = tile_with_gaps(padded.reshape(n_units, lines, width), ncols=1)
        beyond = np.zeros((n_units, lines * width), dtype=bool)
        beyond[:, n_inputs:] = True  # the end of the last line holds no input
        gaps |= tile(beyond.reshape(n_units, lines, width).astype(float), ncols=1, pad_value=0) == 1
        wrap = f", each unit's row wrapped every {width}" if lines > 1 else ""
        return [image], [gaps], f"inputs are {n_inputs} flat features (a heat map{wrap})"
    if len(shape) == 2:
        images = [u.reshape(shape) for u in per_unit]
        return images, None, f"inputs are {shape[0]}x{shape[1]} images"
    maps = [_channel_maps(u, shape, last) for u in per_unit]  # each (C, h, w)
    channels, h, w = maps[0].shape
    if channels == 3:  # an RGB input: its three planes side by side, R G B
        images = [np.concatenate(list(m), axis=1) for m in maps]
        return images, None, f"inputs are {h}x{w} RGB: R, G, B"
    tiled = [tile_with_gaps(m) for m in maps]
    return (
        [t[0] for t in tiled],
        [t[1] for t in tiled],
        f"inputs are {channels} maps of {h}x{w} per unit",
    )


def _channel_maps(unit: np.ndarray, shape: tuple[int, ...], last: bool) -> np.ndarray:
    """A unit's inputs as (C, h, w), from (h, w, C) when channels come last."""
    if last:
        return np.moveaxis(unit.reshape(shape), -1, 0)
    return unit.reshape(shape)


def _input_axis(
    shape: tuple[int, ...],
    layout: str,
    input_axis: int | None,
    image_shape: Sequence[int] | None,
    meta: dict[str, Any],
    layer: str,
) -> int:
    if input_axis is not None:
        return input_axis
    from_layout = layout_input_axis(layout)
    if from_layout is not None:
        return from_layout
    wanted = (
        _size(image_shape)
        or _size(meta.get("layer_inputs", {}).get(layer))
        or _size(meta.get("input_shape"))
    )
    if wanted:
        for axis in (0, 1):
            if shape[axis] == wanted:
                return axis
    return 0 if shape[0] >= shape[1] else 1


def _input_shape(
    n_inputs: int,
    image_shape: Sequence[int] | None,
    channels_last: bool | None,
    meta: dict[str, Any],
    layer: str,
    label: str,
) -> tuple[tuple[int, ...], bool]:
    """The shape one unit's inputs are drawn in (1-D: flat), and whether channels come
    last in it."""
    last = meta.get("channels") == "last" if channels_last is None else channels_last
    if image_shape is not None:
        if _size(image_shape) != n_inputs:
            raise WeightlapseError(
                f"image_shape={tuple(image_shape)} holds {_size(image_shape)} values but each "
                f"unit of {label} has {n_inputs} inputs; give a shape whose product is "
                f"{n_inputs}."
            )
        return _squeezed(image_shape, last, explicit=True)
    own = meta.get("layer_inputs", {}).get(layer)
    if own and _size(own) == n_inputs:  # the layer's own input, as recorded
        return _squeezed(own, last)  # flat: hidden features, not an image
    model_input = meta.get("input_shape")
    if model_input and _size(model_input) == n_inputs and len(model_input) > 1:
        return _squeezed(model_input, last)
    side = math.isqrt(n_inputs)
    if side * side == n_inputs:
        return (side, side), last
    raise WeightlapseError(
        f"Cannot guess the image shape of {label}'s {n_inputs} inputs (not a square, and the "
        f"run has no input shape). Pass image_shape=(height, width)."
    )


def _squeezed(
    shape: Sequence[int], last: bool, explicit: bool = False
) -> tuple[tuple[int, ...], bool]:
    dims = tuple(int(d) for d in shape)
    if len(dims) == 3 and dims[-1 if last else 0] == 1:  # one channel: a plain image
        dims = dims[:-1] if last else dims[1:]
    if len(dims) == 3 and explicit and 3 in (dims[0], dims[-1]) and dims[0] != dims[-1]:
        last = dims[-1] == 3  # a given RGB shape says where its channels are
    return dims, last


def _size(shape: Sequence[int] | None) -> int:
    return int(np.prod([int(d) for d in shape])) if shape else 0
