"""Snapshots of sharded tensors, written where they live: every rank writes its own part
of the same Zarr array, so a snapshot never passes through one rank's memory.

The protocol (docs/format.md, "Sharded writing"), at a snapshot step, on every rank:
1. rank 0 creates the array (first time) and grows it by one row; everyone waits
   (`barrier`);
2. every rank writes its region of that row. A region covering whole chunks is written
   at once, by all ranks side by side; the chunks a region shares with a neighbour (a
   flat FSDP1 shard starts anywhere) are written one rank after another, each rank
   reading the chunk back and adding its part, between barriers;
3. everyone waits again; only then may rank 0 commit the step that lists the row.
A reader sees the row once `attrs.snapshots` lists it, so a half-written row is never
read, and a row written but never committed is an unused row past the listed ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout
from weightlapse.store.snapshots import RoundedSnapshots


@dataclass(frozen=True)
class Region:
    """Where a rank's part sits in a snapshot row.

    `start`/`size`: per axis of the array's row (the tensor's shape, or one flat axis
    for a `flat` layout); `chunks`: chunk shape of the row, the same on every rank."""

    start: tuple[int, ...]
    size: tuple[int, ...]
    chunks: tuple[int, ...]
    flat: bool  # stored flattened (one axis of numel): FSDP1's shards are flat ranges

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, a + n) for a, n in zip(self.start, self.size))

    @property
    def empty(self) -> bool:
        return any(n == 0 for n in self.size)


@dataclass(frozen=True)
class Part:
    """This rank's part of one snapshot: the array it goes in (its shape per row, its
    attributes), where the part sits in the row, and its values (the stored dtype)."""

    array: str
    row_shape: tuple[int, ...]
    attributes: dict[str, Any]
    region: Region
    data: np.ndarray


def aligned_chunks(piece: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks that tile every rank's piece exactly (a piece starts at a multiple of the
    largest piece along each sharded axis): the largest piece, cut along its leading
    axes by divisors until a chunk holds at most layout.SNAPSHOT_CHUNK_BYTES."""
    chunks = [max(1, n) for n in piece]
    for axis in range(len(chunks)):
        rest = math.prod(chunks[axis + 1 :]) * itemsize
        if chunks[axis] * rest <= layout.SNAPSHOT_CHUNK_BYTES:
            break
        fits = max(1, layout.SNAPSHOT_CHUNK_BYTES // max(rest, 1))
        chunks[axis] = max(d for d in _divisors(chunks[axis]) if d <= fits)
        if rest <= layout.SNAPSHOT_CHUNK_BYTES:
            break
    return tuple(chunks)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in small]


FLAT_CHUNK = 2**20  # elements per chunk of a flat (FSDP1) snapshot row: 4 MiB of float32


class RegionWriter:
    """One rank's side of the protocol for the run at `path` (every rank opens the same
    store; `barrier` is the process group's)."""

    def __init__(self, path: Any, rank: int, world: int, barrier: Callable[[], None]) -> None:
        self.path = path
        self.rank = rank
        self.world = world
        self.barrier = barrier
        self.rows: dict[str, int] = {}  # array -> rows taken so far (the same on every rank)
        self._rounded = RoundedSnapshots()

    def write_row(self, parts: list[Part]) -> list[int]:
        """Writes one new row of each part's array; every rank calls it with the same
        arrays in the same order. Returns each array's row index."""
        if self.rank == 0:
            self._grow(parts)
        self.barrier()  # the rows exist
        rows = [self.rows.get(part.array, 0) for part in parts]
        shared: list[tuple[zarr.Array, int, tuple[slice, ...], np.ndarray]] = []
        for part, row in zip(parts, rows):
            if part.region.empty:
                continue
            arr = zarr.open_array(self.path, path=part.array, mode="r+")
            who = repr(part.attributes.get("tensor", part.array))
            self._rounded.check(part.attributes.get("kind", ""), who, part.data, arr.dtype, "")
            whole, edges = _split(part.region, part.data)
            for slices, piece in whole:
                arr[(row, *slices)] = piece
            shared += [(arr, row, slices, piece) for slices, piece in edges]
        if any(part.region.flat for part in parts):
            for turn in range(self.world):  # shared chunks: one rank at a time
                if turn == self.rank:
                    for arr, row, slices, piece in shared:
                        arr[(row, *slices)] = piece
                self.barrier()
        self.barrier()  # every part is written: the rows may be committed
        for part in parts:
            self.rows[part.array] = self.rows.get(part.array, 0) + 1
        return rows

    def _grow(self, parts: list[Part]) -> None:
        group = zarr.open_group(self.path, mode="r+")
        for part in parts:
            if part.array not in group:
                dtype = part.data.dtype
                group.create_array(
                    part.array,
                    shape=(0, *part.row_shape),
                    chunks=(1, *part.region.chunks),
                    dtype=dtype,
                    fill_value=layout.snapshot_fill(dtype),
                    compressors=layout.snapshot_compressors(),
                    config=layout.EVERY_CHUNK,
                    dimension_names=layout.dimension_names(part.array, 1 + len(part.row_shape)),
                    attributes=part.attributes,
                )
            elif part.array not in self.rows:  # made before (a resumed run): after its rows
                self.rows[part.array] = group[part.array].shape[0]
            group[part.array].resize((self.rows.get(part.array, 0) + 1, *part.row_shape))


SLAB_BYTES = 64 * 2**20  # written at once: Zarr encodes a write's chunks side by side


def _slabs(region: Region, data: np.ndarray) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """A region as slabs of whole chunks along its first axis, about SLAB_BYTES each, so
    that writing a big tensor never holds encoded copies of all of it at once."""
    if not region.size or data.nbytes <= SLAB_BYTES:
        return [(region.slices(), data)]
    per_row = data.nbytes // max(region.size[0], 1)
    rows = max(
        region.chunks[0], SLAB_BYTES // max(per_row, 1) // region.chunks[0] * region.chunks[0]
    )
    out = []
    for lo in range(0, region.size[0], rows):
        hi = min(region.size[0], lo + rows)
        first = slice(region.start[0] + lo, region.start[0] + hi)
        out.append(((first, *region.slices()[1:]), data[lo:hi]))
    return out


def _split(
    region: Region, data: np.ndarray
) -> tuple[list[tuple[tuple[slice, ...], np.ndarray]], list[tuple[tuple[slice, ...], np.ndarray]]]:
    """A region as (the part covering whole chunks, the parts in chunks shared with a
    neighbour). Regions of aligned chunks have no shared part; a flat range may begin
    and end inside a chunk."""
    if not region.flat:
        return _slabs(region, data), []
    (start,), (size,), (chunk,) = region.start, region.size, region.chunks
    end = start + size
    inner_start = min(end, -(-start // chunk) * chunk)
    inner_end = max(inner_start, (end // chunk) * chunk)
    flat = data.reshape(-1)
    whole, edges = [], []
    if inner_end > inner_start:
        whole.append(
            ((slice(inner_start, inner_end),), flat[inner_start - start : inner_end - start])
        )
    for a, b in ((start, inner_start), (inner_end, end)):
        if b > a:
            edges.append(((slice(a, b),), flat[a - start : b - start]))
    return whole, edges
