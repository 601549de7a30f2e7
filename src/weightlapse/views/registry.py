"""Every view by the name the CLI (and later the dashboard) calls it."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.views.activations import activation_grid, activation_panels
from weightlapse.views.attributions import attribution_map, attribution_panels
from weightlapse.views.filters import filter_grid, filter_panels
from weightlapse.views.heatmap import heatmap, heatmap_panels
from weightlapse.views.histograms import histogram_ridgeline, histograms_over_time
from weightlapse.views.panels import Panels
from weightlapse.views.statistics import overview, statistics_over_time
from weightlapse.views.trajectories import trajectories
from weightlapse.views.weight_images import has_image_inputs, weight_images, weight_panels


@dataclass(frozen=True)
class View:
    function: Callable[..., Figure]
    needs_tensor: bool
    takes: tuple[str, ...]  # the options it accepts from the command line
    about: str
    # Image views: their data at one step (animations update pixels in place). Timeline
    # views (a whole history on a step axis) animate with a moving cursor instead.
    panels: Callable[..., Panels] | None = None
    timeline: bool = False
    snapshot_kind: str = "param"  # the kind whose snapshots an image view draws


VIEWS: dict[str, View] = {
    "trajectories": View(
        trajectories, True, ("kind",), "probed elements over steps", timeline=True
    ),
    "weights": View(
        weight_images, True, ("step",), "dense weights as images, per unit", weight_panels
    ),
    "filters": View(
        filter_grid, True, ("step", "channel"), "conv filters in a grid", filter_panels
    ),
    "heatmap": View(
        heatmap, True, ("step", "minus_step"), "a weight matrix, or its change", heatmap_panels
    ),
    "histograms": View(
        histograms_over_time, True, ("kind", "log"), "histograms at every step", timeline=True
    ),
    "ridgeline": View(histogram_ridgeline, True, ("kind",), "histograms of a few steps"),
    "stats": View(
        statistics_over_time, True, (), "norms, update ratio, zeros, NaN/Inf", timeline=True
    ),
    "overview": View(overview, False, ("kind", "stat"), "one row per tensor over steps"),
    "activations": View(
        activation_grid,
        True,
        ("step", "sample"),
        "feature maps of probes",
        activation_panels,
        snapshot_kind="activation",
    ),
    "attributions": View(
        attribution_map,
        True,
        ("step", "sample"),
        "maps of probe inputs",
        attribution_panels,
        snapshot_kind="attribution",
    ),
}


def get_view(name: str) -> View:
    if name not in VIEWS:
        raise UnknownNameError(name, VIEWS, what="view")
    return VIEWS[name]


def views_for(run: Any, tensor: str) -> list[str]:
    """The views that fit a recorded tensor or probed layer, the best first: a conv
    kernel's filter grid, a dense layer's per-unit images when its inputs are images, a
    matrix otherwise; then the views over steps. Views that would only raise an error
    (filters of a dense layer, an image view with no snapshot) are not offered."""
    fits: list[str] = []
    if tensor in run.names("param"):
        history = run.history(tensor, "param")
        if history.snapshot_steps:
            if len(history.shape) >= 3:
                fits.append("filters")
            elif has_image_inputs(run, tensor):
                fits.append("weights")
            fits.append("heatmap")
        fits += ["stats", "histograms", "ridgeline"]
        if history.probed:
            fits.append("trajectories")
    for kind, view in (("activation", "activations"), ("attribution", "attributions")):
        if kind in run.kinds and tensor in run.names(kind):
            if run.history(tensor, kind).snapshot_steps:
                fits.append(view)
    if not fits:
        raise UnknownNameError(tensor, run.tensors, what="tensor")
    return fits


def image_views_for(run: Any, tensor: str, kind: str = "param") -> list[str]:
    """The views that fit `tensor` and draw one step's snapshot of `kind` (filters,
    weights, heatmap; activations, attributions), the best first."""
    return [
        v
        for v in views_for(run, tensor)
        if VIEWS[v].panels is not None and VIEWS[v].snapshot_kind == kind
    ]


def render(run: Any, view: str, tensor: str | None, **given: Any) -> Figure:
    """Draws a view with the options it takes; the others are left out."""
    spec = get_view(view)
    if spec.needs_tensor and not tensor:
        raise WeightlapseError(f"The {view!r} view needs a tensor (or layer) name.")
    options = {k: v for k, v in given.items() if k in spec.takes and v is not None}
    args = (run, tensor) if spec.needs_tensor else (run,)
    return spec.function(*args, **options)


def render_png(run: Any, view: str, tensor: str | None, dpi: int = 80, **given: Any) -> bytes:
    """A view drawn as PNG bytes. Image views snap `step` to the latest snapshot at or
    before it, so a slider over every recorded step always shows a picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    spec = get_view(view)
    if given.get("step") is not None and tensor and spec.panels is not None:
        history = run.history(tensor, spec.snapshot_kind)
        given = {**given, "step": history.latest_snapshot_at(given["step"])}
    fig = render(run, view, tensor, **given)
    buffer = io.BytesIO()
    fig.set_dpi(dpi)
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()
