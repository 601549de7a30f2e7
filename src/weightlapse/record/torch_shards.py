"""Statistics and snapshots of torch tensors sharded across ranks (FSDP2's DTensors,
FSDP1's flat shards), exact, without ever gathering a tensor.

Every statistic weightlapse keeps is made of sums, minima, maxima and counts, so each
rank reduces its own part and the parts combine exactly:
- one all-gather per recorded step of each rank's per-tensor partials (finite, NaN and
  zero counts, sum, sum of |x|, min, max, and its sums of squares about its own mean,
  scaled by its own largest |x| so nothing overflows) and of the probe values it holds;
  every rank combines them the same way (Chan's formula for the variance);
- at histogram steps, one all-reduce of the bin counts, binned on edges every rank
  derives from the combined min and max (the arithmetic of the unsharded path).
Snapshots: every rank writes its own region of the same Zarr array (store/regions.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from weightlapse.errors import MissingDependencyError
from weightlapse.record.stats import Segments, Summary
from weightlapse.record.torch_ops import TorchOps
from weightlapse.store import layout
from weightlapse.store.records import WrittenSnapshot
from weightlapse.store.regions import Part, Region, RegionWriter

try:
    import torch
    import torch.distributed as dist
except ImportError as exc:  # pragma: no cover - exercised without torch installed
    raise MissingDependencyError("torch", "torch") from exc


@dataclass(frozen=True)
class Shard:
    """This rank's part of a tensor sharded across ranks: its values, the whole tensor's
    shape, and where the part sits. `counts` is False on a rank whose part another rank
    holds too (a replica, under HSDP): it adds nothing, so nothing is counted twice."""

    local: torch.Tensor
    shape: tuple[int, ...]
    region: Region
    counts: bool = True

    @property
    def dtype(self) -> torch.dtype:
        return self.local.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __sub__(self, other: Shard) -> Shard:  # an update: the same part, later minus earlier
        return replace(self, local=self.local - other.local)


PARTIALS = 10  # per tensor and rank: see _partials


class ShardedTorchOps(TorchOps):
    """The recorder's ops for Shards: `summarize_shards` and `write_snapshots` are
    collective (every rank calls them, with the same tensors, at the same steps)."""

    sharded = True

    def __init__(self, regions: RegionWriter) -> None:
        self.regions = regions
        self._probes: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        self._paths: dict[tuple[str, str], str] = {}

    # ---- statistics -------------------------------------------------------------------
    def summarize_shards(
        self, shards: Sequence[Shard], segments: Segments, bins: int, histograms: bool
    ) -> Summary:
        n = len(shards)
        device = shards[0].local.device
        values = [_values(s) for s in shards]
        parts = [_partials(x) for x in values]
        probes = torch.zeros(len(segments.probe_index), dtype=torch.float64, device=device)
        for x, (local, slots) in zip(values, self._probe_places(shards, segments, device)):
            if len(local):
                probes[slots] = x[local].to(torch.float64)
        mine = torch.cat([torch.stack(parts).reshape(-1), probes])
        gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, mine)
        every = torch.stack(gathered).cpu().numpy()  # (ranks, n * PARTIALS + probes)
        stats, lo, hi = _combine(every[:, : n * PARTIALS].reshape(-1, n, PARTIALS), shards)
        counts = np.zeros((n, bins), dtype=np.int64)
        if histograms:
            local_counts = torch.stack([_bin(x, lo[t], hi[t], bins) for t, x in enumerate(values)])
            dist.all_reduce(local_counts)
            counts = local_counts.cpu().numpy()
        return Summary(stats=stats, counts=counts, probes=every[:, n * PARTIALS :].sum(axis=0))

    def _probe_places(
        self, shards: Sequence[Shard], segments: Segments, device: Any
    ) -> list[tuple[Any, Any]]:
        """Per tensor: which of its probe elements this rank holds (positions in its
        flattened part) and their slots in the step's probe vector. Cached per layout."""
        key = (id(segments), str(device))
        places = self._probes.get(key)
        if places is None:
            places, first = [], 0
            offsets = np.concatenate([[0], np.cumsum(segments.sizes)[:-1]])
            for t, shard in enumerate(shards):
                count = int(segments.probe_counts[t])
                elements = segments.probe_index[first : first + count] - offsets[t]
                local, held = _local_positions(shard, elements)
                slots = np.arange(first, first + count)[held]
                places.append(
                    (torch.as_tensor(local, device=device), torch.as_tensor(slots, device=device))
                )
                first += count
            self._probes[key] = places
        return places

    # ---- snapshots --------------------------------------------------------------------
    def name_paths(self, paths: dict[tuple[str, str], str]) -> None:
        """The arrays a resumed run's sharded snapshots already have."""
        self._paths.update(paths)

    def write_snapshots(self, kind: str, shards: dict[str, Shard]) -> dict[str, WrittenSnapshot]:
        """Every rank writes its part of a new row of each tensor's array."""
        parts, flat_shapes = [], []
        for name, shard in shards.items():
            path = self._paths.get((kind, name))
            if path is None:
                path = layout.snapshot_path(kind, name, set(self._paths.values()))
                self._paths[(kind, name)] = path
            data = self.to_host(shard.local) if shard.counts else np.zeros(0, np.float32)
            region = shard.region if shard.counts else replace(shard.region, size=(0,))
            row_shape = (int(np.prod(shard.shape)),) if region.flat else tuple(shard.shape)
            about = {"tensor": name, "kind": kind, "sharded": True}
            data = data.astype(layout.snapshot_dtype(data.dtype), copy=False)
            parts.append(Part(path, row_shape, about, region, data.reshape(region.size)))
            flat_shapes.append(tuple(shard.shape) if region.flat else None)
        rows = self.regions.write_row(parts)
        return {
            name: WrittenSnapshot(part.array, row, layout.snapshot_nbytes(shard), shape)
            for (name, shard), part, row, shape in zip(shards.items(), parts, rows, flat_shapes)
        }

    # ---- what the recorder asks of any ops --------------------------------------------
    def host_copy(self, arrays: Sequence[Any]) -> None:
        return None  # reduced where the shards are, never copied whole

    def copy(self, x: Shard) -> Shard:
        return replace(x, local=x.local.detach().clone())

    def device_of(self, x: Shard) -> str:
        return str(x.local.device)


