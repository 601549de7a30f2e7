"""Writing snapshots: each tensor's in an array of its own, named by the tensor; or, for
runs of many small tensors, packed: side by side in the columns of a few shared arrays,
so that the file count and the time to close do not grow with tensors x snapshots."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout
from weightlapse.store.records import StepRecord, WrittenSnapshot
from weightlapse.store.snapshot_index import append_rows

# New small tensors that first appear together in one flush, at least this many: their
# snapshots are packed (10,000 tensors of 16 floats were 40,948 files and 148 s to close).
PACK_MIN = 256
PACK_TENSOR_BYTES = 16 * 2**10  # what counts as small
PACK_ELEMENTS = 4 * 2**20  # columns of one packed array at most (16 MiB of float32)


class SnapshotWriter:
    """Appends a flush's snapshots to the run's group, and their rows to the snapshot
    index (store/snapshot_index.py), which the flush's commit makes visible (the writer
    thread calls it)."""

    def __init__(self, group: zarr.Group, attrs: dict[str, Any]) -> None:
        self.group = group
        self.attrs = attrs
        self._arrays: dict[str, zarr.Array] = {}
        self._index: dict[str, list[tuple[int, int, int]]] = {}  # this flush's, by kind
        self._tensor_rows: dict[str, dict[str, int]] = {}

    def write(self, records: list[StepRecord]) -> None:
        self._write(records)
        for kind, rows in self._index.items():
            rows.sort(key=lambda r: r[1])
            append_rows(self.group, self.attrs, kind, np.asarray(rows, dtype=np.int64))
        self._index = {}

    def _write(self, records: list[StepRecord]) -> None:
        by_tensor: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for r in records:
            for key, data in r.snapshots.items():
                if isinstance(data, WrittenSnapshot):
                    self._list_written(*key, int(r.step), data)
                else:
                    by_tensor.setdefault(key, []).append((int(r.step), np.asarray(data)))
        self._pack_new_small_tensors(by_tensor)
        packed: dict[str, dict[int, list[tuple[str, dict[str, Any], np.ndarray]]]] = {}
        for (kind, name), taken in by_tensor.items():
            entry = self.attrs["snapshots"].get(kind, {}).get(name)
            if entry is not None and entry.get("packed"):
                by_step = packed.setdefault(entry["array"], {})
                for step, data in taken:
                    by_step.setdefault(step, []).append((name, entry, data))
            else:
                self._write_own(kind, name, taken)
        for path, by_step in packed.items():
            self._write_packed(path, by_step)

    def _listed(self, kind: str, name: str, step: int, row: int) -> None:
        """Snapshot `row` of its array holds `name` at `step` (an index row)."""
        rows_of = self._tensor_rows.setdefault(kind, {})
        tensors = self.attrs["kinds"][kind]["tensors"]
        if len(rows_of) != len(tensors):
            rows_of.update((n, t) for t, n in enumerate(tensors))
        self._index.setdefault(kind, []).append((rows_of[name], step, row))

    def _list_written(self, kind: str, name: str, step: int, written: WrittenSnapshot) -> None:
        """A row the ranks wrote (sharded): listed now, with the flush that commits it."""
        entry = self.attrs["snapshots"].setdefault(kind, {})
        entry = entry.setdefault(name, {"array": written.array})
        if written.shape is not None:
            entry.update(start=0, shape=list(written.shape))
        self._listed(kind, name, step, written.row)
        self.attrs["snapshot_bytes"] += written.nbytes

    def _array(self, path: str) -> zarr.Array:
        arr = self._arrays.get(path)
        if arr is None:
            arr = self._arrays[path] = self.group[path]
        return arr

    def _write_own(self, kind: str, name: str, taken: list[tuple[int, np.ndarray]]) -> None:
        """A tensor's snapshots in its own array; a flush's go in with one resize (a
        resize rewrites the array's metadata: once per snapshot it cost more than it)."""
        spec = self.attrs["snapshots"].setdefault(kind, {})
        first = taken[0][1]
        dtype = layout.snapshot_dtype(first.dtype)
        entry = spec.get(name)
        if entry is None:
            path = layout.snapshot_path(kind, name, {e["array"] for e in spec.values()})
            self._create(path, (0, *first.shape), dtype, {"tensor": name, "kind": kind})
            entry = spec[name] = {"array": path}
        arr = self._array(entry["array"])
        k = arr.shape[0]  # rows past the listed ones (a crash before a commit) stay unused
        arr.resize((k + len(taken), *arr.shape[1:]))
        for j, (step, data) in enumerate(taken):  # row by row: no stacked copy
            arr[k + j] = np.asarray(data, dtype=dtype)
            self._listed(kind, name, step, k + j)
        self.attrs["snapshot_bytes"] += sum(layout.snapshot_nbytes(d) for _, d in taken)

    def _create(self, path: str, shape: tuple[int, ...], dtype: Any, about: dict) -> None:
        self.group.create_array(
            path,
            shape=shape,
            chunks=layout.snapshot_chunks(shape[1:], np.dtype(dtype).itemsize),
            dtype=dtype,
            fill_value=layout.snapshot_fill(dtype),
            compressors=layout.snapshot_compressors(),
            config=layout.EVERY_CHUNK,
            dimension_names=layout.dimension_names(path, len(shape)),
            attributes=about,
        )

    def _pack_new_small_tensors(self, by_tensor: dict[tuple[str, str], list]) -> None:
        """Many small tensors seen for the first time: give them packed columns."""
        known = self.attrs["snapshots"]
        new = [
            (kind, name, taken[0][1])
            for (kind, name), taken in by_tensor.items()
            if name not in known.get(kind, {}) and taken[0][1].nbytes <= PACK_TENSOR_BYTES
        ]
        if len(new) < PACK_MIN:
            return
        groups: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = {}
        for kind, name, data in new:
            dtype = layout.snapshot_dtype(data.dtype)
            groups.setdefault((kind, dtype.str), []).append((name, data))
        for (kind, dtype_str), members in groups.items():
            while members:
                chosen, width = [], 0
                while members and (not chosen or width + members[0][1].size <= PACK_ELEMENTS):
                    name, data = members.pop(0)
                    chosen.append((name, data, width))
                    width += data.size
                self._new_pack(kind, np.dtype(dtype_str), chosen, width)

    def _new_pack(
        self, kind: str, dtype: np.dtype, chosen: list[tuple[str, np.ndarray, int]], width: int
    ) -> None:
        spec = self.attrs["snapshots"].setdefault(kind, {})
        used = {e["array"] for e in spec.values()}
        n = 0
        while f"{kind}/snapshots/{layout.PACKED}{n}" in used:
            n += 1
        path = f"{kind}/snapshots/{layout.PACKED}{n}"
        self._create(path, (0, width), dtype, {"packed": True, "kind": kind})
        for name, data, start in chosen:
            spec[name] = {"array": path, "packed": True, "start": start, "shape": list(data.shape)}

    def _write_packed(
        self, path: str, by_step: dict[int, list[tuple[str, dict[str, Any], np.ndarray]]]
    ) -> None:
        """One row per snapshot step; a column range per tensor (fill where a tensor had
        no snapshot at that step: the index lists no row of it there)."""
        arr = self._array(path)
        kind = path.split("/snapshots/")[0]
        steps = sorted(by_step)
        first = arr.shape[0]
        block = np.full((len(steps), arr.shape[1]), layout.snapshot_fill(arr.dtype), arr.dtype)
        for i, step in enumerate(steps):
            for name, entry, data in by_step[step]:
                block[i, entry["start"] : entry["start"] + data.size] = data.reshape(-1)
                self._listed(kind, name, step, first + i)
                self.attrs["snapshot_bytes"] += layout.snapshot_nbytes(data)
        arr.resize((first + len(steps), arr.shape[1]))
        arr[first : first + len(steps)] = block
