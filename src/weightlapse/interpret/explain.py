"""`weightlapse explain`: what a saved model responds to in an input, as one figure; and
Zeiler and Fergus' figure of what a layer's feature maps respond to."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from weightlapse.errors import WeightlapseError
from weightlapse.frameworks import framework_of
from weightlapse.interpret.activations import activations
from weightlapse.interpret.loading import fit_batch, fit_to_model, load_input, load_model
from weightlapse.interpret.methods import METHODS, make_method
from weightlapse.views.attributions import (
    as_heat,
    as_picture,
    attribution_grid,
    attribution_overlay,
)
from weightlapse.views.figure import new_figure


def explain(
    model_file: str | Path,
    input_file: str | Path,
    methods: Sequence[str] = ("saliency",),
    *,
    layer: str | None = None,
    target: int | None = None,
    alpha: float = 0.5,
    overlay: bool = False,
    top: int | None = None,
    trust_pickle: bool = False,
) -> Figure:
    """The input beside one method's map, or a grid of the input under several methods;
    with `top` (and `layer`), the Zeiler-Fergus figure of that layer over the inputs.

    >>> explain("cnn.keras", "digit.png", ["saliency", "gradcam"], layer="conv2d_1")
    """
    model = load_model(model_file, trust_pickle=trust_pickle)
    channels_last = framework_of(model) == "keras"
    x = fit_to_model(fit_batch(load_input(input_file, channels_last), model, channels_last), model)
    for name in methods:
        if name in METHODS and METHODS[name].needs_layer and layer is None:
            raise WeightlapseError(
                f"-m {name} needs --layer, the convolutional layer to explain; this model's: "
                f"{', '.join(conv_layers(model)) or 'none'}."
            )
    if top is not None:
        if layer is None:
            raise WeightlapseError(
                f"--top needs --layer, the layer whose feature maps to show; this model's "
                f"convolutional layers: {', '.join(conv_layers(model)) or 'none'}."
            )
        return feature_projections(model, x, layer, top=top, method=methods[0])
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


def conv_layers(model: Any) -> list[str]:
    """The names of a model's convolutional layers (what layer methods take)."""
    if framework_of(model) == "torch":
        from weightlapse.frameworks.torch import modules_by_name, torch

        return [n for n, m in modules_by_name(model).items() if isinstance(m, torch.nn.Conv2d)]
    return [layer.name for layer in model.layers if "Conv" in type(layer).__name__]


def feature_projections(
    model: Any,
    inputs: Any,
    layer: str,
    *,
    top: int = 9,
    channels: int = 4,
    method: str = "deconvnet",
) -> Figure:
    """For each of a layer's `channels` most active feature maps: the `top` inputs that
    activate it most, and below each its projection back to the input (the deconvnet of
    that map's strongest activation, or guided backprop with method='guided').

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
    >>> feature_projections(model, x_val[:500], "conv2", top=9).savefig("conv2.png")
    """
    if method not in ("deconvnet", "guided"):
        raise WeightlapseError(f"method={method!r}: project with 'deconvnet' or 'guided'.")
    x = np.asarray(inputs, dtype=np.float32)
    maps = np.asarray(activations(model, x, layer))
    axis = -1 if framework_of(model) == "keras" else 1
    if maps.ndim < 3:
        raise WeightlapseError(f"Layer {layer!r} gives {maps.shape}: pick a layer of feature maps.")
    strength = np.moveaxis(maps, axis, 1).reshape(len(x), maps.shape[axis], -1).max(axis=2)
    chosen = np.argsort(-strength.max(axis=0), kind="stable")[:channels]
    top = min(top, len(x))
    projector = make_method(method, model)
    fig = new_figure((1.3 * top, 2.7 * len(chosen) + 0.5))
    axes = fig.subplots(2 * len(chosen), top, squeeze=False)
    for row, channel in enumerate(chosen):
        best = np.argsort(-strength[:, channel], kind="stable")[:top]
        projected = projector.attribute(x[best], layer=layer, channel=int(channel))
        for col, (i, proj) in enumerate(zip(best, projected)):
            picture, gray = as_picture(x[i])
            axes[2 * row, col].imshow(picture, cmap=gray)
            axes[2 * row, col].set_title(f"#{i}: {strength[i, channel]:.2g}", fontsize="x-small")
            axes[2 * row + 1, col].imshow(as_heat(proj), cmap="inferno")
        axes[2 * row, 0].set_ylabel(f"map {channel}", fontsize="small")
        axes[2 * row + 1, 0].set_ylabel("projection", fontsize="small")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"{layer}: its {len(chosen)} most active feature maps; for each, the {top} inputs that "
        f"activate it most (strongest activation above) and their {method} projection"
    )
    return fig
