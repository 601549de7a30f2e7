"""Compiled passes over tensors' values on the host (numba): the arithmetic of the host
statistics and histograms.

NumPy takes a pass over a tensor per statistic (min, max, sum, squares, magnitudes,
zeros, then the deviations): ten passes, most of the recorder's cost on a CPU model.
`segment_stats` takes one, accumulating in float64, over every tensor of a step in one
call (no Python per tensor), and needs no memory of its own: a 200M-element tensor is
read where it lies. Min and max stay with NumPy for big tensors: its SIMD loops are
faster than what numba vectorises without assuming there is no NaN. The MLP of
bench/overhead.py (269K parameters): statistics 0.11 ms a step against 0.45 for NumPy's
passes, 10,000 tensors of 16 values 0.6 ms (`python bench/stats_kernels.py`).

The variance comes from sums of deviations from each tensor's first value (a "shifted"
one-pass variance): in float64, from float32 values, that keeps the spread of values
near 1000 that differ by 1e-3 to 1e-9 (tests/record/test_stats.py). Kernels compile on
first use and are cached on disk where numba can; a process then loads numba and them in
0.42 s (`python bench/startup_and_inspect.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError

try:
    import numba
except ImportError as exc:  # pragma: no cover - numba is a dependency
    raise MissingDependencyError("numba", "numba") from exc

# Reassociation lets float sums vectorise (several partial sums at once); nothing here
# assumes the values are finite, so NaN and Inf reach the sums, where the caller finds them.
_SUMS_MATH = {"reassoc", "contract"}


def _compiled(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba.njit, cached on disk when numba finds a writable place for its cache (next
    to this file, or the user's cache folder); compiled anew in each process otherwise."""

    def decorate(fn: Callable[..., Any]) -> Any:
        try:
            return numba.njit(nogil=True, cache=True, **options)(fn)
        except RuntimeError:  # "no locator available": nowhere to cache
            return numba.njit(nogil=True, **options)(fn)

    return decorate


@_compiled(fastmath=_SUMS_MATH)
def _sums(a):  # type: ignore[no-untyped-def]  # pragma: no cover
    # One tensor's loop on its own: inside the loop over tensors, LLVM left it scalar
    # (0.7 ns an element against 0.2).
    shift = np.float64(a[0])
    s = 0.0
    s2 = 0.0
    q = 0.0
    sa = 0.0
    z = 0
    for i in range(a.size):
        v = np.float64(a[i])
        d = v - shift
        s += d
        s2 += d * d
        q += v * v
        sa += abs(v)
        z += np.int64(v == 0.0)
    return shift, s, s2, q, sa, z


@_compiled()
def _minmax(a):  # type: ignore[no-untyped-def]  # pragma: no cover
    lo = np.inf
    hi = -np.inf
    for i in range(a.size):
        v = np.float64(a[i])
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi


@_compiled(fastmath=_SUMS_MATH)
def _segment_stats(flat, offsets, sizes, small, lo, hi, stats, done):  # type: ignore[no-untyped-def]  # pragma: no cover
    for t in range(sizes.size):
        m = sizes[t]
        if m == 0:
            continue
        a = flat[offsets[t] : offsets[t] + m]
        if m <= small:
            lo[t], hi[t] = _minmax(a)
        shift, s, s2, q, sa, z = _sums(a)
        if not (np.isfinite(s2) and np.isfinite(q) and np.isfinite(sa)):
            continue  # NaN or Inf in the tensor (or squares past float64)
        if not (np.isfinite(lo[t]) and np.isfinite(hi[t])):
            continue
        dev = s / m
        stats[t, 0] = lo[t]
        stats[t, 1] = hi[t]
        stats[t, 2] = shift + dev
        stats[t, 3] = np.sqrt(max(s2 / m - dev * dev, 0.0))
        stats[t, 4] = np.sqrt(q)
        stats[t, 5] = sa / m
        stats[t, 6] = z / m
        stats[t, 7] = 0.0
        stats[t, 8] = 0.0
        done[t] = True


@_compiled()
def _segment_histograms(flat, offsets, sizes, chosen, lo, scale, counts):  # type: ignore[no-untyped-def]  # pragma: no cover
    top = counts.shape[1] - 1
    for k in range(chosen.size):
        t = chosen[k]
        start = offsets[t]
        low = lo[t]
        by = scale[t]
        for i in range(start, start + sizes[t]):
            x = (flat[i] - low) * by  # in the values' own dtype, as NumPy would
            # the last bin is closed; never an index outside the row (no bounds checks)
            b = top if x >= top else (int(x) if x > 0 else 0)
            counts[t, b] += 1


def host_values(flat: np.ndarray) -> np.ndarray:
    """`flat` as the kernels take it: float32 or float64 (others are cast to float64), in
    one contiguous piece. Call it once; `segment_stats` and `segment_histograms` expect it."""
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    return np.ascontiguousarray(flat)


def segment_stats(
    flat: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    small: int,
    lo: np.ndarray,
    hi: np.ndarray,
    stats: np.ndarray,
) -> np.ndarray:
    """Fills the `stats` rows (min, max, mean, std, l2, mean |x|, zero fraction, no NaN,
    no Inf: layout.STAT_NAMES) of every tensor whose values are all finite, and says
    which those were. `lo` and `hi` hold the min and max of the tensors bigger than
    `small` (NumPy's); the others' are found here and written into them. A tensor with
    NaN or Inf, or whose squares pass float64's range, is left for the caller."""
    done = np.zeros(len(sizes), dtype=np.bool_)
    _segment_stats(flat, offsets, sizes, small, lo, hi, stats, done)
    return done


def segment_histograms(
    flat: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    chosen: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Adds the `chosen` tensors' values (all finite) into `counts` rows: bin
    floor((x - lo) * scale), the last bin closed; computed in the values' dtype, so a
    value on a bin edge lands where np.histogram puts it for that dtype."""
    kind = flat.dtype.type
    with np.errstate(over="ignore"):  # a scale past float32's range: see below
        narrow = scale.astype(kind)
    if np.isfinite(narrow).all():
        _segment_histograms(flat, offsets, sizes, chosen, lo.astype(kind), narrow, counts)
    else:  # a spread too narrow for the dtype (float32 values 1e-38 apart): in float64
        _segment_histograms(flat, offsets, sizes, chosen, lo, scale, counts)
