"""Statistics, histograms and probes of many tensors at once, where the tensors live.

All tensors of one kind are flattened into one vector and reduced by segment, so a
step costs a fixed handful of array operations (not a handful per tensor) and one
copy back to the host. The maths is written once against `ArrayOps`; NumPy, PyTorch
and Keras each supply the few primitives that differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from weightlapse.store.layout import STAT_NAMES

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

    def to_float(self, x: Any) -> Any:
        """Counts as floats, for division."""

    def bin_index(self, x: Any, n_bins: int) -> Any:
        """floor(x) clipped to [0, n_bins - 1], as an integer array."""

    def take(self, values: Any, index: Any) -> Any: ...

    def pack_to_host(self, parts: Sequence[Any]) -> np.ndarray:
        """Flatten and concatenate as float64, then copy to the host once."""

    def host_copy(self, arrays: Sequence[Any]) -> np.ndarray | None:
        """A float32 host copy of all arrays flattened, when they live on the host (else
        None: their statistics are then computed on their device)."""

    def host_view(self, x: Any) -> np.ndarray | None:
        """The tensor's own memory as a flat float32/float64 NumPy array, when it lives on
        the host in one of those dtypes (else None). Never a copy: for tensors too big to
        copy, summarised and snapshotted in place, at once."""

    def to_host(self, x: Any) -> np.ndarray:
        """One whole tensor on the host (for snapshots)."""

    def copy(self, x: Any) -> Any:
        """A detached copy on the same device (for updates)."""

    def device_of(self, x: Any) -> str:
        """A key for where `x` lives, to cache constants per device."""


def collective(ops: ArrayOps) -> bool:
    """Ops over tensors sharded across ranks (record/torch_shards.py, `sharded = True`):
    every rank must take part in each step, so none may skip one (not even after its
    writer stopped); they summarise with `summarize_shards` and `write_snapshots`."""
    return getattr(ops, "sharded", False)


@dataclass(frozen=True)
class Segments:
    """Where each tensor of a kind sits in the flattened vector, and its probe elements."""

    sizes: np.ndarray  # (T,) element counts
    probe_index: np.ndarray  # (P,) positions in the flat vector
    probe_counts: np.ndarray  # (T,) how many probes each tensor has

    @cached_property
    def segment_ids(self) -> np.ndarray:
        """(N,) the tensor of every element: for reductions on a device only (8 bytes an
        element: 1.6 GB for a 200M-element tensor, so never built on the host path)."""
        return np.repeat(np.arange(len(self.sizes), dtype=np.int64), self.sizes)

    @cached_property
    def host_groups(self) -> list[tuple[np.ndarray, Segments, np.ndarray]]:
        """How the host path takes these tensors from their own memory: the small ones (up
        to SMALL elements) together, each bigger one alone. Per group: which tensors,
        their Segments laid end to end, and where their probes sit in this order."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        firsts = np.concatenate([[0], np.cumsum(self.probe_counts)]).astype(np.int64)
        small = np.flatnonzero(self.sizes <= SMALL)
        chosen_groups = [small] if len(small) else []
        chosen_groups += [np.array([t]) for t in np.flatnonzero(self.sizes > SMALL).tolist()]
        groups = []
        for chosen in chosen_groups:
            starts = np.concatenate([[0], np.cumsum(self.sizes[chosen])[:-1]]).astype(np.int64)
            ts = chosen.tolist()
            elements = [
                self.probe_index[firsts[t] : firsts[t + 1]] - offsets[t] + start
                for t, start in zip(ts, starts.tolist())
            ]
            sub = Segments(self.sizes[chosen], np.concatenate(elements), self.probe_counts[chosen])
            at = np.concatenate([np.arange(firsts[t], firsts[t + 1]) for t in ts])
            groups.append((chosen, sub, at.astype(np.int64)))
        return groups

    @classmethod
    def build(cls, sizes: Sequence[int], probes: Sequence[np.ndarray]) -> Segments:
        sizes_arr = np.asarray(sizes, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes_arr)[:-1]])
        flat_probes = [off + np.asarray(p, dtype=np.int64) for off, p in zip(offsets, probes)]
        probe_index = np.concatenate(flat_probes) if flat_probes else np.zeros(0, dtype=np.int64)
        counts = np.asarray([len(p) for p in probes], dtype=np.int64)
        return cls(sizes_arr, probe_index, counts)


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
    histograms: bool = True,
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
    denom = ops.to_float(ops.where(n_finite > 0, n_finite, 1))
    mean = total / denom
    # Squares are taken of x / max|x|: exploding weights (1e20) must not read as Inf.
    big = ops.where(hi > -lo, hi, -lo)
    scale_by = ops.where(n_finite > 0, ops.where(big > 0, big, 1.0), 1.0)
    inverse = ops.take(1.0 / scale_by, seg)
    xs = x * inverse
    # Two passes for the variance: one-pass sum-of-squares loses float32 precision.
    centred = ops.where(finite, (flat - ops.take(mean, seg)) * inverse, 0.0)
    sq_dev = ops.segment_sum(centred * centred, seg, n)
    sq = ops.segment_sum(xs * xs, seg, n)
    # Tensors with nothing finite have lo = +inf, hi = -inf: give them a harmless range.
    any_finite = n_finite > 0
    lo_seg = ops.take(ops.where(any_finite, lo, 0.0), seg)
    width = ops.take(ops.where(any_finite, hi - lo, 0.0), seg)
    scale = ops.where(width > 0, bins / ops.where(width > 0, width, 1.0), 0.0)
    parts = [lo, hi, mean, sq_dev / denom, sq, abs_total / denom, n_zero, n_nan, n_finite]
    parts.append(scale_by)
    if histograms:
        bin_of = ops.bin_index((x - lo_seg) * scale, bins)
        parts.append(ops.segment_count(finite, seg * bins + bin_of, n * bins))
    parts.append(ops.take(flat, probe_index))
    host = ops.pack_to_host(parts)
    if not histograms:  # zero counts: "no histogram at this step" (docs/format.md)
        host = np.concatenate([host[: 10 * n], np.zeros(n * bins), host[10 * n :]])
    k = 10 * n
    lo_h, hi_h, mean_h, var_h, sq_h, mabs_h, zero_h, nan_h, fin_h, by_h = host[:k].reshape(10, n)
    sizes = segments.sizes.astype(np.float64)
    stats = np.stack(
        [
            lo_h,
            hi_h,
            mean_h,
            by_h * np.sqrt(np.maximum(var_h, 0.0)),
            by_h * np.sqrt(sq_h),
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


def summarize_host(
    flat: np.ndarray, segments: Segments, bins: int = DEFAULT_BINS, histograms: bool = True
) -> Summary:
    """The numbers `summarize` gives, from a host copy (float32 or float64), one tensor
    slice at a time.

    On a CPU this is several times faster than segment reductions: contiguous slices
    need no scatter, and a finite sum of squares proves a tensor has no NaN or Inf, so
    the common case needs no masks. Otherwise the finite values are taken in float64 and
    divided by their largest magnitude first, so no statistic overflows (an L2 of 1e300
    is 1e300, not Inf). The recorder runs it on the writer thread.
    """
    n = len(segments.sizes)
    stats = np.full((n, len(STAT_NAMES)), np.nan)
    counts = np.zeros((n, bins), dtype=np.int64)
    scratch = np.empty(min(int(segments.sizes.max(initial=0)), BLOCK), dtype=flat.dtype)
    sizes = segments.sizes
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        small = np.flatnonzero((sizes > 0) & (sizes <= SMALL))
        done = np.zeros(n, dtype=bool)
        if len(small) >= 2:  # small tensors: a few vectorised passes for all
            done[small] = _summarize_small(
                flat, sizes, offsets, small, stats, counts, bins, histograms
            )
        for t, size in enumerate(sizes.tolist()):
            if size == 0 or done[t]:
                continue
            a = flat[offsets[t] : offsets[t] + size]
            zero_frac = _zeros(a) / size
            sq = float(np.dot(a, a))
            if np.isfinite(sq):
                stats[t] = _moments(a, sq, scratch, 1.0, counts[t], bins, histograms)
                stats[t, 6:] = (zero_frac, 0, 0)
                continue
            mask = np.isfinite(a)
            n_nan = int(np.isnan(a).sum())
            n_inf = size - n_nan - int(mask.sum())
            finite = a[mask].astype(np.float64)
            stats[t, 6:] = (zero_frac, n_nan, n_inf)
            if finite.size == 0:
                continue
            scale = float(np.max(np.abs(finite)))
            scale = scale if scale > 0 else 1.0
            unit = finite / scale  # |unit| <= 1: its squares and sums cannot overflow
            sq_unit = float(np.dot(unit, unit))
            work = np.empty(min(unit.size, BLOCK), dtype=unit.dtype)
            stats[t, :6] = _moments(unit, sq_unit, work, scale, counts[t], bins, histograms)[:6]
            stats[t, :2] = (float(finite.min()), float(finite.max()))  # exact, not rescaled
    probes = flat[segments.probe_index].astype(np.float64)
    return Summary(stats=stats, counts=counts, probes=probes)


# Tensors up to this size are summarised together, by segment (np.*.reduceat): a
# per-tensor loop costs ~20 NumPy calls a tensor, 0.4 s a step for 10,000 of them.
SMALL = 4096


def _summarize_small(
    flat: np.ndarray,
    sizes: np.ndarray,
    offsets: np.ndarray,
    chosen: np.ndarray,
    stats: np.ndarray,
    counts: np.ndarray,
    bins: int,
    histograms: bool = True,
) -> np.ndarray:
    """Fills `stats` and (`histograms`) `counts` rows of the `chosen` tensors (all small,
    none empty) whose values are all finite; returns which those were (the others take
    the loop)."""
    sub_sizes = sizes[chosen]
    ends = np.cumsum(sub_sizes)
    local = ends - sub_sizes  # where each tensor starts in x
    pos = (
        np.arange(int(ends[-1]))
        - np.repeat(local, sub_sizes)
        + np.repeat(offsets[chosen], sub_sizes)
    )
    x = flat[pos]
    x64 = x.astype(np.float64)
    sq = np.add.reduceat(x64 * x64, local)
    finite = np.isfinite(sq)
    if not finite.all():
        bad = np.repeat(~finite, sub_sizes)
        x, x64 = np.where(bad, 0, x).astype(x.dtype), np.where(bad, 0.0, x64)
    m = sub_sizes.astype(np.float64)
    lo = np.minimum.reduceat(x64, local)
    hi = np.maximum.reduceat(x64, local)
    mean = np.add.reduceat(x64, local) / m
    dev = x64 - np.repeat(mean, sub_sizes)
    rows = np.stack(
        [
            lo,
            hi,
            mean,
            np.sqrt(np.add.reduceat(dev * dev, local) / m),
            np.sqrt(sq),
            np.add.reduceat(np.abs(x64), local) / m,
            np.add.reduceat((x64 == 0).astype(np.int64), local) / m,
            np.zeros_like(m),
            np.zeros_like(m),
        ],
        axis=1,
    )
    stats[chosen[finite]] = rows[finite]
    if not histograms:
        return finite  # counts stay zero: no histogram at this step
    # bins as the per-tensor path takes them, in the copy's own dtype
    width = hi - lo
    scale = np.where(width > 0, bins / np.where(width > 0, width, 1.0), 0.0)
    kind = x.dtype.type
    binned = (x - np.repeat(lo.astype(kind), sub_sizes)) * np.repeat(scale.astype(kind), sub_sizes)
    index = np.minimum(binned, bins - 1).astype(np.int64)
    which = np.repeat(np.arange(len(chosen)), sub_sizes)
    hist = np.bincount(which * bins + index, minlength=len(chosen) * bins).reshape(-1, bins)
    counts[chosen[finite]] = hist[finite]
    return finite


# Element-wise work goes a block at a time, so a tensor of 200M elements needs no copy of
# itself. Small blocks, because the scratch and the histogram's temporaries are fresh
# allocations every step: at 2**20 elements the allocator hands them back to the kernel
# and every step pays the page faults again (a 200K-element tensor's statistics and
# histogram took 1.74 ms; at 2**16, 0.52 ms), and they stay in the cache besides.
BLOCK = 1 << 16


def _blocks(size: int) -> range:
    return range(0, size, BLOCK)


def _zeros(a: np.ndarray) -> int:
    return sum(int(np.count_nonzero(a[i : i + BLOCK] == 0)) for i in _blocks(a.size))


def _moments(
    a: np.ndarray,
    sq: float,
    scratch: np.ndarray,
    scale: float,
    counts: np.ndarray,
    bins: int,
    histograms: bool = True,
) -> np.ndarray:
    """min, max, mean, std, l2, mean |x| of `a` * scale (all finite), and (`histograms`)
    its histogram into `counts`; `sq` is a·a and `scratch` a buffer of up to BLOCK."""
    m = a.size
    lo, hi = float(a.min()), float(a.max())
    # NumPy sums pairwise in the array's own dtype: float32 sums of 10**6 values are
    # good to ~1e-7 relative to the sum of magnitudes, at half the cost of float64.
    mean = float(a.sum()) / m
    sq_dev = abs_total = 0.0
    binning = histograms and hi > lo
    for i in _blocks(m):
        block = a[i : i + BLOCK]
        work = scratch[: block.size]
        np.subtract(block, work.dtype.type(mean), out=work)
        sq_dev += float(np.dot(work, work))
        abs_total += float(np.abs(block, out=work).sum())
        if binning:
            np.subtract(block, work.dtype.type(lo), out=work)
            np.multiply(work, work.dtype.type(bins / (hi - lo)), out=work)
            np.minimum(work, bins - 1, out=work)
            counts += np.bincount(work.astype(np.int32), minlength=bins)[:bins]
    if histograms and not binning:
        counts[0] = m  # one value: all in the first bin
    out = np.full(len(STAT_NAMES), np.nan)
    out[:6] = (
        lo * scale,
        hi * scale,
        mean * scale,
        np.sqrt(sq_dev / m) * scale,
        np.sqrt(sq) * scale,
        abs_total / m * scale,
    )
    return out


def choose_probes(size: int, max_probes: int, seed: int) -> np.ndarray:
    """Every element of a small tensor, a fixed seeded sample of a big one (sorted)."""
    if size <= max_probes:
        return np.arange(size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=max_probes, replace=False)).astype(np.int64)
