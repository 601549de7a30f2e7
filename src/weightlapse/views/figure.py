"""The figure every view returns. A notebook shows it once, inline, with no magic: IPython
asks it for a PNG (`_repr_png_`) whether or not pyplot was ever imported. A view asked to
draw into a given `ax=` returns that Axes, not its figure, so pyplot's own display of the
figure at the end of a cell is the only one."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

NOTEBOOK_DPI = 100


class ViewFigure(Figure):
    """A matplotlib Figure that displays itself in IPython and Jupyter."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=NOTEBOOK_DPI, bbox_inches="tight")
        return buffer.getvalue()


def new_figure(size: tuple[float, float], **options: Any) -> ViewFigure:
    return ViewFigure(figsize=size, layout="constrained", **options)


def figure_and_axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.0)) -> tuple[Any, Axes]:
    """The figure of a given axes, or a new figure with one axes."""
    if ax is not None:
        return ax.get_figure(), ax
    fig = new_figure(size)
    return fig, fig.add_subplot()


def drawn(fig: Figure, given: Axes | None) -> Any:
    """What a view returns: the Axes it was given to draw into, else its own figure."""
    return given if given is not None else fig
