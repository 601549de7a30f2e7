"""`weightlapse.widget(run)`: a run in a notebook cell, with a step slider and the view of
a tensor that fits it best (filter grid, per-unit images, matrix; the views over steps on
request). It follows a run that is still being written, in the same kernel or another
process: a background thread looks for new steps and moves the slider to the newest one
while "follow" is ticked. Needs anywidget (`pip install "weightlapse[notebook]"`)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

from weightlapse.errors import MissingDependencyError, WeightlapseError
from weightlapse.run import Run
from weightlapse.run import open as open_run

POLL_SECONDS = 1.0

try:
    import anywidget
    import traitlets
except ImportError:  # the widget is optional; say so when it is asked for
    anywidget = None


def widget(run: Any, tensor: str | None = None, poll_seconds: float = POLL_SECONDS) -> Any:
    """A notebook widget of a run (a Run, a RunWriter, or a run's path).

    >>> weightlapse.widget("runs/mnist")            # the last cell line shows it
    >>> w = weightlapse.widget(run, "conv1.weight"); w.step = 100
    """
    if anywidget is None:
        raise MissingDependencyError("anywidget", "notebook")
    return _widget_class()(_as_run(run), tensor, poll_seconds)


def _as_run(source: Any) -> Run:
    if isinstance(source, Run):
        return source
    if isinstance(source, (str, Path)):
        return open_run(source)
    path = getattr(source, "path", None)  # a RunWriter: read what it has committed
    if path is not None:
        source.flush()
        return open_run(path)
    raise WeightlapseError(
        f"widget() takes a Run, a RunWriter or a run's path, not {type(source).__name__}."
    )


_CLASS: Any = None


def _widget_class() -> Any:
    global _CLASS
    if _CLASS is None:
        _CLASS = _define()
    return _CLASS


def _define() -> Any:
    here = Path(__file__).parent

    class RunWidget(anywidget.AnyWidget):
        """The run's tensors, the views that fit the chosen one, and the recorded steps;
        `image` is the chosen view at `step` as a base64 PNG (drawn in Python, by the same
        code as every figure)."""

        _esm = here / "widget.js"
        _css = here / "widget.css"
        title = traitlets.Unicode("").tag(sync=True)
        tensors = traitlets.List(traitlets.Unicode()).tag(sync=True)
        tensor = traitlets.Unicode("").tag(sync=True)
        views = traitlets.List(traitlets.Unicode()).tag(sync=True)
        view = traitlets.Unicode("").tag(sync=True)
        steps = traitlets.List(traitlets.Int()).tag(sync=True)
        step = traitlets.Int(0).tag(sync=True)
        follow = traitlets.Bool(True).tag(sync=True)
        live = traitlets.Bool(False).tag(sync=True)
        image = traitlets.Unicode("").tag(sync=True)
        error = traitlets.Unicode("").tag(sync=True)

        def __init__(self, run: Run, tensor: str | None, poll_seconds: float) -> None:
            super().__init__()
            self.run = run
            self._lock = threading.RLock()
            self._stop = threading.Event()
            self._held = False  # while several traits change at once, draw once after
            names = run.tensors + [n for n in run.activations if n not in run.tensors]
            if not names:
                raise WeightlapseError(f"{run.path!s} has no recorded tensors to show yet.")
            if tensor is not None and tensor not in names:
                from weightlapse.errors import UnknownNameError

                raise UnknownNameError(tensor, names, what="tensor")
            with self.hold_trait_notifications():
                self.title = str(run.path)
                self.tensors = names
                self.steps = [int(s) for s in run.steps]
                self.step = self.steps[-1] if self.steps else 0
                self.live = run.is_live
            self.observe(self._chose_tensor, names="tensor")
            self.observe(self._redraw, names=["view", "step"])
            self.tensor = tensor or names[0]
            if self.live:
                threading.Thread(
                    target=self._follow, args=(poll_seconds,), daemon=True, name="wl-widget"
                ).start()

        def _chose_tensor(self, change: dict[str, Any]) -> None:
            self._update(**self._views_of(change["new"]))

        def _views_of(self, tensor: str) -> dict[str, Any]:
            from weightlapse.views.registry import views_for

            views = views_for(self.run, tensor)
            return {"views": views, "view": self.view if self.view in views else views[0]}

        def _update(self, **traits: Any) -> None:
            """Sets several traits at once and draws once, after all of them."""
            with self._lock:
                self._held = True
                try:
                    for name, value in traits.items():
                        setattr(self, name, value)
                finally:
                    self._held = False
                self._redraw()

        def _redraw(self, change: dict[str, Any] | None = None) -> None:
            from weightlapse.views.registry import render_png

            with self._lock:
                if self._held:
                    return
                try:
                    png = render_png(self.run, self.view, self.tensor, step=self.step)
                except WeightlapseError as exc:
                    self.error = str(exc)
                    return
                self.error = ""
                self.image = base64.b64encode(png).decode("ascii")

        def _follow(self, poll_seconds: float) -> None:
            """New steps while the run is written; stops when its writer closes it."""
            while not self._stop.wait(poll_seconds):
                try:
                    grew = self.run.refresh()
                    live = self.run.is_live
                except (OSError, WeightlapseError):
                    continue  # a read between two writes: look again next time
                if grew:
                    steps = [int(s) for s in self.run.steps]
                    step = steps[-1] if self.follow and steps else self.step
                    # new steps may bring new snapshots, so new views that fit
                    self._update(steps=steps, step=step, **self._views_of(self.tensor))
                if not live:
                    self.live = False
                    return

        def close(self) -> None:
            self._stop.set()
            super().close()

    return RunWidget
