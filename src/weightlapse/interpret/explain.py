"""`weightlapse explain`: what a saved model responds to in an input, as one figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from weightlapse.frameworks import framework_of
from weightlapse.interpret.loading import fit_batch, load_input, load_model
from weightlapse.interpret.methods import make_method
from weightlapse.views.attributions import attribution_grid, attribution_overlay


def explain(
    model_file: str | Path,
    input_file: str | Path,
    methods: Sequence[str] = ("saliency",),
    *,
    layer: str | None = None,
    target: int | None = None,
    alpha: float = 0.5,
    overlay: bool = False,
    trust_pickle: bool = False,
) -> Figure:
    """The input beside one method's map, or a grid of the input under several methods.

    >>> explain("cnn.keras", "digit.png", ["saliency", "gradcam"], layer="conv2d_1")
    """
    model = load_model(model_file, trust_pickle=trust_pickle)
    channels_last = framework_of(model) == "keras"
    x = fit_batch(load_input(input_file, channels_last), model, channels_last)
    maps = {}
    for name in methods:
        method = make_method(name, model)
        maps[name] = method.attribute(x, target=target, layer=layer if method.needs_layer else None)
    if len(maps) == 1:
        name, values = next(iter(maps.items()))
        return attribution_overlay(
            x[0], values[0], alpha=alpha, side_by_side=not overlay, title=name
        )
    return attribution_grid(x[:1], maps, alpha=alpha, overlay=overlay)
