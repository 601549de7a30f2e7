"""Statistics over time: norms, spreads, update ratios, zeros and NaN/Inf for a tensor or a
whole layer, with the run's scalars on a linked axis; and a model-wide overview where a
dying or exploding layer stands out at a glance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.names import resolve_tensors
from weightlapse.run import Run
from weightlapse.store.layout import STAT_NAMES
from weightlapse.views.colors import DIVERGING, NAN_COLOR, NOT_RECORDED_COLOR, colormap
from weightlapse.views.figure import drawn, figure_and_axes, new_figure
from weightlapse.views.histograms import step_edges
from weightlapse.views.panels import fit_title

USUAL_UPDATE_RATIO = 1e-3


def statistics_over_time(
    run: Run,
    selector: str | Sequence[str],
    *,
    stats: Sequence[str] = ("l2", "mean_abs", "std"),
    scalars: Sequence[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Per tensor: the chosen statistics and a min/max band; the update ratio on a log
    axis (when updates were recorded, with the usual 1e-3 marked); zero fraction and
    NaN/Inf counts. Scalars (default: loss, if logged) share the step axis.

    >>> statistics_over_time(run, "dense")                  # every tensor of a layer
    >>> statistics_over_time(run, "*kernel", stats=["l2"])
    """
    names = resolve_tensors(run, selector)
    unknown = [s for s in stats if s not in STAT_NAMES]
    if unknown:
        raise UnknownNameError(unknown[0], STAT_NAMES, what="statistic")
    has_updates = "update" in run.kinds
    rows = 3 if has_updates else 2
    fig = fig or new_figure((8.0, 2.4 * rows + 0.6))
    axes = fig.subplots(rows, 1, sharex=True, height_ratios=[2] + [1] * (rows - 1))
    main, health = axes[0], axes[-1]
    styles = ["-", "--", ":", "-."]
    for t, name in enumerate(names):
        table = run[name].stats
        colour = f"C{t % 10}"
        for k, stat in enumerate(stats):
            main.plot(table.steps, table[stat], styles[k % 4], color=colour, label=f"{name} {stat}")
        if len(names) <= 3:
            main.fill_between(
                table.steps,
                table["min"],
                table["max"],
                color=colour,
                alpha=0.12,
                lw=0,
                label=f"{name} min..max",
            )
        health.plot(table.steps, table["zero_frac"], color=colour, label=f"{name} zeros")
        bad = table["nan_count"] + table["inf_count"]
        if bad.any():
            health.plot(
                table.steps,
                bad / max(1, int(np.prod(run[name].shape))),
                "x",
                color=colour,
                label=f"{name} NaN+Inf share",
            )
        if has_updates and name in run.names("update"):
            ratio = run[name].update_ratio
            axes[1].plot(ratio.steps, ratio.values, color=colour, label=name)
    if has_updates:
        axes[1].set_yscale("log")
        axes[1].axhline(USUAL_UPDATE_RATIO, color="grey", lw=0.8, ls="--")
        axes[1].set_ylabel("||dW|| / ||W||")
    main.set_ylabel(", ".join(stats))
    health.set_ylabel("fraction")
    health.set_xlabel("step")
    main.legend(fontsize="x-small", ncols=2, loc="upper left")
    health.legend(fontsize="x-small", loc="upper left")
    _linked_scalars(run, main, scalars)
    fig.suptitle(
        f"{selector if isinstance(selector, str) else ', '.join(selector)}: "
        f"statistics over {len(run.steps)} steps"
    )
    return fig


def _linked_scalars(run: Run, ax: Axes, scalars: Sequence[str] | None) -> None:
    wanted = (
        list(scalars) if scalars is not None else [s for s in ("loss",) if s in run.scalar_names]
    )
    if not wanted:
        return
    twin = ax.twinx()
    steps = run.steps
    for k, name in enumerate(wanted):
        values = run.scalar(name)
        keep = np.isfinite(values)
        twin.plot(
            steps[keep],
            values[keep],
            color="black",
            lw=0.9,
            alpha=0.7,
            ls=["-", "--", ":"][k % 3],
            label=name,
        )
    twin.set_ylabel(", ".join(wanted))
    twin.legend(fontsize="x-small", loc="upper right")