def _values(shard: Shard) -> torch.Tensor:
    """The part's values, flat, in the dtype the unsharded path reduces in."""
    x = shard.local.detach().reshape(-1)
    if not shard.counts:
        x = x[:0]
    wide = x.dtype in (torch.float64, torch.int64, torch.int32)
    return x.to(torch.float64 if wide else torch.float32)


def _partials(x: torch.Tensor) -> torch.Tensor:
    """One rank's partial sums of one tensor's part (float64): finite, NaN and zero
    counts, sum, sum |x|, min, max, its own scale s (largest finite |x|), and the sums of
    ((x - its mean) / s)^2 and (x / s)^2."""
    f64 = dict(dtype=torch.float64, device=x.device)
    if x.numel() == 0:
        return torch.tensor([0, 0, 0, 0, 0, np.inf, -np.inf, 1, 0, 0], **f64)
    finite = torch.isfinite(x)
    n = finite.sum().to(torch.float64)
    xf = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
    lo = torch.where(finite, x, torch.full((), np.inf, dtype=x.dtype, device=x.device)).min()
    hi = torch.where(finite, x, torch.full((), -np.inf, dtype=x.dtype, device=x.device)).max()
    total = xf.sum(dtype=torch.float64)
    big = torch.maximum(lo.abs(), hi.abs()).to(torch.float64)
    scale = torch.where((n > 0) & (big > 0), big, torch.ones((), **f64))
    mean = total / torch.clamp(n, min=1)
    centred = torch.where(finite, (xf - mean.to(x.dtype)) / scale.to(x.dtype), 0)
    unit = xf / scale.to(x.dtype)
    return torch.stack(
        [
            n,
            torch.isnan(x).sum().to(torch.float64),
            (x == 0).sum().to(torch.float64),
            total,
            xf.abs().sum(dtype=torch.float64),
            lo.to(torch.float64),
            hi.to(torch.float64),
            scale,
            (centred * centred).sum(dtype=torch.float64),
            (unit * unit).sum(dtype=torch.float64),
        ]
    )


