"""Activations of named layers of a live model, PyTorch or Keras, by one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.frameworks import framework_of


def activations(model: Any, inputs: Any, layers: str | Sequence[str]) -> Any:
    """The output of `layers` (one name or several) for `inputs`, as NumPy arrays.

    >>> activations(model, x[:1], "conv1").shape        # (1, C, H, W) in PyTorch
    >>> activations(model, x[:1], ["conv2d", "dense"])  # {name: array}, Keras
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if framework_of(model) == "torch":
        from weightlapse.frameworks.torch import layer_outputs
    else:
        from weightlapse.frameworks.keras import layer_outputs
    out = layer_outputs(
        model, np.asarray(inputs) if not hasattr(inputs, "shape") else inputs, names
    )
    return out[names[0]] if isinstance(layers, str) else out
