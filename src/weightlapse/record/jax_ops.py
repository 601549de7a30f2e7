"""`ArrayOps` over `jax.numpy`: statistics of arrays on an accelerator are reduced there,
and come back in one small transfer per step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised without jax installed
    raise MissingDependencyError("jax", "jax") from exc


class JaxOps:
    """`ArrayOps` over JAX arrays. Arrays on the CPU are summarised through NumPy (no
    dispatch per operation); `on_device=True` keeps even those in `jax.numpy`."""

    def __init__(self, on_device: bool | None = None) -> None:
        self.on_device = on_device

    def flatten_concat(self, arrays: Sequence[Any]) -> Any:
        wide = jax.config.jax_enable_x64 and any(a.dtype.itemsize > 4 for a in arrays)
        dtype = jnp.float64 if wide else jnp.float32
        return jnp.concatenate([jnp.ravel(a).astype(dtype) for a in arrays])

    def constant(self, values: np.ndarray, like: Any) -> Any:
        return jax.device_put(values.astype(np.int32), _device(like))

    def segment_sum(self, values: Any, segments: Any, n: int) -> Any:
        return jax.ops.segment_sum(values, segments, num_segments=n)

    def segment_count(self, mask: Any, segments: Any, n: int) -> Any:
        return jax.ops.segment_sum(mask.astype(jnp.int32), segments, num_segments=n)

    def segment_min(self, values: Any, segments: Any, n: int) -> Any:
        return jax.ops.segment_min(values, segments, num_segments=n)

    def segment_max(self, values: Any, segments: Any, n: int) -> Any:
        return jax.ops.segment_max(values, segments, num_segments=n)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return jnp.where(cond, a, b)

    def isfinite(self, x: Any) -> Any:
        return jnp.isfinite(x)

    def isnan(self, x: Any) -> Any:
        return jnp.isnan(x)

    def to_float(self, x: Any) -> Any:
        return x.astype(jnp.float32)

    def bin_index(self, x: Any, n_bins: int) -> Any:
        return jnp.clip(jnp.floor(x), 0, n_bins - 1).astype(jnp.int32)

    def take(self, values: Any, index: Any) -> Any:
        return jnp.take(values, index, axis=0)

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        # One transfer of every part together; float64 happens on the host (JAX without
        # x64 has none, and float32 would round counts past 2**24).
        host = jax.device_get(list(parts))
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in host])

    def host_copy(self, arrays: Sequence[Any]) -> np.ndarray | None:
        if self.on_device or any(_device(a).platform != "cpu" for a in arrays):
            return None
        if not arrays:
            return np.zeros(0, dtype=np.float32)
        wide = any(np.dtype(a.dtype).itemsize > 4 and a.dtype.kind in "fiu" for a in arrays)
        dtype = np.float64 if wide else np.float32
        return np.concatenate([np.asarray(a).reshape(-1).astype(dtype) for a in arrays])

    def host_view(self, x: Any) -> None:
        return None  # a copy either way: the usual path

    def to_host(self, x: Any) -> np.ndarray:
        return np.array(jax.device_get(x), copy=True)  # bfloat16 stays bfloat16 (ml_dtypes)

    def copy(self, x: Any) -> Any:
        # A real copy: a jitted step that donates its inputs deletes the old buffers.
        return jnp.array(x, copy=True)

    def device_of(self, x: Any) -> str:
        return str(_device(x))


def _device(x: Any) -> Any:
    devices = x.devices() if hasattr(x, "devices") else {jax.devices("cpu")[0]}
    return next(iter(devices))