# About the figure's width in pixels: more columns than that would not be seen.
OVERVIEW_COLUMNS = 1024


def overview(
    run: Run,
    *,
    stat: str = "l2",
    kind: str = "param",
    relative: bool = True,
    columns: int | None = OVERVIEW_COLUMNS,
    ax: Axes | None = None,
) -> Figure:
    """One row per tensor, colour = a statistic over steps. With `relative` (default)
    each row is divided by its first recorded value on a log scale: growth shows red,
    decay blue, a layer that never moved stays white. A run of more steps than
    `columns` is drawn at that many steps, evenly spread within at most 16 evenly spread
    chunks of steps, each cell reaching halfway to its neighbours: the cost stays the
    same at any length (None: every step).

    >>> overview(run, stat="l2", kind="grad")
    """
    if stat not in STAT_NAMES:
        raise UnknownNameError(stat, STAT_NAMES, what="statistic")
    names = run.names(kind)
    if not names:
        raise WeightlapseError(f"No {kind} tensors recorded in this run.")
    steps, matrix, recorded = run.stat_of_every_tensor(stat, kind, columns)
    matrix = np.where(recorded, matrix, np.nan)
    given = ax
    fig, ax = figure_and_axes(ax, (9.0, 1.2 + 0.28 * len(names)))
    labels = list(names)
    if relative:
        # Each row over its first nonzero value: a tensor that starts at 0 (every bias)
        # is shown relative to the first value it took, and its label says so.
        reference = np.full(len(names), np.nan)
        for i, row in enumerate(matrix):
            nonzero = np.flatnonzero(np.isfinite(row) & (row != 0))
            if nonzero.size:
                reference[i] = row[nonzero[0]]
                if nonzero[0] > 0 and row[np.isfinite(row)][0] == 0:
                    labels[i] = f"{names[i]} (0 at start; / step {int(steps[nonzero[0]])})"
        with np.errstate(divide="ignore", invalid="ignore"):
            values = matrix / reference[:, None]
        values[np.isfinite(matrix) & (matrix == 0)] = np.nan  # 0: not a ratio, not a NaN
        zero = np.isfinite(matrix) & (matrix == 0)
        finite = values[np.isfinite(values) & (values > 0)]
        decades = float(np.max(np.abs(np.log10(finite)))) if finite.size else 1.0
        decades = min(max(decades, 1.0), 12.0)  # symmetric in log: 1 sits in the middle
        norm = LogNorm(vmin=10**-decades, vmax=10**decades)
        label = f"{stat} / its first nonzero value"
    else:
        values = matrix
        zero = np.zeros(matrix.shape, dtype=bool)
        norm = None
        label = stat
    x, y = step_edges(steps), np.arange(len(names) + 1)
    # Not recorded (no gradient at step 0): background. Recorded but NaN/Inf: NaN colour.
    cmap = colormap(DIVERGING).with_extremes(bad=NOT_RECORDED_COLOR)
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(values), cmap=cmap, norm=norm)
    if zero.any():  # exactly 0 (a bias before its first update): white, its own colour
        ax.pcolormesh(
            x, y, np.ma.masked_where(~zero, np.ones_like(values)), cmap=ListedColormap(["white"])
        )
    broken = recorded & ~np.isfinite(matrix)
    if broken.any():
        ax.pcolormesh(
            x,
            y,
            np.ma.masked_where(~broken, np.ones_like(values)),
            cmap=ListedColormap([NAN_COLOR]),
        )
    fig.colorbar(mesh, ax=ax, label=label)
    ax.set_yticks(np.arange(len(names)) + 0.5, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("step")
    ax.set_title(fit_title(f"{kind} {stat} of every tensor over training", fig))
    return drawn(fig, given)
