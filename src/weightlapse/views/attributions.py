"""Attribution maps shown over their input: an overlay (chosen alpha and colormap), side
by side, a grid of methods for an input or of inputs for a method, and, from a run,
the recorded maps of the probe inputs at any step (so they animate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.views.figure import drawn, figure_and_axes, new_figure
from weightlapse.views.panels import Panels, draw_panels

HEAT = "inferno"


def as_heat(attribution: Any, channels_last: bool | None = None) -> np.ndarray:
    """One sample's attribution as a 2-D map: |a| at its largest over channels (the
    display of Simonyan et al.); a 2-D map (Grad-CAM) as it is."""
    a = np.asarray(attribution, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim != 3:
        raise WeightlapseError(
            f"An attribution of shape {a.shape}: want (H, W), (C, H, W) or (H, W, C) for one input."
        )
    if channels_last is None:  # channels are the short axis: 1, 3 or 4 of them
        channels_last = a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3, 4)
    return np.abs(a).max(axis=-1 if channels_last else 0)


def as_picture(image: Any) -> tuple[np.ndarray, str | None]:
    """An input as something imshow draws: (H, W) gray or (H, W, 3) colour in [0, 1]."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 0, -1)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    lo, hi = np.nanmin(x), np.nanmax(x)
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x, ("gray" if x.ndim == 2 else None)


def attribution_overlay(
    image: Any,
    attribution: Any,
    *,
    alpha: float = 0.5,
    cmap: str = HEAT,
    side_by_side: bool = True,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """The input and the map on its own beside it, with a colour bar (default); with
    `side_by_side=False`, the map over its input at `alpha` (an input under a map can
    look like structure the map does not have: the overlay is asked for, never assumed).

    >>> attribution_overlay(x[0], Saliency(model).attribute(x[:1])[0])
    """
    picture, gray = as_picture(image)
    heat = as_heat(attribution)
    extent = (0, picture.shape[1], picture.shape[0], 0)
    if side_by_side:
        fig = new_figure((7, 3.6))
        left, right = fig.subplots(1, 2)
        left.imshow(picture, cmap=gray, extent=extent)
        shown = right.imshow(heat, cmap=cmap, extent=extent)
        fig.colorbar(shown, ax=right, shrink=0.8, label="attribution")
        for a in (left, right):
            a.set_xticks([])
            a.set_yticks([])
        left.set_title("input")
        right.set_title(title or "attribution")
        return fig
    given = ax
    fig, ax = figure_and_axes(ax, (4.2, 4.0))
    ax.imshow(picture, cmap=gray, extent=extent)
    shown = ax.imshow(heat, cmap=cmap, alpha=alpha, extent=extent, interpolation="bilinear")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="attribution")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return drawn(fig, given)


def attribution_grid(
    images: Any,
    maps: Mapping[str, Any],
    *,
    alpha: float = 0.5,
    cmap: str = HEAT,
    overlay: bool = False,
) -> Figure:
    """Rows: inputs; columns: the input, then each method's map on its own with a colour
    bar (`overlay=True` draws each map over its input at `alpha` instead). One input and
    many methods, or many inputs and one method, are the two usual cases.

    >>> attribution_grid(x[:3], {"saliency": s, "gradcam": g, "guided": gb})
    """
    images = list(images)
    names = list(maps)
    fig = new_figure((2.6 * (1 + len(names)), 2.2 * len(images) + 0.4))
    axes = fig.subplots(len(images), 1 + len(names), squeeze=False)
    for row, image in enumerate(images):
        picture, gray = as_picture(image)
        extent = (0, picture.shape[1], picture.shape[0], 0)
        axes[row, 0].imshow(picture, cmap=gray, extent=extent)
        for col, name in enumerate(names, start=1):
            heat = as_heat(np.asarray(maps[name])[row])
            ax = axes[row, col]
            if overlay:
                ax.imshow(picture, cmap=gray, extent=extent)
            shown = ax.imshow(
                heat,
                cmap=cmap,
                alpha=alpha if overlay else None,
                extent=extent,
                interpolation="bilinear" if overlay else "nearest",
            )
            fig.colorbar(shown, ax=ax, shrink=0.8)
            if row == 0:
                ax.set_title(name)
        if row == 0:
            axes[row, 0].set_title("input")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def attribution_panels(
    source: Run,
    name: str,
    *,
    step: int = -1,
    sample: int = 0,
    limits: tuple[float, float] | None = None,
) -> Panels:
    """A recorded map of one probe input at one step (for plots and animations)."""
    history = source.history(name, "attribution")
    step = history.snapshot_step(step)
    batch = history.at(step)
    if not 0 <= sample < len(batch):
        raise WeightlapseError(f"sample={sample}: {len(batch)} probe inputs were recorded.")
    heat = as_heat(
        batch[sample],
        channels_last=source.meta.get("framework") == "keras" if batch.ndim == 4 else None,
    )
    lo, hi = limits or (0.0, float(np.nanmax(heat)) if np.isfinite(heat).any() else 1.0)
    hi = hi if hi > lo else lo + 1.0
    return Panels(
        [heat],
        [""],
        [(lo, hi)],
        HEAT,
        f"{name} of probe input {sample} at step {step}",
        colorbar_label="attribution",
        ncols=1,
    )


def attribution_map(
    source: Run, name: str, *, step: int = -1, sample: int = 0, fig: Figure | None = None
) -> Figure:
    """A recorded attribution map ('saliency', 'gradcam:conv2') of a probe input."""
    return draw_panels(
        attribution_panels(source, name, step=step, sample=sample), fig=fig, panel_inches=4.0
    )
