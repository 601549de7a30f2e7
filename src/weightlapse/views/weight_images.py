"""Dense weights as images: each output unit's incoming weights drawn in the input's shape
(user story 2: ten 28x28 class templates on one symmetric diverging scale)."""

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
from weightlapse.views.panels import Panels, draw_panels


def weight_panels(
    source: Run | np.ndarray,
    name: str | None = None,
    *,
    step: int = -1,
    image_shape: Sequence[int] | None = None,
    input_axis: int | None = None,
    unit_names: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = DIVERGING,
    limit: float | None = None,
) -> Panels:
    """The data of `weight_images` at one step; `limit` fixes the colour scale (+/-limit)."""
    meta: dict[str, Any] = {}
    layout = ""
    if isinstance(source, Run):
        if name is None:
            raise WeightlapseError("weight_images(run, name): name the tensor to draw.")
        history = source[name]
        step = history.snapshot_step(step)
        weights = history.at(step)
        meta, layout = source.meta, history.layout
    else:
        weights = np.asarray(source)
    label = name or "weights"
    if weights.ndim != 2:
        raise WeightlapseError(
            f"{label} has shape {weights.shape}; weight_images draws 2-D dense weights. "
            "For conv kernels use filter_grid."
        )
    axis = _input_axis(weights.shape, layout, input_axis, image_shape, meta)
    per_unit = weights if axis == 1 else weights.T  # (units, inputs)
    shape = _image_shape(per_unit.shape[1], image_shape, meta, label)
    limit = limit or symmetric_limit(weights)
    finite = weights[np.isfinite(weights)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
    where = f" at step {step}" if isinstance(source, Run) else ""
    n_units = per_unit.shape[0]
    return Panels(
        images=[per_unit[u].reshape(shape) for u in range(n_units)],
        titles=list(unit_names) if unit_names else [f"unit {u}" for u in range(n_units)],
        limits=[(-limit, limit)] * n_units,
        cmap=cmap,
        title=f"{label}{where}: min {lo:.3g}, max {hi:.3g}, scale ±{limit:.3g}"
        f"{nonfinite_note(weights)}",
        colorbar_label="weight",
        ncols=ncols or min(n_units, 5),
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
    """One panel per output unit, all on one colour scale symmetric around zero.

    The input axis is read from the run's layout (Keras kernels are (in, out), PyTorch
    weights (out, in)); the image shape from the recorded model input, else a square.
    Options: image_shape, input_axis, unit_names, ncols, cmap, limit.
    >>> weight_images(run, "dense/kernel", step=-1).savefig("templates.png")
    >>> weight_images(np.random.randn(784, 10), image_shape=(28, 28))
    """
    panels = weight_panels(source, name, step=step, **options)
    if title:
        panels.title = title
    return draw_panels(panels, fig=fig)


def _input_axis(
    shape: tuple[int, ...],
    layout: str,
    input_axis: int | None,
    image_shape: Sequence[int] | None,
    meta: dict[str, Any],
) -> int:
    if input_axis is not None:
        return input_axis
    from_layout = layout_input_axis(layout)
    if from_layout is not None:
        return from_layout
    wanted = _size(image_shape) or _size(meta.get("input_shape"))
    if wanted:
        for axis in (0, 1):
            if shape[axis] == wanted:
                return axis
    return 0 if shape[0] >= shape[1] else 1


def _image_shape(
    n_inputs: int, image_shape: Sequence[int] | None, meta: dict[str, Any], label: str
) -> tuple[int, ...]:
    candidates = [image_shape, meta.get("input_shape")]
    for cand in candidates:
        if cand and _size(cand) == n_inputs:
            dims = tuple(int(d) for d in cand if int(d) != 1)
            if len(dims) == 2:
                return dims
            if len(dims) == 3 and 3 in (dims[0], dims[-1]):
                # RGB input: show the three channels side by side.
                h, w = (dims[0], dims[1]) if dims[-1] == 3 else (dims[1], dims[2])
                return (h, w * 3) if dims[-1] != 3 else (h, w * 3)
    if image_shape:
        raise WeightlapseError(
            f"image_shape={tuple(image_shape)} holds {_size(image_shape)} values but each unit "
            f"of {label} has {n_inputs} inputs; give a shape whose product is {n_inputs}."
        )
    side = math.isqrt(n_inputs)
    if side * side == n_inputs:
        return (side, side)
    raise WeightlapseError(
        f"Cannot guess the image shape of {label}'s {n_inputs} inputs (not a square, and the "
        f"run has no input_shape). Pass image_shape=(height, width)."
    )


def _size(shape: Sequence[int] | None) -> int:
    return int(np.prod([int(d) for d in shape])) if shape else 0
