"""What the generic `log` accepts: any nesting of dicts, lists, named tuples and
dataclasses of arrays (a JAX or optax pytree, a sess.run result), named by key path; and
which numbers it takes (every real dtype of NumPy, torch, JAX and TF)."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError


def _children(tree: Any) -> list[tuple[str, Any]] | None:
    """A node's (key, child) pairs, or None for a leaf."""
    if isinstance(tree, Mapping):
        return [(str(k), v) for k, v in tree.items()]
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple: optax states
        return [(f, getattr(tree, f)) for f in tree._fields]
    if isinstance(tree, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(tree)]
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):  # flax structs
        return [(f.name, getattr(tree, f.name)) for f in dataclasses.fields(tree)]
    return None


def flatten_named(tree: Any) -> dict[str, Any]:
    """{'dense': {'kernel': k}} -> {'dense/kernel': k}: keys joined by '/', lists by index,
    named tuples and dataclasses by field. A bare array is named 'value'. Two leaves that
    come to one name, and empty keys, are errors."""
    if isinstance(tree, Mapping) and _flat_arrays(tree):
        return {str(k): v for k, v in tree.items()}  # already flat: names are the keys
    out: dict[str, Any] = {}
    origin: dict[str, tuple[str, ...]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        children = _children(node)
        if children is None:
            name = "/".join(path) or "value"
            if name in out:
                raise WeightlapseError(
                    f"{name!r} is named twice: by the keys {list(origin[name])} and "
                    f"{list(path)}. Give each tensor its own name."
                )
            out[name], origin[name] = node, path
            return
        for key, child in children:
            if key == "":
                where = "/".join(path) or "the top level"
                raise WeightlapseError(
                    f"An empty key at {where}: every tensor needs a name to be recorded."
                )
            walk(child, (*path, key))

    walk(tree, ())
    return out


def _flat_arrays(tree: Mapping) -> bool:
    """A dict of NumPy arrays under distinct, non-empty string keys: the common case,
    named as the nested walk would name it, without walking 10,000 leaves one by one."""
    return all(type(k) is str and k for k in tree) and all(
        type(v) is np.ndarray for v in tree.values()
    )


def dtype_name(value: Any) -> str:
    """The dtype as its framework calls it: 'float32', 'bfloat16', 'float8_e4m3fn'."""
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    return str(dtype).replace("torch.", "")


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A framework tensor or array-like as a NumPy array of real numbers, or a clear error.
    Dtypes NumPy lacks (torch's bfloat16 and float8) become float32, which holds them
    exactly; ml_dtypes arrays (JAX, TF) are kept as they are."""
    if type(value) is np.ndarray and value.dtype.kind in "fiub":
        return value
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        if value.is_complex():
            raise WeightlapseError(f"{name!r} is complex ({value.dtype}); record real numbers.")
        try:
            value = value.numpy()
        except TypeError:  # bfloat16, float8: no NumPy dtype
            value = value.float().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf, keras
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise WeightlapseError(
            f"{name!r}: cannot read a {type(value).__name__} as an array ({exc}). Give a "
            "NumPy array, a framework tensor, or a nested dict/list of them."
        ) from None
    if array.dtype.kind in "fiub":
        return array
    if array.dtype.kind == "c":
        raise WeightlapseError(f"{name!r} is complex ({array.dtype}); record real numbers.")
    if array.dtype.kind == "V" and _real_extension(array.dtype):
        return array  # bfloat16, float8_*, int4 from ml_dtypes
    raise WeightlapseError(
        f"{name!r} has dtype {array.dtype}; weightlapse records real numbers (float, int, "
        "bool, bfloat16, float8)."
    )


def _real_extension(dtype: np.dtype) -> bool:
    try:
        np.zeros(1, dtype=dtype).astype(np.float64)
        return True
    except (TypeError, ValueError):
        return False


def check_step(step: Any, last: int | None) -> int:
    """A step is an integer >= 0, after the last one logged."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise WeightlapseError(
            f"step={step!r} is not an integer step; give the count of training steps "
            "(optimizer updates) so far as an int."
        )
    step = int(step)
    if step < 0:
        raise WeightlapseError(f"step={step} is negative; steps count up from 0.")
    if last is not None and step <= last:
        raise WeightlapseError(
            f"step={step} comes after step {last}: steps must increase. (To go on after a "
            "restart, resume at a step past the last one recorded.)"
        )
    return step


def parent_path(name: str) -> str:
    """'encoder/0/w' -> 'encoder/0', 'fc1.weight' -> 'fc1': the layer a name implies."""
    for sep in ("/", "."):
        if sep in name:
            return name.rsplit(sep, 1)[0]
    return ""


def same_dtype(host: np.ndarray, tensor: Any) -> bool:
    """Whether a host copy kept the tensor's own dtype."""
    if isinstance(tensor, np.ndarray):
        return host.dtype == tensor.dtype
    return str(host.dtype) == dtype_name(tensor)


def scalar_value(value: Any) -> float:
    """A logged scalar (a number, a 0-d array or tensor) as a float; NaN when it is not one."""
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return float("nan")
