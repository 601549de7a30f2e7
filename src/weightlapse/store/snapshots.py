"""Writing snapshots: each tensor's in an array of its own, named by the tensor; or, for
runs of many small tensors, packed: side by side in the columns of a few shared arrays,
so that the file count and the time to close do not grow with tensors x snapshots."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from weightlapse.store import layout
from weightlapse.store.records import BulkSnapshots, StepRecord, WrittenSnapshot
from weightlapse.store.snapshot_index import append_rows

# New small tensors that first appear together in one flush, at least this many: their
# snapshots are packed (10,000 tensors of 16 floats were 40,948 files and 148 s to close).
PACK_MIN = 256
PACK_TENSOR_BYTES = 16 * 2**10  # what counts as small
PACK_ELEMENTS = 4 * 2**20  # columns of one packed array at most (16 MiB of float32)
STACK_BYTES = 16 * 2**20  # a tensor's snapshots of one flush are written this much at once


def rounded(data: np.ndarray, stored: np.dtype) -> bool:
    """Whether storing `data` in a snapshot array of dtype `stored` (a tensor's dtype at
    its first snapshot) changes a value: a dtype that cannot hold them all. float32
    values carried as float64 survive; 1 + 1e-12 or 1e300 into float32 do not."""
    logged = data.dtype
    if np.can_cast(layout.snapshot_dtype(logged), stored, "safe"):
        return False
    with np.errstate(over="ignore", invalid="ignore"):  # past the range: inf, said
        back = data.astype(stored).astype(logged)
    return not np.array_equal(back, data, equal_nan=logged.kind in "fc")


class RoundedSnapshots:
    """Says, once a tensor, that its snapshots lose precision: it came in a dtype its
    array cannot hold, with values the cast changes (`rounded`). Both snapshot writers
    (this module's, and store/regions.py's for big and sharded tensors) ask it."""

    def __init__(self) -> None:
        self._said: set[tuple[str, str]] = set()

    def check(self, kind: str, who: str, data: np.ndarray, stored: np.dtype, when: str) -> None:
        if data.dtype == stored or (kind, who) in self._said or not rounded(data, stored):
            return
        self._said.add((kind, who))
        warnings.warn(
            f"weightlapse: {who} ({kind}) came as {data.dtype}{when}, but its snapshots are "
            f"stored as {stored}, its dtype at its first snapshot: they are rounded to "
            f"{stored} (its statistics are not). Log a tensor in one dtype for the whole "
            "run, or under a new name for the new one.",
            RuntimeWarning,
            stacklevel=3,
        )


@dataclass
class PackPart:
    """A bulk's tensors in one pack: runs of the flat copy that land on runs of columns."""

    pieces: list[tuple[int, int, int]] = field(default_factory=list)  # flat lo, hi; column
    tensors: list[int] = field(default_factory=list)  # positions in the bulk
    elements: int = 0


@dataclass
class BulkPlan:
    """Where each piece of a bulk of one set of tensors goes (cached per tensor names)."""

    kind: str
    tensor_rows: np.ndarray  # each tensor's row in attrs.kinds[kind].tensors
    packs: dict[str, PackPart] = field(default_factory=dict)
    own: list[tuple[str, int, int, tuple[int, ...]]] = field(default_factory=list)

    def add_packed(self, path: str, t: int, lo: int, hi: int, column: int) -> None:
        part = self.packs.setdefault(path, PackPart())
        last = part.pieces[-1] if part.pieces else None
        if last is not None and last[1] == lo and last[2] + (last[1] - last[0]) == column:
            part.pieces[-1] = (last[0], hi, last[2])  # contiguous here and there: one slice
        else:
            part.pieces.append((lo, hi, column))
        part.tensors.append(t)
        part.elements += hi - lo


