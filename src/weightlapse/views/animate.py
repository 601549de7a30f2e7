"""Any view over training, as GIF or MP4 (MP4 through the ffmpeg that imageio-ffmpeg
ships: no system ffmpeg needed).

Image views (weights, filters, heatmap, activations) are drawn once and then only their
pixels change, on one colour scale across all frames by default, so that change is
visible. Timeline views (trajectories, histograms, stats) are drawn once with a cursor
that moves along the steps. Each frame names its step, epoch and loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.progress import track

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.run import Run
from weightlapse.views.panels import Panels, draw_panels, fit_title, update_panels
from weightlapse.views.registry import VIEWS

# What animates, from the one registry: image views by their panels, timeline views
# by a cursor.
IMAGE_VIEWS: dict[str, Callable[..., Panels]] = {
    name: view.panels for name, view in VIEWS.items() if view.panels is not None
}
TIMELINE_VIEWS: dict[str, Callable[..., Figure]] = {
    name: view.function for name, view in VIEWS.items() if view.timeline
}
FORMATS = (".gif", ".mp4")


def check_view(view: str) -> None:
    known = [*IMAGE_VIEWS, *TIMELINE_VIEWS]
    if view not in known:
        raise UnknownNameError(view, known, what="view to animate")


def default_steps(run: Run, view: str, name: str) -> list[int]:
    if view in IMAGE_VIEWS:
        return run.history(name, VIEWS[view].snapshot_kind).snapshot_steps
    return [int(s) for s in run.steps]


def frames(
    run: Run,
    view: str,
    name: str,
    steps: Sequence[int] | None = None,
    *,
    fixed_scale: bool = True,
    dpi: int = 80,
    progress: bool = False,
    **options: Any,
) -> list[np.ndarray]:
    """The frames of an animation as RGB arrays, one per step."""
    check_view(view)
    steps = list(steps) if steps is not None else default_steps(run, view, name)
    if not steps:
        raise WeightlapseError(
            f"{name!r} has no recorded steps to animate for the {view!r} view (image views "
            "need snapshots: record with snapshots=...)."
        )
    captions = _captions(run, steps)
    rendered: list[np.ndarray] = []
    iterate = (
        track(range(len(steps)), description=f"{view} {name}") if progress else range(len(steps))
    )
    if view in IMAGE_VIEWS:
        make = IMAGE_VIEWS[view]
        panels = [make(run, name, step=s, **options) for s in steps]
        if fixed_scale:
            _share_limits(panels)
        fig = draw_panels(panels[0])
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        for i in iterate:
            update_panels(fig, panels[i])
            fig.suptitle(fit_title(f"{panels[i].heading}\n{captions[i]}", fig))
            rendered.append(_pixels(canvas))
    else:
        fig = TIMELINE_VIEWS[view](run, name, **options)
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        cursors = [
            ax.axvline(steps[0], color="black", lw=1.0, alpha=0.6)
            for ax in fig.axes
            if ax.get_xlabel() == "step" or ax.get_shared_x_axes().get_siblings(ax)
        ]
        title = fig._suptitle.get_text() if fig._suptitle else ""
        for i in iterate:
            for cursor in cursors:
                cursor.set_xdata([steps[i], steps[i]])
            fig.suptitle(f"{title}\n{captions[i]}".strip())
            rendered.append(_pixels(canvas))
    return rendered


def animate(
    run: Run,
    view: str,
    name: str,
    out: str | Path,
    *,
    steps: Sequence[int] | None = None,
    fps: float = 8.0,
    fixed_scale: bool = True,
    dpi: int = 80,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Writes `view` of `name` over `steps` (default: every snapshot, or every recorded
    step for timeline views) to a .gif or .mp4.

    >>> animate(run, "weights", "dense/kernel", "templates.mp4", fps=10)
    """
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise WeightlapseError(f"{out.name}: write an animation to a .gif or a .mp4 file.")
    images = frames(
        run, view, name, steps, fixed_scale=fixed_scale, dpi=dpi, progress=progress, **options
    )
    write_video(out, images, fps)
    return out


def write_video(out: Path, images: list[np.ndarray], fps: float) -> None:
    import imageio.v3 as iio

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        iio.imwrite(out, np.stack(images), duration=1000.0 / fps, loop=0)
        return
    import imageio_ffmpeg  # noqa: F401 - the bundled ffmpeg; fail here, clearly, if absent

    # H.264 wants even sizes; pad to multiples of 16 (ffmpeg's macro blocks).
    h, w = images[0].shape[:2]
    ph, pw = -h % 16, -w % 16
    padded = [np.pad(f, ((0, ph), (0, pw), (0, 0)), constant_values=255) for f in images]
    iio.imwrite(
        out, np.stack(padded), fps=fps, codec="libx264", macro_block_size=16, plugin="FFMPEG"
    )


def _share_limits(panels: list[Panels]) -> None:
    """One scale per panel across all frames: the widest of the frames' scales."""
    for k in range(len(panels[0].limits)):
        lo = min(p.limits[k][0] for p in panels)
        hi = max(p.limits[k][1] for p in panels)
        for p in panels:
            p.limits[k] = (lo, hi)


def _captions(run: Run, steps: Sequence[int]) -> list[str]:
    recorded = run.steps
    epochs = run.epochs
    loss = run.scalar("loss") if "loss" in run.scalar_names else None
    out = []
    for s in steps:
        i = int(np.searchsorted(recorded, s))
        parts = [f"step {s}"]
        if i < len(recorded) and recorded[i] == s:
            if epochs[i] >= 0:
                parts.append(f"epoch {int(epochs[i])}")
            if loss is not None and np.isfinite(loss[i]):
                parts.append(f"loss {loss[i]:.4g}")
        out.append(" · ".join(parts))
    return out


def _pixels(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    # Layout is settled by the first frame; re-solving it every frame costs most of a draw.
    canvas.figure.set_layout_engine("none")
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
