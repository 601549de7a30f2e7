"""`ArrayOps` over `keras.ops`: statistics stay on the backend's device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError

try:
    import keras
except ImportError as exc:  # pragma: no cover - exercised without keras installed
    raise MissingDependencyError("keras", "keras") from exc


class KerasOps:
    """`ArrayOps` over `keras.ops`: statistics stay on the backend's device."""

    def __init__(self) -> None:
        self.k = keras.ops

    def flatten_concat(self, arrays: Sequence[Any]) -> Any:
        k = self.k
        return k.concatenate([k.reshape(k.cast(a, "float32"), (-1,)) for a in arrays])

    def constant(self, values: np.ndarray, like: Any) -> Any:
        return self.k.convert_to_tensor(values.astype(np.int32))

    def segment_sum(self, values: Any, segments: Any, n: int) -> Any:
        return self.k.segment_sum(values, segments, num_segments=n, sorted=False)

    def segment_count(self, mask: Any, segments: Any, n: int) -> Any:
        return self.segment_sum(self.k.cast(mask, "int32"), segments, n)

    def segment_min(self, values: Any, segments: Any, n: int) -> Any:
        return -self.k.segment_max(-values, segments, num_segments=n, sorted=False)

    def segment_max(self, values: Any, segments: Any, n: int) -> Any:
        return self.k.segment_max(values, segments, num_segments=n, sorted=False)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.k.where(cond, a, b)

    def isfinite(self, x: Any) -> Any:
        return self.k.isfinite(x)

    def isnan(self, x: Any) -> Any:
        return self.k.isnan(x)

    def to_float(self, x: Any) -> Any:
        return self.k.cast(x, "float32")

    def bin_index(self, x: Any, n_bins: int) -> Any:
        return self.k.cast(self.k.clip(self.k.floor(x), 0, n_bins - 1), "int32")

    def take(self, values: Any, index: Any) -> Any:
        return self.k.take(values, index, axis=0)

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        # Two copies, floats and counts: float64 is not on every backend (JAX without
        # x64), and float32 would round counts past 2**24.
        k = self.k
        is_int = ["int" in str(p.dtype) for p in parts]
        groups = {}
        for want_int in (False, True):
            chosen = [k.reshape(p, (-1,)) for p, i in zip(parts, is_int) if i == want_int]
            if chosen:
                groups[want_int] = iter(
                    np.split(
                        k.convert_to_numpy(k.concatenate(chosen)).astype(np.float64),
                        np.cumsum([int(np.prod(c.shape)) for c in chosen])[:-1],
                    )
                )
        return np.concatenate([next(groups[i]) for i in is_int])

    def host_copy(self, arrays: Sequence[Any]) -> None:
        return None  # chosen for device tensors: reduce them where they are

    def host_view(self, x: Any) -> None:
        return None  # a copy either way: the usual path

    def to_host(self, x: Any) -> np.ndarray:
        return np.array(self.k.convert_to_numpy(x), copy=True)

    def copy(self, x: Any) -> Any:
        return self.k.copy(x)

    def device_of(self, x: Any) -> str:
        return str(getattr(x, "device", "keras"))
