"""The few things attribution methods need from a framework: a forward pass, gradients
with a chosen ReLU backward rule, and a layer's maps with their gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError


class Backend:
    """Shared by the framework backends; subclasses supply the three primitives."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def input_gradient(
        self, x: np.ndarray, target: Any, rule: str, feature: tuple[str, Any] | None = None
    ) -> np.ndarray:
        """d score[target] / d input, with `rule` ('gradient', 'deconvnet', 'guided')
        used for the backward pass through every ReLU. With `feature` (layer, channel per
        input) the score is instead that feature map's strongest activation."""
        raise NotImplementedError

    def layer_gradient(
        self, x: np.ndarray, target: Any, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """A layer's output and d score / d output, both as (N, C, H, W)."""
        raise NotImplementedError

    def resolve_target(self, x: np.ndarray, target: Any) -> np.ndarray:
        """One class index per input: given, broadcast, or each input's top class."""
        if target is None:
            return np.argmax(self.predict(x).reshape(len(x), -1), axis=1)
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        if target.size == 1:
            target = np.full(len(x), int(target[0]))
        if target.size != len(x):
            raise WeightlapseError(
                f"{target.size} targets for {len(x)} inputs: give one "
                "class index, or one per input."
            )
        return target


OUTPUTS = ("logits", "model")


def check_output(output: str) -> str:
    """What a method attributes to: 'logits', the class scores (before a final softmax:
    what Simonyan et al. define), or 'model', the model's own output."""
    if output not in OUTPUTS:
        raise WeightlapseError(
            f"output={output!r}: attribute to 'logits' (the class scores before a final "
            "softmax) or to 'model' (the model's own output)."
        )
    return output
