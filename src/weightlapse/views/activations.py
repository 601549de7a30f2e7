"""Activation grids (user story 3): the feature maps of a layer for one input, titled
`Filter i`, on one scale: sequential for outputs that cannot go negative (after a ReLU),
diverging and symmetric around zero for signed ones; a dense layer's units as a strip."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.views.colors import DIVERGING, SEQUENTIAL, nonfinite_note, symmetric_limit
from weightlapse.views.panels import Panels, draw_panels


def activation_panels(
    source: Run | np.ndarray,
    layer: str | None = None,
    *,
    step: int = -1,
    sample: int = 0,
    channels_last: bool | None = None,
    max_maps: int = 64,
    ncols: int | None = None,
    limits: tuple[float, float] | None = None,
) -> Panels:
    """The data of `activation_grid` at one step."""
    label = layer or "activations"
    where = ""
    if isinstance(source, Run):
        if layer is None:
            raise WeightlapseError("activation_grid(run, layer): name the layer.")
        history = source.history(layer, "activation")
        step = history.snapshot_step(step)
        batch = history.at(step)
        if not 0 <= sample < batch.shape[0]:
            raise WeightlapseError(
                f"sample={sample}: {batch.shape[0]} probe inputs were "
                f"recorded, numbered 0..{batch.shape[0] - 1}."
            )
        values = batch[sample]
        if channels_last is None:
            channels_last = source.meta.get("framework") == "keras"
        where = f" of probe input {sample} at step {step}"
    else:
        values = np.asarray(source, dtype=np.float64)
    maps = _as_maps(values, channels_last)
    finite = maps[np.isfinite(maps)]
    lo, hi = limits or ((float(finite.min()), float(finite.max())) if finite.size else (0, 1))
    signed = lo < 0
    if signed and limits is None:  # signed maps: zero in the middle of a diverging scale
        hi = symmetric_limit(maps)
        lo = -hi
    hi = hi if hi > lo else lo + 1.0
    cmap = DIVERGING if signed else SEQUENTIAL
    title = f"{label}{where}: {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}"
    if maps.shape[1] == 1:
        title = f"{label}{where}: {maps.shape[2]} units"
        return Panels(
            [maps[0]],
            ["units"],
            [(lo, hi)],
            cmap,
            title + nonfinite_note(maps),
            colorbar_label="activation",
            ncols=1,
        )
    shown = maps[:max_maps]
    if len(maps) > max_maps:
        title += f" (first {max_maps} shown)"
    return Panels(
        [m for m in shown],
        [f"Filter {i}" for i in range(len(shown))],
        [(lo, hi)] * len(shown),
        cmap,
        title + nonfinite_note(maps),
        colorbar_label="activation",
        ncols=ncols or min(len(shown), 8),
    )


def activation_grid(
    source: Run | np.ndarray,
    layer: str | None = None,
    *,
    step: int = -1,
    fig: Figure | None = None,
    **options: Any,
) -> Figure:
    """Feature maps of one input: from a run (recorded probe activations) or an array.

    >>> activation_grid(run, "conv1", step=500, sample=0)
    >>> activation_grid(activations(model, x[:1], "conv1")[0])   # (C, H, W)
    """
    panels = activation_panels(source, layer, step=step, **options)
    return draw_panels(panels, fig=fig, panel_inches=1.6 if len(panels.images) > 1 else 8.0)


def _as_maps(values: np.ndarray, channels_last: bool | None) -> np.ndarray:
    """-> (maps, h, w). 1-D (dense) -> one strip (1, 1, units); 2-D -> one map."""
    if values.ndim == 1:
        return values.reshape(1, 1, -1)
    if values.ndim == 2:
        return values[None]
    if values.ndim == 3:
        if channels_last is None:  # square spatial axes show which end the channels are
            channels_last = values.shape[0] == values.shape[1] != values.shape[2]
        return np.moveaxis(values, -1, 0) if channels_last else values
    raise WeightlapseError(
        f"Activations of shape {values.shape}: want (C, H, W), (H, W, C), "
        "a 2-D map or a 1-D vector for one input."
    )
