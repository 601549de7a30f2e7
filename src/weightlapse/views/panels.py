"""Image views as data, then pixels: a view computes `Panels` for a step; drawing them is
shared, and so is updating them in place, which is what makes animations fast."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure

from weightlapse.views.colors import GAP_COLOR, NAN_COLOR, colormap, for_display
from weightlapse.views.figure import new_figure


@dataclass
class Panels:
    """What an image view shows at one step: one 2-D (or RGB) array per panel."""

    images: list[np.ndarray]
    titles: list[str]
    limits: list[tuple[float, float]]  # (vmin, vmax) per panel
    cmap: str
    title: str
    colorbar_label: str | None = None
    ncols: int | None = None
    gaps: list[np.ndarray | None] | None = None  # per image: where the mosaic's gaps are

    @property
    def shared_scale(self) -> bool:
        return len(set(self.limits)) == 1

    @property
    def heading(self) -> str:
        """The title, with the colour scale actually drawn when it is one symmetric scale
        (an animation's shared scale, not the frame's own)."""
        if self.limits and self.shared_scale and self.limits[0][0] == -self.limits[0][1]:
            return f"{self.title}; scale ±{self.limits[0][1]:.3g}"
        return self.title


def draw_panels(panels: Panels, fig: Figure | None = None, panel_inches: float = 2.0) -> Figure:
    n = len(panels.images)
    ncols = panels.ncols or min(n, 5)
    nrows = max(1, math.ceil(n / ncols))
    aspect = _aspect(panels.images[0]) if n else 1.0
    width = max(5.0, panel_inches * ncols + (1.0 if panels.colorbar_label else 0.3))
    height = panel_inches * aspect * nrows + 0.9
    fig = fig or new_figure((width, min(height, 40)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = colormap(panels.cmap)
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        lo, hi = panels.limits[i]
        shown = ax.imshow(
            _display(panels.images[i], hi), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest"
        )
        gap = panels.gaps[i] if panels.gaps else None
        if gap is not None and gap.any():  # gaps in a colour of their own, above the data
            ax.imshow(
                np.ma.masked_where(~gap, np.ones(gap.shape)),
                cmap=ListedColormap([GAP_COLOR]),
                interpolation="nearest",
            )
        ax.set_title(panels.titles[i], fontsize="small")
    if panels.colorbar_label and shown is not None and panels.shared_scale:
        fig.colorbar(shown, ax=axes, shrink=0.8, label=panels.colorbar_label)
    fig.suptitle(fit_title(panels.heading, fig))
    return fig


def update_panels(fig: Figure, panels: Panels) -> None:
    """Puts another step's panels into a figure drawn by `draw_panels` (same layout)."""
    images = [ax.images[0] for ax in fig.axes if ax.images]
    for image, data, (lo, hi) in zip(images, panels.images, panels.limits):
        image.set_data(_display(data, hi))
        image.set_clim(lo, hi)
    for ax, title in zip([ax for ax in fig.axes if ax.images], panels.titles):
        ax.set_title(title, fontsize="small")
    fig.suptitle(fit_title(panels.heading, fig))


def _display(data: np.ndarray, limit: float) -> np.ndarray:
    if data.ndim == 3:  # RGB in [0, 1]: NaN pixels get the NaN colour
        out = np.clip(np.nan_to_num(data, nan=0.0), 0.0, 1.0)
        out[np.isnan(data).any(axis=2)] = to_rgb(NAN_COLOR)
        return out
    return for_display(data, limit)


def _aspect(image: np.ndarray) -> float:
    return min(3.0, max(0.15, image.shape[0] / max(1, image.shape[1])))


def tile(
    cells: np.ndarray, ncols: int | None = None, pad: int = 1, pad_value: float = np.nan
) -> np.ndarray:
    """(n, h, w[, 3]) -> one mosaic image, row-major, `pad` pixels between cells.

    Cell i sits at rows r*(h+pad) .. r*(h+pad)+h and columns c*(w+pad) ..., with
    r, c = divmod(i, ncols).
    """
    n, h, w = cells.shape[:3]
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    shape = (nrows * (h + pad) - pad, ncols * (w + pad) - pad, *cells.shape[3:])
    mosaic = np.full(shape, pad_value, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncols)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = cells[i]
    return mosaic


def tile_with_gaps(cells: np.ndarray, ncols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`tile` and a mask of its gaps (between and after the cells), to draw apart."""
    mosaic = tile(cells, ncols)
    gaps = tile(np.zeros(cells.shape[:3]), ncols, pad_value=1.0) == 1.0
    return mosaic, gaps


def fit_title(text: str, fig: Figure) -> str:
    """A title wrapped to the figure's width: a long name must not be cut at the left."""
    chars = max(20, int(fig.get_figwidth() * 10))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())
