"""Weight trajectories: chosen elements of a tensor over training (user story 1)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from weightlapse.history import Trajectory
from weightlapse.run import Run
from weightlapse.views.colors import nonfinite_note
from weightlapse.views.figure import drawn, figure_and_axes
from weightlapse.views.panels import fit_title


def trajectories(
    source: Run | Trajectory,
    name: str = "tensor",
    *,
    elements: list[tuple[int, ...]] | None = None,
    kind: str = "param",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Each probed element of `name` (or the chosen `elements`) as a line over steps.

    >>> trajectories(run, "dense/kernel").savefig("trajectories.png")
    >>> trajectories(Trajectory(steps, values, [(0,), (1,)]), "w")   # without a run
    """
    if isinstance(source, Trajectory):
        traj = source
    else:
        history = source.history(name, kind)
        traj = history.trajectory(elements)
    given = ax
    fig, ax = figure_and_axes(ax)
    labels = [f"{name}[{', '.join(map(str, e))}]" for e in traj.elements]
    for column, label in enumerate(labels):
        ax.plot(traj.steps, traj.values[:, column], label=label, linewidth=1.4)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{kind} value")
    note = nonfinite_note(traj.values)
    default = f"{name}: {len(labels)} element(s) over {len(traj.steps)} steps{note}"
    ax.set_title(fit_title(title or default, fig))
    if 0 < len(labels) <= 12:
        ax.legend(fontsize="small", loc="best")
    ax.grid(True, alpha=0.3)
    return drawn(fig, given)
