"""What the generic `log` accepts: any nesting of dicts and lists of arrays, named by path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError


def flatten_named(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'dense': {'kernel': k}} -> {'dense/kernel': k}; lists and tuples use their index."""
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix or "value": tree}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten_named(value, f"{prefix}/{key}" if prefix else key))
    return out


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A framework tensor or array-like as a NumPy array of numbers, or a clear error."""
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf, keras
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise WeightlapseError(
            f"{name!r}: cannot read a {type(value).__name__} as an array ({exc}). Give a "
            "NumPy array, a framework tensor, or a nested dict/list of them."
        ) from None
    if array.dtype.kind not in "fiub":
        raise WeightlapseError(
            f"{name!r} has dtype {array.dtype}; weightlapse records numbers (float, int, bool)."
        )
    return array
