"""What the recorder hands the store: one step's numbers, and what each tensor is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class KindRows:
    """One step's numbers for some tensors of one kind (rows into that kind's tensor list)."""

    rows: np.ndarray  # (k,) int
    stats: np.ndarray  # (k, n_stats)
    counts: np.ndarray  # (k, bins)
    probes: np.ndarray  # (sum of these tensors' probe counts,)


@dataclass(frozen=True)
class BulkSnapshots:
    """Snapshots of many tensors as one flat copy, each tensor's values in order (the
    copy the statistics were taken from): no per-tensor arrays between the recorder and
    the packs they are written to."""

    names: tuple[str, ...]
    flat: np.ndarray
    sizes: np.ndarray  # elements of each tensor, in order
    shapes: list[tuple[int, ...]]

    def arrays(self) -> dict[str, np.ndarray]:
        ends = np.cumsum(self.sizes).tolist()
        starts = [0, *ends[:-1]]
        return {
            n: self.flat[a:b].reshape(shape)
            for n, a, b, shape in zip(self.names, starts, ends, self.shapes)
        }


@dataclass
class Deferred:
    """Kind rows to compute on the writer thread (host statistics, off the training step);
    `arrays` gives the tensors back from the same host copy (for a final snapshot)."""

    nbytes: int
    compute: Callable[[], KindRows]
    arrays: Callable[[], dict[str, np.ndarray]] | None = None
    # the copy as snapshots, when every tensor had the copy's dtype (exact copies)
    snapshot: BulkSnapshots | None = None


@dataclass(frozen=True)
class WrittenSnapshot:
    """A snapshot the ranks of a sharded model wrote themselves (store/regions.py): the
    writer only lists its row when the step commits. `shape` is set when the row holds
    the tensor flattened (then it is read back in this shape)."""

    array: str
    row: int
    nbytes: int  # as stored, for the snapshot budget and `snapshot_bytes`
    shape: tuple[int, ...] | None = None


@dataclass
class StepRecord:
    step: int
    epoch: int = -1
    batch: int = -1
    wall_time: float = 0.0
    scalars: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, KindRows | Deferred] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], np.ndarray | WrittenSnapshot] = field(default_factory=dict)
    bulk: dict[str, BulkSnapshots] = field(default_factory=dict)  # by kind

    def has_snapshot(self, kind: str) -> bool:
        return kind in self.bulk or any(k == kind for k, _ in self.snapshots)

    def nbytes(self) -> int:
        """The bytes this record holds in memory until its flush."""
        n = sum(
            v.nbytes if isinstance(v, Deferred) else v.stats.nbytes + v.counts.nbytes
            for v in self.kinds.values()
        )
        n += sum(b.flat.nbytes for b in self.bulk.values())
        return n + sum(
            a.nbytes for a in self.snapshots.values() if not isinstance(a, WrittenSnapshot)
        )

    def resolve(self) -> None:
        """Computes deferred statistics (on the writer thread, or on the training thread
        when the writer is behind)."""
        for kind, rows in self.kinds.items():
            if isinstance(rows, Deferred):
                self.kinds[kind] = rows.compute()


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    layer: str = ""
    layout: str = ""  # axis meaning, e.g. "in,out" (Keras Dense) or "out,in,h,w" (torch Conv2d)

    def as_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layer": self.layer,
            "layout": self.layout,
        }