class SnapshotWriter:
    """Appends a flush's snapshots to the run's group, and their rows to the snapshot
    index (store/snapshot_index.py), which the flush's commit makes visible (the writer
    thread calls it)."""

    def __init__(self, group: zarr.Group, attrs: dict[str, Any]) -> None:
        self.group = group
        self.attrs = attrs
        self._arrays: dict[str, zarr.Array] = {}
        self._index: dict[str, list[tuple[int, int, int]]] = {}  # this flush's, by kind
        self._index_blocks: dict[str, list[np.ndarray]] = {}  # the same, in (m, 3) blocks
        self._tensor_rows: dict[str, dict[str, int]] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], BulkPlan] = {}
        self._rounded = RoundedSnapshots()

    def write(self, records: list[StepRecord]) -> None:
        self._write(records)
        for kind in {*self._index, *self._index_blocks}:
            rows = [np.asarray(self._index.get(kind, []), np.int64).reshape(-1, 3)]
            rows = np.concatenate(rows + self._index_blocks.get(kind, []))
            rows = rows[np.argsort(rows[:, 1], kind="stable")]
            append_rows(self.group, self.attrs, kind, rows)
        self._index, self._index_blocks = {}, {}

    def _write(self, records: list[StepRecord]) -> None:
        by_tensor: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        bulks: list[tuple[int, BulkSnapshots, BulkPlan]] = []
        placing: set[tuple[str, tuple[str, ...]]] = set()
        later: list[tuple[int, str, BulkSnapshots]] = []
        for r in records:
            for key, data in r.snapshots.items():
                if isinstance(data, WrittenSnapshot):
                    self._list_written(*key, int(r.step), data)
                else:
                    by_tensor.setdefault(key, []).append((int(r.step), np.asarray(data)))
            for kind, bulk in r.bulk.items():
                plan = self._plan(kind, bulk)
                if plan is not None:
                    bulks.append((int(r.step), bulk, plan))
                elif (kind, bulk.names) in placing:  # placed by an earlier step of this flush
                    later.append((int(r.step), kind, bulk))
                else:  # new tensors: placed one by one, once
                    placing.add((kind, bulk.names))
                    for name, data in bulk.arrays().items():
                        by_tensor.setdefault((kind, name), []).append((int(r.step), data))
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
        for step, kind, bulk in later:
            plan = self._plan(kind, bulk)
            assert plan is not None, "every tensor was placed above"
            bulks.append((step, bulk, plan))
        self._write_bulks(bulks)

    # ---- many tensors as one flat copy: a pack's row is a few slices of it -------------
    def _plan(self, kind: str, bulk: BulkSnapshots) -> BulkPlan | None:
        """Where a bulk's pieces go, once every tensor in it has an array (else None)."""
        plan = self._plans.get((kind, bulk.names))
        if plan is not None:
            return plan
        spec = self.attrs["snapshots"].get(kind, {})
        entries = [spec.get(n) for n in bulk.names]
        if any(e is None for e in entries):
            return None
        plan = BulkPlan(kind, self._rows_of(kind, bulk.names))
        offset = 0
        for t, (name, entry, size) in enumerate(zip(bulk.names, entries, bulk.sizes.tolist())):
            if entry.get("packed"):
                plan.add_packed(entry["array"], t, offset, offset + size, entry["start"])
            else:
                plan.own.append((name, offset, offset + size, bulk.shapes[t]))
            offset += size
        self._plans[(kind, bulk.names)] = plan
        return plan

    def _rows_of(self, kind: str, names: tuple[str, ...]) -> np.ndarray:
        rows_of = self._tensor_rows.setdefault(kind, {})
        tensors = self.attrs["kinds"][kind]["tensors"]
        if len(rows_of) != len(tensors):
            rows_of.update((n, t) for t, n in enumerate(tensors))
        return np.asarray([rows_of[n] for n in names], dtype=np.int64)

    def _write_bulks(self, bulks: list[tuple[int, BulkSnapshots, BulkPlan]]) -> None:
        by_pack: dict[str, list[tuple[int, BulkSnapshots, BulkPlan]]] = {}
        own: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = {}
        for step, bulk, plan in bulks:
            for path in plan.packs:
                by_pack.setdefault(path, []).append((step, bulk, plan))
            for name, lo, hi, shape in plan.own:
                own.setdefault((plan.kind, name), []).append(
                    (step, bulk.flat[lo:hi].reshape(shape))
                )
        for (kind, name), taken in own.items():
            self._write_own(kind, name, taken)
        for path, takers in by_pack.items():
            arr = self._array(path)
            first = arr.shape[0]
            block = np.full((len(takers), arr.shape[1]), layout.snapshot_fill(arr.dtype), arr.dtype)
            for i, (step, bulk, plan) in enumerate(takers):
                pack = plan.packs[path]
                if bulk.flat.dtype != block.dtype:  # (a bulk's tensors are of one dtype)
                    some = f"{bulk.names[pack.tensors[0]]!r} and the tensors packed with it"
                    self._rounded.check(plan.kind, some, bulk.flat, block.dtype, f" at step {step}")
                for lo, hi, column in pack.pieces:
                    block[i, column : column + hi - lo] = bulk.flat[lo:hi]
                rows = plan.tensor_rows[pack.tensors]
                self._index_blocks.setdefault(plan.kind, []).append(
                    np.stack([rows, np.full_like(rows, step), np.full_like(rows, first + i)], 1)
                )
                self.attrs["snapshot_bytes"] += pack.elements * bulk.flat.itemsize
            arr.resize((first + len(takers), arr.shape[1]))
            arr[first : first + len(takers)] = block

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
        if entry is None:  # made as long as this flush needs: no resize to write it
            path = layout.snapshot_path(kind, name, {e["array"] for e in spec.values()})
            about = {"tensor": name, "kind": kind}
            self._create(path, (len(taken), *first.shape), dtype, about)
            entry = spec[name] = {"array": path}
            k = 0
        else:
            arr = self._array(entry["array"])
            k = arr.shape[0]  # rows past the listed ones (a crash before a commit) stay unused
            arr.resize((k + len(taken), *arr.shape[1:]))
        arr = self._array(entry["array"])
        for step, data in taken:
            if data.dtype != arr.dtype:
                self._rounded.check(kind, repr(name), data, arr.dtype, f" at step {step}")
        # Rows go in stacks of up to STACK_BYTES: Zarr's cost a call, not a chunk, is most
        # of a small snapshot's (the MLP's defaults over 300 steps: close() 0.46 -> 0.32 s,
        # `python bench/writer_ab.py stack`), and a stack bounds the extra copy.
        per_stack = max(1, STACK_BYTES // max(layout.snapshot_nbytes(first), 1))
        for j in range(0, len(taken), per_stack):
            rows = taken[j : j + per_stack]
            if len(rows) == 1:
                arr[k + j] = np.asarray(rows[0][1], dtype=dtype)
            else:
                arr[k + j : k + j + len(rows)] = np.stack([np.asarray(d, dtype) for _, d in rows])
            for i, (step, _) in enumerate(rows):
                self._listed(kind, name, step, k + j + i)
        self.attrs["snapshot_bytes"] += sum(layout.snapshot_nbytes(d) for _, d in taken)

    def _create(self, path: str, shape: tuple[int, ...], dtype: Any, about: dict) -> None:
        self._arrays[path] = self.group.create_array(
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
                if data.dtype != block.dtype:  # (10,000 tensors: no call each)
                    self._rounded.check(kind, repr(name), data, block.dtype, f" at step {step}")
                block[i, entry["start"] : entry["start"] + data.size] = data.reshape(-1)
                self._listed(kind, name, step, first + i)
                self.attrs["snapshot_bytes"] += layout.snapshot_nbytes(data)
        arr.resize((first + len(steps), arr.shape[1]))
        arr[first : first + len(steps)] = block