def _combine(p: np.ndarray, shards: Sequence[Shard]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The statistics of the whole tensors from every rank's partials ((ranks, T, 10)):
    exactly what the unsharded path computes, up to rounding."""
    n_i, nan_i, zero_i, sum_i, abs_i, lo_i, hi_i, s_i, m2_i, sq_i = np.moveaxis(p, 2, 0)
    n = n_i.sum(0)
    lo, hi = lo_i.min(0), hi_i.max(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_i.sum(0) / np.maximum(n, 1)
        big = np.where(n_i > 0, s_i, 0).max(0)
        big = np.where(big > 0, big, 1.0)
        rel = np.where(n_i > 0, s_i / big, 0.0)
        mean_i = sum_i / np.maximum(n_i, 1)
        spread = (rel**2 * m2_i).sum(0) + (n_i * ((mean_i - mean) / big) ** 2).sum(0)
        size = np.asarray([float(np.prod(s.shape)) for s in shards])
        stats = np.stack(
            [
                lo,
                hi,
                mean,
                big * np.sqrt(spread / np.maximum(n, 1)),
                big * np.sqrt((rel**2 * sq_i).sum(0)),
                abs_i.sum(0) / np.maximum(n, 1),
                zero_i.sum(0) / np.maximum(size, 1),
                nan_i.sum(0),
                size - n - nan_i.sum(0),
            ],
            axis=1,
        )
    stats[n == 0, :6] = np.nan
    return stats, lo, hi


def _bin(x: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """This rank's histogram counts on the agreed edges linspace(lo, hi, bins + 1), in
    the unsharded path's arithmetic: (x - lo) * (bins / (hi - lo)) in x's dtype."""
    if x.numel() == 0 or not np.isfinite(lo):
        return torch.zeros(bins, dtype=torch.int64, device=x.device)
    scale = bins / (hi - lo) if hi > lo else 0.0
    kind = x.dtype
    if not torch.isfinite(torch.tensor(scale, dtype=kind)):  # a spread past the dtype's
        x, kind = x.double(), torch.float64  # reach (values 1e-38 apart): in float64
    index = ((x - torch.tensor(lo, dtype=kind)) * torch.tensor(scale, dtype=kind)).clamp(
        0, bins - 1
    )
    index = torch.where(torch.isfinite(x), index.to(torch.int64), bins)
    return torch.bincount(index, minlength=bins + 1)[:bins]


def _local_positions(shard: Shard, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the whole tensor's flat `elements` this rank's part holds: (their
    positions in the flattened part, a mask over `elements`)."""
    region = shard.region
    if not shard.counts or region.empty:
        return np.zeros(0, np.int64), np.zeros(len(elements), bool)
    if region.flat:
        (start,), (size,) = region.start, region.size
        held = (elements >= start) & (elements < start + size)
        return (elements[held] - start).astype(np.int64), held
    where = np.unravel_index(elements, shard.shape) if shard.shape else ()
    held = np.ones(len(elements), bool)
    for axis, (a, n) in enumerate(zip(region.start, region.size)):
        held &= (where[axis] >= a) & (where[axis] < a + n)
    inside = tuple(w[held] - a for w, a in zip(where, region.start))
    local = np.ravel_multi_index(inside, region.size) if inside else np.zeros(0, np.int64)
    return np.asarray(local, np.int64), held
