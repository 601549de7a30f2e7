"""`ArrayOps` over NumPy, for host arrays and the generic `run.log`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def host_dtype(dtypes: Sequence[Any]) -> np.dtype:
    """float64 when any input needs it (float64 values past float32's range, integers past
    2**24); float32 otherwise, which holds float16, bfloat16 and float8 exactly."""
    for dtype in dtypes:
        d = np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
        if d == np.float64 or (d.kind in "iu" and d.itemsize >= 4):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


class NumpyOps:
    """`ArrayOps` over NumPy."""

    def flatten_concat(self, arrays: Sequence[Any]) -> np.ndarray:
        if not arrays:
            return np.zeros(0, dtype=np.float32)
        if all(type(a) is np.ndarray for a in arrays):  # one C loop, no per-array calls
            dtype = host_dtype(list({a.dtype for a in arrays}))
            return np.concatenate(arrays, axis=None, dtype=dtype, casting="unsafe")
        dtype = host_dtype([np.asarray(a).dtype for a in arrays])
        return np.concatenate([np.asarray(a).reshape(-1).astype(dtype, copy=False) for a in arrays])

    def constant(self, values: np.ndarray, like: Any) -> np.ndarray:
        return values

    def segment_sum(self, values: np.ndarray, segments: np.ndarray, n: int) -> np.ndarray:
        return np.bincount(segments, weights=values, minlength=n)

    def segment_count(self, mask: np.ndarray, segments: np.ndarray, n: int) -> np.ndarray:
        return np.bincount(segments[mask], minlength=n)

    def segment_min(self, values: np.ndarray, segments: np.ndarray, n: int) -> np.ndarray:
        out = np.full(n, np.inf, dtype=np.float64)
        np.minimum.at(out, segments, values)
        return out

    def segment_max(self, values: np.ndarray, segments: np.ndarray, n: int) -> np.ndarray:
        out = np.full(n, -np.inf, dtype=np.float64)
        np.maximum.at(out, segments, values)
        return out

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    def isfinite(self, x: np.ndarray) -> np.ndarray:
        return np.isfinite(x)

    def isnan(self, x: np.ndarray) -> np.ndarray:
        return np.isnan(x)

    def to_float(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def bin_index(self, x: np.ndarray, n_bins: int) -> np.ndarray:
        return np.clip(np.floor(x), 0, n_bins - 1).astype(np.int64)

    def take(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.asarray(values)[index]

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])

    def host_copy(self, arrays: Sequence[Any]) -> np.ndarray:
        return self.flatten_concat(arrays)

    def host_view(self, x: Any) -> np.ndarray | None:
        if type(x) is np.ndarray and x.dtype in FLOATS and x.flags.c_contiguous:
            return x.reshape(-1)
        return None

    def to_host(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)  # the caller may change its array after logging

    def copy(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)

    def device_of(self, x: Any) -> str:
        return "cpu"
