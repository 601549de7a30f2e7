"""Histograms over time, at every recorded step (TensorBoard keeps a sample of 51): a heat
map of step x value with colour = count, and a ridgeline of a chosen handful of steps."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.history import Histograms
from weightlapse.run import Run
from weightlapse.views.colors import SEQUENTIAL, colormap
from weightlapse.views.figure import drawn, figure_and_axes
from weightlapse.views.panels import fit_title


def common_grid(hist: Histograms, value_bins: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Every step's counts moved onto one value grid, so that steps line up.

    Values are taken as spread evenly within their recorded bin, and each bin's count
    is shared among the grid bins it overlaps (no striping where bins do not align).
    Returns (value_bins x steps, value edges); column s sums to step s's finite count.
    """
    edges = hist.edges
    finite_rows = np.isfinite(edges).all(axis=1)
    if not finite_rows.any():
        raise WeightlapseError("No step of this tensor has a finite value to histogram.")
    lo, hi = float(edges[finite_rows, 0].min()), float(edges[finite_rows, -1].max())
    hi = hi if hi > lo else lo + 1.0
    grid = np.linspace(lo, hi, value_bins + 1)
    matrix = np.zeros((value_bins, len(hist.steps)))
    for s in np.flatnonzero(finite_rows):
        total = float(hist.counts[s].sum())
        if edges[s, -1] > edges[s, 0]:
            cdf = np.concatenate([[0.0], np.cumsum(hist.counts[s], dtype=np.float64)])
            matrix[:, s] = np.diff(np.interp(grid, edges[s], cdf))
        else:  # every value equal: one grid bin holds them all
            j = min(int((edges[s, 0] - lo) / (hi - lo) * value_bins), value_bins - 1)
            matrix[j, s] = total
    return matrix, grid


def step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges around each step, halfway to its neighbours (steps may be irregular)."""
    steps = steps.astype(np.float64)
    if len(steps) == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    mid = (steps[1:] + steps[:-1]) / 2
    return np.concatenate(
        [[steps[0] - (mid[0] - steps[0])], mid, [steps[-1] + (steps[-1] - mid[-1])]]
    )


def histograms_over_time(
    source: Run | Histograms,
    name: str = "tensor",
    *,
    kind: str = "param",
    value_bins: int = 128,
    log: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Step on x, value on y, colour = how many elements had that value then.

    >>> histograms_over_time(run, "fc1.weight", log=True)
    >>> histograms_over_time(Histograms(steps, counts, edges), "w")   # without a run
    """
    if isinstance(source, Histograms):
        hist, stats = source, None
    else:
        history = source.history(name, kind)
        hist, stats = history.histograms, history.stats
    matrix, grid = common_grid(hist, value_bins)
    given = ax
    fig, ax = figure_and_axes(ax, (8.0, 4.0))
    peak = max(1.0, float(matrix.max()))
    norm = LogNorm(vmin=min(1.0, peak / 1e4), vmax=peak) if log else Normalize(0, peak)
    # Empty cells are no data, not NaN: they take the figure's background.
    cmap = colormap(SEQUENTIAL).with_extremes(bad="white", under="white")
    shown = np.ma.masked_less_equal(matrix, 0) if log else matrix
    mesh = ax.pcolormesh(step_edges(hist.steps), grid, shown, cmap=cmap, norm=norm, shading="flat")
    fig.colorbar(mesh, ax=ax, label="elements" + (" (log)" if log else ""))
    bad = stats["nan_count"] + stats["inf_count"] if stats is not None else np.zeros(1)
    note = ""
    if bad.any():
        first = int(stats.steps[np.argmax(bad > 0)])
        note = f"; NaN/Inf from step {first} (max {int(bad.max())} elements)"
    title = f"{name} ({kind}): histograms at the {len(hist.steps)} steps that have one{note}"
    ax.set_title(fit_title(title, fig))
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    return drawn(fig, given)


def histogram_ridgeline(
    run: Run,
    name: str,
    *,
    steps: list[int] | None = None,
    count: int = 6,
    kind: str = "param",
    ax: Axes | None = None,
) -> Figure:
    """Histograms of a few steps stacked like a ridgeline (default: `count` evenly spaced)."""
    history = run.history(name, kind)
    hist = history.histograms
    recorded = list(hist.steps)
    if steps is None:
        picks = np.unique(np.linspace(0, len(recorded) - 1, min(count, len(recorded))).astype(int))
    else:
        missing = [s for s in steps if s not in recorded]
        if missing:
            raise WeightlapseError(
                f"Steps {missing} have no histogram of {name!r} (not recorded, or skipped "
                f"by the histograms= schedule); its {len(recorded)} histograms run from "
                f"step {recorded[0]} to {recorded[-1]}."
            )
        picks = np.array([recorded.index(s) for s in steps])
    given = ax
    fig, ax = figure_and_axes(ax, (7.0, 1.0 + 0.7 * len(picks)))
    cmap = colormap(SEQUENTIAL)
    peak = max(1, int(hist.counts[picks].max()))
    for row, i in enumerate(picks[::-1]):
        offset = (len(picks) - 1 - row) * 0.8
        centres = (hist.edges[i, :-1] + hist.edges[i, 1:]) / 2
        height = hist.counts[i] / peak
        colour = cmap(row / max(1, len(picks) - 1))
        ax.fill_between(centres, offset, offset + height, color=colour, alpha=0.8, lw=0)
        ax.plot(centres, offset + height, color="black", lw=0.6)
        ax.text(centres[0], offset + 0.1, f"step {recorded[i]} ", ha="right", fontsize="small")
    ax.set_yticks([])
    ax.set_xlabel("value")
    ax.set_title(fit_title(f"{name} ({kind}): histograms of {len(picks)} steps", fig))
    return drawn(fig, given)
