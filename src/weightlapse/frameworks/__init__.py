"""Everything framework-specific that more than one place needs: which framework a model
belongs to, names, model descriptions, layer outputs, eval/no-grad contexts, and what a
tensor's axes mean. A leaf: it imports no other part of weightlapse but the store's
record types, and each framework only inside its own module."""

from __future__ import annotations

from typing import Any

from weightlapse.errors import WeightlapseError

FRAMEWORKS = ("torch", "keras")


def framework_of(model: Any) -> str:
    """'torch' or 'keras', from the model's class hierarchy (imports neither)."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root in FRAMEWORKS:
            return root
    raise WeightlapseError(
        f"{type(model).__name__} is neither a torch.nn.Module nor a keras.Model; "
        "pass activations you computed yourself to activation_grid as an array."
    )
