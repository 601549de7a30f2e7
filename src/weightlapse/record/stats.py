"""Statistics, histograms and probes of many tensors at once, where the tensors live.

All tensors of one kind are flattened into one vector and reduced by segment, so a
step costs a fixed handful of array operations (not a handful per tensor) and one
copy back to the host. The maths is written once against `ArrayOps`; NumPy, PyTorch
and Keras each supply the few primitives that differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

STAT_NAMES: tuple[str, ...] = (
    "min",
    "max",
    "mean",
    "std",
    "l2",
    "mean_abs",
    "zero_frac",
    "nan_count",
    "inf_count",
)
DEFAULT_BINS = 64


class ArrayOps(Protocol):
    """The primitives `summarize` needs from an array library."""

    def flatten_concat(self, arrays: Sequence[Any]) -> Any:
        """All arrays flattened, cast to float32 and concatenated (on their device)."""

    def constant(self, values: np.ndarray, like: Any) -> Any:
        """A host array moved next to `like` (cached by the caller)."""

    def segment_sum(self, values: Any, segments: Any, n: int) -> Any: ...

    def segment_count(self, mask: Any, segments: Any, n: int) -> Any: ...

    def segment_min(self, values: Any, segments: Any, n: int) -> Any: ...

    def segment_max(self, values: Any, segments: Any, n: int) -> Any: ...

    def where(self, cond: Any, a: Any, b: Any) -> Any: ...

    def isfinite(self, x: Any) -> Any: ...

    def isnan(self, x: Any) -> Any: ...

    def bin_index(self, x: Any, n_bins: int) -> Any:
        """floor(x) clipped to [0, n_bins - 1], as an integer array."""

    def take(self, values: Any, index: Any) -> Any: ...

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        """Flatten and concatenate as float64, then copy to the host once."""

    def to_host(self, x: Any) -> np.ndarray:
        """One whole tensor on the host (for snapshots)."""

    def copy(self, x: Any) -> Any:
        """A detached copy on the same device (for updates)."""

    def device_of(self, x: Any) -> str:
        """A key for where `x` lives, to cache constants per device."""


@dataclass(frozen=True)
class Segments:
    """Where each tensor of a kind sits in the flattened vector, and its probe elements."""

    sizes: np.ndarray  # (T,) element counts
    segment_ids: np.ndarray  # (N,) tensor index of every element
    probe_index: np.ndarray  # (P,) positions in the flat vector
    probe_counts: np.ndarray  # (T,) how many probes each tensor has

    @classmethod
    def build(cls, sizes: Sequence[int], probes: Sequence[np.ndarray]) -> Segments:
        sizes_arr = np.asarray(sizes, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes_arr)[:-1]])
        segment_ids = np.repeat(np.arange(len(sizes_arr), dtype=np.int64), sizes_arr)
        flat_probes = [off + np.asarray(p, dtype=np.int64) for off, p in zip(offsets, probes)]
        probe_index = (
            np.concatenate(flat_probes) if flat_probes else np.zeros(0, dtype=np.int64)
        )
        counts = np.asarray([len(p) for p in probes], dtype=np.int64)
        return cls(sizes_arr, segment_ids, probe_index, counts)


@dataclass
class Summary:
    """One step's numbers for T tensors of one kind, on the host."""

    stats: np.ndarray  # (T, len(STAT_NAMES)) float64
    counts: np.ndarray  # (T, bins) int64; bin edges are linspace(min, max, bins + 1)
    probes: np.ndarray  # (P,) float64


def summarize(
    ops: ArrayOps,
    arrays: Sequence[Any],
    segments: Segments,
    device_constants: tuple[Any, Any],
    bins: int = DEFAULT_BINS,
) -> Summary:
    """Statistics, histogram and probe values of every array, in one pass per reduction.

    `device_constants` is (segment_ids, probe_index) already moved beside the arrays.
    NaN and Inf are counted, and left out of every other statistic and the histogram.
    """
    n = len(segments.sizes)
    seg, probe_index = device_constants
    flat = ops.flatten_concat(arrays)
    finite = ops.isfinite(flat)
    x = ops.where(finite, flat, 0.0)
    n_finite = ops.segment_count(finite, seg, n)
    n_nan = ops.segment_count(ops.isnan(flat), seg, n)
    n_zero = ops.segment_count(flat == 0, seg, n)
    lo = ops.segment_min(ops.where(finite, flat, np.inf), seg, n)
    hi = ops.segment_max(ops.where(finite, flat, -np.inf), seg, n)
    total = ops.segment_sum(x, seg, n)
    abs_total = ops.segment_sum(ops.where(x < 0, -x, x), seg, n)
    denom = ops.where(n_finite > 0, n_finite, 1) * 1.0
    mean = total / denom
    # Two passes for the variance: one-pass sum-of-squares loses float32 precision.
    centred = ops.where(finite, flat - ops.take(mean, seg), 0.0)
    sq_dev = ops.segment_sum(centred * centred, seg, n)
    sq = ops.segment_sum(x * x, seg, n)
    # Tensors with nothing finite have lo = +inf, hi = -inf: give them a harmless range.
    any_finite = n_finite > 0
    lo_seg = ops.take(ops.where(any_finite, lo, 0.0), seg)
    width = ops.take(ops.where(any_finite, hi - lo, 0.0), seg)
    scale = ops.where(width > 0, bins / ops.where(width > 0, width, 1.0), 0.0)
    bin_of = ops.bin_index((x - lo_seg) * scale, bins)
    counts = ops.segment_count(finite, seg * bins + bin_of, n * bins)
    probe_values = ops.take(flat, probe_index)
    host = ops.pack_to_host(
        [lo, hi, mean, sq_dev / denom, sq, abs_total / denom, n_zero, n_nan, n_finite]
        + [counts, probe_values]
    )
    k = 9 * n
    lo_h, hi_h, mean_h, var_h, sq_h, mabs_h, zero_h, nan_h, fin_h = host[:k].reshape(9, n)
    sizes = segments.sizes.astype(np.float64)
    stats = np.stack(
        [
            lo_h,
            hi_h,
            mean_h,
            np.sqrt(np.maximum(var_h, 0.0)),
            np.sqrt(sq_h),
            mabs_h,
            zero_h / np.maximum(sizes, 1.0),
            nan_h,
            sizes - fin_h - nan_h,
        ],
        axis=1,
    )
    stats[fin_h == 0, :6] = np.nan  # nothing finite: no min, max, moments
    return Summary(
        stats=stats,
        counts=host[k : k + n * bins].reshape(n, bins).astype(np.int64),
        probes=host[k + n * bins :],
    )


def histogram_edges(stats_row_min: float, stats_row_max: float, bins: int) -> np.ndarray:
    """The bin edges of a recorded histogram: `bins` equal bins over that step's finite range."""
    return np.linspace(stats_row_min, stats_row_max, bins + 1)


def choose_probes(size: int, max_probes: int, seed: int) -> np.ndarray:
    """Every element of a small tensor, a fixed seeded sample of a big one (sorted)."""
    if size <= max_probes:
        return np.arange(size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=max_probes, replace=False)).astype(np.int64)


class NumpyOps:
    """`ArrayOps` over NumPy, for host arrays and the generic `run.log`."""

    def flatten_concat(self, arrays: Sequence[Any]) -> np.ndarray:
        if not arrays:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])

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

    def bin_index(self, x: np.ndarray, n_bins: int) -> np.ndarray:
        return np.clip(np.floor(x), 0, n_bins - 1).astype(np.int64)

    def take(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.asarray(values)[index]

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def copy(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)

    def device_of(self, x: Any) -> str:
        return "cpu"
