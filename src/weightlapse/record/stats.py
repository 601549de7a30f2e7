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
    def offsets(self) -> np.ndarray:
        """(T,) where each tensor starts in the flat vector."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @cached_property
    def segment_ids(self) -> np.ndarray:
        """(N,) the tensor of every element: for reductions on a device only (8 bytes an
        element: 1.6 GB for a 200M-element tensor, so never built on the host path)."""
        return np.repeat(np.arange(len(self.sizes), dtype=np.int64), self.sizes)

    @cached_property
    def big(self) -> list[int]:
        """The tensors over SMALL elements: NumPy takes their min and max."""
        return np.flatnonzero(self.sizes > SMALL).tolist()

    @cached_property
    def host_groups(self) -> list[tuple[np.ndarray, Segments, np.ndarray]]:
        """How the host path takes these tensors from their own memory: the small ones (up
        to SMALL elements) together, each bigger one alone. Per group: which tensors,
        their Segments laid end to end, and where their probes sit in this order."""
        offsets = self.offsets
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
        # A spread under bins / float32's largest (values 1e-38 apart, underflowing
        # gradients) makes the scale Inf, and (lo - lo) * Inf NaN: divide those instead.
        fits = ops.isfinite(scale)
        offset = x - lo_seg
        spread = offset / ops.where(width > 0, width, 1.0) * bins
        bin_of = ops.bin_index(ops.where(fits, offset * ops.where(fits, scale, 0.0), spread), bins)
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
    """The numbers `summarize` gives, from a host array (float32 or float64) holding the
    tensors end to end. The recorder runs it on the writer thread, or on the training
    thread when the writer is behind.

    Compiled passes (record/kernels.py) sum every tensor in one call, in float64, with no
    copy; a tensor whose sums come out finite has no NaN or Inf, so the common case needs
    no masks. The others are taken apart here: their finite values in float64, divided
    by their largest magnitude first, so no statistic overflows (an L2 of 1e300 is 1e300,
    not Inf).
    """
    sizes = segments.sizes
    n = len(sizes)
    stats = np.full((n, len(STAT_NAMES)), np.nan)
    counts = np.zeros((n, bins), dtype=np.int64)
    done = _finite_rows(flat, segments.offsets, sizes, stats, counts, histograms, segments.big)
    if not done.all():
        with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
            for t in np.flatnonzero(~done & (sizes > 0)).tolist():
                start = int(segments.offsets[t])
                a = flat[start : start + int(sizes[t])]
                _non_finite_row(a, stats[t], counts[t], histograms)
    probes = flat[segments.probe_index].astype(np.float64)
    return Summary(stats=stats, counts=counts, probes=probes)


# Tensors up to this size take their min and max in one compiled loop for all of them;
# a bigger one takes NumPy's two SIMD passes. (And summarize_in_place gathers tensors up
# to this size into one array.)
SMALL = 4096

_kernels: Any = None


def _loaded_kernels() -> Any:
    """record/kernels.py: numba is loaded when the host path is first used (an import
    statement each call cost 2 us of a step's 200)."""
    global _kernels
    if _kernels is None:
        from weightlapse.record import kernels

        _kernels = kernels
    return _kernels


def _finite_rows(
    flat: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    stats: np.ndarray,
    counts: np.ndarray,
    histograms: bool,
    big: list[int],
) -> np.ndarray:
    """Fills the `stats` and (`histograms`) `counts` rows of the tensors whose values are
    all finite (and whose squares sum without overflow); returns which those were. `big`:
    the tensors over SMALL elements (Segments.big)."""
    kernels = _loaded_kernels()
    flat = kernels.host_values(flat)  # once, for both kernels (a cast, for float16 and such)
    lo = np.full(len(sizes), np.inf)
    hi = np.full(len(sizes), -np.inf)
    for t in big:  # NumPy's SIMD passes: faster here
        a = flat[int(offsets[t]) : int(offsets[t] + sizes[t])]
        lo[t], hi[t] = a.min(), a.max()  # NaN if there is one
    done = kernels.segment_stats(flat, offsets, sizes, SMALL, lo, hi, stats)
    if histograms:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            width = hi - lo  # Inf - Inf for a tensor with NaN: not `done`, not binned
            spread = done & (width > 0)
            scale = np.where(spread, counts.shape[1] / np.where(spread, width, 1.0), 0.0)
        chosen = np.flatnonzero(spread)
        kernels.segment_histograms(flat, offsets, sizes, chosen, lo, scale, counts)
        one_value = done & (width == 0)
        counts[one_value, 0] = sizes[one_value]  # one value: all in the first bin
    return done


def _non_finite_row(a: np.ndarray, stats: np.ndarray, counts: np.ndarray, histograms: bool) -> None:
    """One tensor with NaN or Inf (or squares past float64): NaN and Inf counted, every
    other statistic and the histogram from its finite values."""
    size = a.size
    finite_mask = np.isfinite(a)
    n_nan = int(np.isnan(a).sum())
    stats[6:] = (np.count_nonzero(a == 0) / size, n_nan, size - n_nan - int(finite_mask.sum()))
    finite = a[finite_mask].astype(np.float64)
    if finite.size == 0:
        return  # nothing finite: no min, max, moments or histogram
    scale = float(np.max(np.abs(finite)))
    scale = scale if scale > 0 else 1.0
    unit = finite / scale  # |unit| <= 1: its squares and sums cannot overflow
    one = np.array([unit.size], dtype=np.int64)
    row = np.full((1, len(STAT_NAMES)), np.nan)
    row_counts = counts.reshape(1, -1)
    big = [0] if unit.size > SMALL else []
    _finite_rows(unit, np.zeros(1, dtype=np.int64), one, row, row_counts, histograms, big)
    stats[:6] = row[0, :6] * scale
    stats[:2] = (float(finite.min()), float(finite.max()))  # exact, not rescaled


def choose_probes(size: int, max_probes: int, seed: int) -> np.ndarray:
    """Every element of a small tensor, a fixed seeded sample of a big one (sorted)."""
    if size <= max_probes:
        return np.arange(size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=max_probes, replace=False)).astype(np.int64)
