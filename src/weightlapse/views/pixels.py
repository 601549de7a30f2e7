"""Image views as pixels, without a figure: a view's panels tiled into one mosaic in the
colour policy of the figures (NaN, +Inf and -Inf in colours no value takes, gaps between
cells in their own grey). TensorBoard images and the dashboard's canvas are drawn from
this, in about a millisecond where a matplotlib figure takes a hundred."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgb

from weightlapse.views.colors import GAP_COLOR, NAN_COLOR, colormap
from weightlapse.views.panels import Panels

PAD = 2  # pixels between panels (a filter grid's own cells are 1 apart)


@dataclass
class Mosaic:
    """Every panel of a view in one image. `values` are the panels' own values when they
    share one scale (`lo`..`hi`), else each panel mapped onto -1..1 (or 0..1 for a
    sequential colour map) by its own limits, and `shared` is False. RGB panels are
    (H, W, 3) in [0, 1]."""

    values: np.ndarray
    gaps: np.ndarray  # True where no panel is
    lo: float
    hi: float
    cmap: str
    title: str
    shared: bool


def mosaic_of(panels: Panels) -> Mosaic:
    shared = panels.shared_scale
    lo, hi = panels.limits[0] if shared else (-1.0, 1.0)
    symmetric = all(a == -b for a, b in panels.limits)
    if not shared and not symmetric:
        lo = 0.0
    images = []
    for image, (a, b) in zip(panels.images, panels.limits):
        image = np.asarray(image, dtype=np.float64)
        if not shared and image.ndim == 2:
            image = (image - a) / (b - a or 1.0) * (hi - lo) + lo  # Infs stay Infs
        images.append(image)
    gaps_in = [
        g if g is not None else np.zeros(i.shape[:2], bool)
        for g, i in zip(panels.gaps or [None] * len(images), images)
    ]
    if len(images) == 1:
        values, gaps = images[0], gaps_in[0]
    else:
        ncols = panels.ncols or min(len(images), 5)
        values, gaps = _tile(images, gaps_in, ncols)
    return Mosaic(values, gaps, float(lo), float(hi), panels.cmap, panels.heading, shared)


def _tile(
    images: list[np.ndarray], gaps: list[np.ndarray], ncols: int
) -> tuple[np.ndarray, np.ndarray]:
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    nrows = math.ceil(len(images) / ncols)
    extra = images[0].shape[2:]
    values = np.full((nrows * (h + PAD) - PAD, ncols * (w + PAD) - PAD, *extra), np.nan)
    mask = np.ones(values.shape[:2], dtype=bool)
    for k, (image, gap) in enumerate(zip(images, gaps)):
        r, c = divmod(k, ncols)
        rows = slice(r * (h + PAD), r * (h + PAD) + image.shape[0])
        cols = slice(c * (w + PAD), c * (w + PAD) + image.shape[1])
        values[rows, cols] = image
        mask[rows, cols] = gap
    return values, mask


def rgb8(mosaic: Mosaic) -> np.ndarray:
    """(H, W, 3) uint8 in the colour policy."""
    values = mosaic.values
    if values.ndim == 3:  # RGB panels
        out = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
        out[np.isnan(values).any(axis=2)] = to_rgb(NAN_COLOR)
    else:
        scaled = (values - mosaic.lo) / ((mosaic.hi - mosaic.lo) or 1.0)
        # colormap(): NaN -> bad, above 1 (+Inf) -> over, below 0 (-Inf) -> under
        scaled = np.where(np.isinf(values), np.sign(values) * 2.0, np.clip(scaled, 0.0, 1.0))
        out = colormap(mosaic.cmap)(scaled)[..., :3]
    out = np.array(out)
    out[mosaic.gaps] = to_rgb(GAP_COLOR)
    return (out * 255.0 + 0.5).astype(np.uint8)


def png_bytes(pixels: np.ndarray, scale: int = 1) -> bytes:
    """An RGB array as PNG, each pixel repeated `scale` times a side (small kernels)."""
    from PIL import Image

    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def upscale_for(pixels: np.ndarray, target: int = 256) -> int:
    """How many times to repeat each pixel so the picture is about `target` a side."""
    return max(1, min(16, target // max(1, max(pixels.shape[:2]))))
