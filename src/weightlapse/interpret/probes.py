"""What the recorders keep of a few fixed probe inputs at each snapshot step: the
activations of chosen layers and chosen attribution maps, so that how the network's
features and attention form can be plotted and animated like any other view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError


class ProbeCapture:
    """`attributions` are method names, with a layer after a colon for layer methods:
    ["saliency", "gradcam:conv2"]. `targets`: a class per probe (default: its top class).
    """

    def __init__(
        self,
        model: Any,
        probe_inputs: Any,
        layers: Sequence[str] = (),
        attributions: Sequence[str] = (),
        targets: Any = None,
    ) -> None:
        self.model = model
        self.layers = list(layers)
        self.attributions = [_parse(spec) for spec in attributions]
        self.targets = targets
        if (self.layers or self.attributions) and probe_inputs is None:
            raise WeightlapseError(
                "activations=[...] and attributions=[...] need probe_inputs=: a few fixed "
                "inputs to record them for (for example x_val[:4])."
            )
        self.inputs = None if probe_inputs is None else _as_array(probe_inputs)

    @property
    def active(self) -> bool:
        return bool(self.layers or self.attributions)

    def capture(self) -> dict[str, dict[str, np.ndarray]]:
        from weightlapse.interpret.activations import activations
        from weightlapse.interpret.methods import make_method

        out: dict[str, dict[str, np.ndarray]] = {}
        if self.layers:
            out["activation"] = activations(self.model, self.inputs, self.layers)
        if self.attributions:
            out["attribution"] = {
                spec: make_method(method, self.model).attribute(
                    self.inputs, self.targets, layer=layer
                )
                for spec, method, layer in self.attributions
            }
        return out


def _parse(spec: str) -> tuple[str, str, str | None]:
    method, _, layer = spec.partition(":")
    return spec, method, layer or None


def _as_array(inputs: Any) -> np.ndarray:
    if hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    return np.asarray(inputs, dtype=np.float32)
