"""Writing snapshots: each tensor's in an array of its own, named by the tensor; or, for
runs of many small tensors, packed: side by side in the columns of a few shared arrays,
so that the file count and the time to close do not grow with tensors x snapshots."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout
from weightlapse.store.records import StepRecord, WrittenSnapshot

# New small tensors that first appear together in one flush, at least this many: their
# snapshots are packed (10,000 tensors of 16 floats were 40,948 files and 148 s to close).
PACK_MIN = 256
PACK_TENSOR_BYTES = 16 * 2**10  # what counts as small
PACK_ELEMENTS = 4 * 2**20  # columns of one packed array at most (16 MiB of float32)


class SnapshotWriter:
    """Appends a flush's snapshots to the run's group (the writer thread calls it)."""

    def __init__(self, group: zarr.Group, attrs: dict[str, Any]) -> None:
        self.group = group
        self.attrs = attrs
        self._arrays: dict[str, zarr.Array] = {}

    def write(self, records: list[StepRecord]) -> None:
        by_tensor: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for r in records:
            for key, data in r.snapshots.items():
                if isinstance(data, WrittenSnapshot):
                    self._list_written(*key, int(r.step), data)
                else:
                    by_tensor.setdefault(key, []).append((int(r.step), np.asarray(data)))
        self._pack_new_small_tensors(by_tensor)
        packed: dict[str, dict[int, list[tuple[dict[str, Any], np.ndarray]]]] = {}
        for (kind, name), taken in by_tensor.items():
            entry = self.attrs["snapshots"].get(kind, {}).get(name)
            if entry is not None and "rows" in entry:
                for step, data in taken:
                    packed.setdefault(entry["array"], {}).setdefault(step, []).append((entry, data))
            else:
                self._write_own(kind, name, taken)
        for path, by_step in packed.items():
            self._write_packed(path, by_step)

    def _list_written(self, kind: str, name: str, step: int, written: WrittenSnapshot) -> None:
        """A row the ranks wrote (sharded): listed now, with the flush that commits it."""
        entry = (
            self.attrs["snapshots"]
            .setdefault(kind, {})
            .setdefault(name, {"array": written.array, "steps": [], "rows": []})
        )
        if written.shape is not None:
            entry.update(start=0, shape=list(written.shape))
        entry["steps"].append(step)
        entry["rows"].append(written.row)
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
            entry = spec[name] = {"array": path, "steps": []}
        arr = self._array(entry["array"])
        k = len(entry["steps"])
        arr.resize((k + len(taken), *arr.shape[1:]))
        for j, (_, data) in enumerate(taken):  # row by row: no stacked copy
            arr[k + j] = np.asarray(data, dtype=dtype)
        entry["steps"].extend(step for step, _ in taken)
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
            spec[name] = {
                "array": path,
                "steps": [],
                "rows": [],
                "start": start,
                "shape": list(data.shape),
            }

    def _write_packed(
        self, path: str, by_step: dict[int, list[tuple[dict[str, Any], np.ndarray]]]
    ) -> None:
        """One row per snapshot step; a column range per tensor (fill where a tensor had
        no snapshot at that step: its `rows` list skips it)."""
        arr = self._array(path)
        steps = sorted(by_step)
        first = arr.shape[0]
        block = np.full((len(steps), arr.shape[1]), layout.snapshot_fill(arr.dtype), arr.dtype)
        for i, step in enumerate(steps):
            for entry, data in by_step[step]:
                block[i, entry["start"] : entry["start"] + data.size] = data.reshape(-1)
                entry["steps"].append(step)
                entry["rows"].append(first + i)
                self.attrs["snapshot_bytes"] += layout.snapshot_nbytes(data)
        arr.resize((first + len(steps), arr.shape[1]))
        arr[first : first + len(steps)] = block
