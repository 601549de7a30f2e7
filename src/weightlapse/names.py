"""Choosing tensors of a run by name, layer or glob: the one rule every command and view
that takes names follows."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from weightlapse.errors import UnknownTensorError
from weightlapse.run import Run


def resolve_tensors(run: Run, selector: str | Sequence[str]) -> list[str]:
    """A tensor name, a layer name (all its tensors), a glob, or a list of those; a
    selector that matches nothing is an error that lists what there is.

    >>> resolve_tensors(run, ["conv*", "fc"])   # every conv tensor and the layer fc's
    """
    selectors = [selector] if isinstance(selector, str) else list(selector)
    names: list[str] = []
    layers = {run[n].layer: [] for n in run.tensors}
    for n in run.tensors:
        layers[run[n].layer].append(n)
    for sel in selectors:
        if sel in run.tensors:
            found = [sel]
        elif sel in layers and sel:
            found = layers[sel]
        else:
            found = [n for n in run.tensors if fnmatch.fnmatchcase(n, sel)]
        if not found:
            raise UnknownTensorError(
                sel, run.tensors + [x for x in layers if x], what="tensor or layer"
            )
        names += [n for n in found if n not in names]
    return names
