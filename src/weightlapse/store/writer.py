"""The background writer: buffers recorded steps and commits them to Zarr in batches.

Training threads only enqueue; one thread owns the store. A flush writes every array
first and the group attribute holding `committed_steps` last, so a reader (or a run
reopened after `kill -9`) sees whole steps only. Memory is bounded: `submit` waits
when more than `max_pending_bytes` are queued.
"""

from __future__ import annotations

import datetime as _dt
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from weightlapse.errors import RecordingError, RunFormatError
from weightlapse.store import layout
from weightlapse.store.layout import STAT_NAMES


@dataclass
class KindRows:
    """One step's numbers for some tensors of one kind (rows into that kind's tensor list)."""

    rows: np.ndarray  # (k,) int
    stats: np.ndarray  # (k, n_stats)
    counts: np.ndarray  # (k, bins)
    probes: np.ndarray  # (sum of these tensors' probe counts,)


@dataclass
class Deferred:
    """Kind rows to compute on the writer thread (host statistics, off the training step)."""

    nbytes: int
    compute: Callable[[], KindRows]


@dataclass
class StepRecord:
    step: int
    epoch: int = -1
    batch: int = -1
    wall_time: float = 0.0
    scalars: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, KindRows | Deferred] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def nbytes(self) -> int:
        n = sum(
            v.nbytes if isinstance(v, Deferred) else v.stats.nbytes + v.counts.nbytes
            for v in self.kinds.values()
        )
        return n + sum(a.nbytes for a in self.snapshots.values())

    def resolve(self) -> None:
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


_FLUSH = "flush"
_CLOSE = "close"


class StoreWriter:
    """Owns a run's Zarr group; everything reaches it through a queue."""

    def __init__(
        self,
        path: Any,
        *,
        meta: dict[str, Any] | None = None,
        bins: int = 64,
        flush_seconds: float = 2.0,
        flush_steps: int = layout.CHUNK_STEPS,
        max_pending_bytes: int = 256 * 2**20,
        overwrite: bool = False,
    ) -> None:
        try:
            self.group = zarr.open_group(path, mode="w" if overwrite else "w-")
        except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
            raise RunFormatError(
                f"Something already exists at {path!s}; a new run needs a fresh path. "
                "Pick another path, or pass overwrite=True to replace it."
            ) from None
        self.bins = bins
        self.flush_seconds = flush_seconds
        self.flush_steps = flush_steps
        self.max_pending_bytes = max_pending_bytes
        self.attrs: dict[str, Any] = {
            "format_version": layout.FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "bins": bins,
            "stat_names": list(STAT_NAMES),
            "index_columns": list(layout.INDEX_COLUMNS),
            "committed_steps": 0,
            "scalars": [],
            "kinds": {},
            "tensors": {},
            "snapshots": {},
            "snapshot_bytes": 0,
            "meta": dict(meta or {}),
            "closed": False,
        }
        self._arrays: dict[str, zarr.Array] = {}
        self._buffer: list[StepRecord] = []
        self._buffered_bytes = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._pending_cv = threading.Condition()
        self._error: BaseException | None = None
        self._commit_attrs()
        self._thread = threading.Thread(target=self._loop, name="weightlapse-writer", daemon=True)
        self._thread.start()

    # ---- the training side -------------------------------------------------------------
    def register(self, kind: str, info: TensorInfo, probe_elements: np.ndarray) -> None:
        self._put(("register", kind, info, probe_elements), 0)

    def update_meta(self, meta: dict[str, Any]) -> None:
        self._put(("meta", meta), 0)

    def submit(self, record: StepRecord) -> None:
        nbytes = record.nbytes()
        self._put(("step", record, nbytes), nbytes)

    def flush(self) -> None:
        """Blocks until everything submitted so far is committed."""
        done = threading.Event()
        self._put((_FLUSH, done), 0)
        while not done.wait(0.1):
            if not self._thread.is_alive():
                break
        self._raise_if_failed()

    def close(self) -> None:
        if self._thread.is_alive():
            done = threading.Event()
            self._put((_CLOSE, done), 0)
            self._thread.join()
        self._raise_if_failed()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def _put(self, item: Any, nbytes: int) -> None:
        self._raise_if_failed()
        if not self._thread.is_alive() and item[0] not in (_FLUSH, _CLOSE):
            raise RecordingError("This run is closed; create a new run to record more.")
        with self._pending_cv:
            while self._pending > self.max_pending_bytes and self._thread.is_alive():
                self._pending_cv.wait(0.5)
            self._pending += nbytes
        self._queue.put(item)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RecordingError(
                f"The run's writer failed: {self._error!r}. Steps committed before it stay "
                "readable; nothing after the last flush was written."
            ) from self._error

    # ---- the writer thread -------------------------------------------------------------
    def _loop(self) -> None:
        lower_priority_of_this_thread()
        last_flush = time.monotonic()
        while True:
            timeout = max(0.0, self.flush_seconds - (time.monotonic() - last_flush))
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    op = item[0]
                    if op == "step":
                        item[1].resolve()
                        self._buffer.append(item[1])
                        self._buffered_bytes += item[2]
                    elif op == "register":
                        self._register(*item[1:])
                    elif op == "meta":
                        self.attrs["meta"].update(item[1])
                    elif op in (_FLUSH, _CLOSE):
                        if op == _CLOSE:
                            self.attrs["closed"] = True
                        self._flush()
                        last_flush = time.monotonic()
                        item[1].set()
                        if op == _CLOSE:
                            return
                        continue
                due = time.monotonic() - last_flush >= self.flush_seconds
                if len(self._buffer) >= self.flush_steps or (due and self._buffer):
                    self._flush()
                    last_flush = time.monotonic()
                elif due:
                    last_flush = time.monotonic()
            except BaseException as exc:  # the training thread must learn of it, not die
                self._error = exc
                warnings.warn(
                    f"weightlapse stopped recording: {exc!r}. Training goes on; steps "
                    "committed before this stay readable.",
                    RuntimeWarning,
                    stacklevel=1,
                )
                self._drain(item)
                return

    def _drain(self, failed_item: Any) -> None:
        for it in [failed_item, *iter_queue(self._queue)]:
            if it is not None and it[0] in (_FLUSH, _CLOSE):
                it[1].set()
        with self._pending_cv:
            self._pending = 0
            self._pending_cv.notify_all()

    def _register(self, kind: str, info: TensorInfo, probe_elements: np.ndarray) -> None:
        k = self.attrs["kinds"].setdefault(
            kind, {"tensors": [], "probe_counts": [], "probe_elements": []}
        )
        if info.name in k["tensors"]:
            return
        k["tensors"].append(info.name)
        k["probe_counts"].append(int(len(probe_elements)))
        k["probe_elements"].append([int(i) for i in probe_elements])
        self.attrs["tensors"].setdefault(info.name, info.as_json())

    def _array(
        self, path: str, inner: tuple[int, ...], chunks: tuple[int, ...], dtype: Any, fill: Any
    ) -> zarr.Array:
        arr = self._arrays.get(path)
        if arr is None:
            arr = layout.create_growing_array(self.group, path, inner, chunks, dtype, fill)
            self._arrays[path] = arr
        return arr

    def _write_rows(self, arr: zarr.Array, start: int, block: np.ndarray) -> None:
        stop = start + block.shape[0]
        inner = tuple(max(a, b) for a, b in zip(arr.shape[1:], block.shape[1:]))
        if arr.shape[0] < stop or arr.shape[1:] != inner:
            arr.resize((stop, *inner))
        arr[(slice(start, stop), *(slice(0, n) for n in block.shape[1:]))] = block

    def _flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        start = int(self.attrs["committed_steps"])
        if buffered:
            self._write_steps(buffered, start)
        self._write_snapshots(buffered)
        self.attrs["committed_steps"] = start + len(buffered)
        self._commit_attrs()  # last: this is what makes the steps visible
        with self._pending_cv:
            self._pending -= self._buffered_bytes
            self._buffered_bytes = 0
            self._pending_cv.notify_all()

    def _write_steps(self, records: list[StepRecord], start: int) -> None:
        n = len(records)
        index = np.array(
            [[r.step, r.epoch, r.batch, r.wall_time] for r in records], dtype=np.float64
        )
        arr = self._array(
            layout.INDEX_PATH,
            (len(layout.INDEX_COLUMNS),),
            (len(layout.INDEX_COLUMNS),),
            np.float64,
            np.nan,
        )
        self._write_rows(arr, start, index)

        names: list[str] = self.attrs["scalars"]
        for r in records:
            for key in r.scalars:
                if key not in names:
                    names.append(key)
        if names:
            col = {k: i for i, k in enumerate(names)}
            block = np.full((n, len(names)), np.nan)
            for i, r in enumerate(records):
                for key, value in r.scalars.items():
                    block[i, col[key]] = value
            arr = self._array(
                layout.SCALARS_PATH, (0,), (layout.CHUNK_SCALARS,), np.float64, np.nan
            )
            self._write_rows(arr, start, block)

        n_stats = len(STAT_NAMES)
        for kind, spec in self.attrs["kinds"].items():
            n_tensors = len(spec["tensors"])
            probe_offsets = np.concatenate([[0], np.cumsum(spec["probe_counts"])]).astype(int)
            stats = np.full((n, n_tensors, n_stats), np.nan)
            counts = np.zeros((n, n_tensors, self.bins), dtype=np.uint32)
            probes = np.full((n, int(probe_offsets[-1])), np.nan, dtype=np.float32)
            for i, r in enumerate(records):
                rows = r.kinds.get(kind)
                if rows is None:
                    continue
                stats[i, rows.rows] = rows.stats
                counts[i, rows.rows] = rows.counts
                cols = np.concatenate(
                    [np.arange(probe_offsets[t], probe_offsets[t + 1]) for t in rows.rows]
                    or [np.zeros(0, dtype=int)]
                )
                probes[i, cols] = rows.probes
            self._write_rows(
                self._array(
                    layout.stats_path(kind),
                    (0, n_stats),
                    (layout.CHUNK_TENSORS_STATS, n_stats),
                    np.float64,
                    np.nan,
                ),
                start,
                stats,
            )
            self._write_rows(
                self._array(
                    layout.hist_path(kind),
                    (0, self.bins),
                    (layout.CHUNK_TENSORS_HIST, self.bins),
                    np.uint32,
                    0,
                ),
                start,
                counts,
            )
            self._write_rows(
                self._array(
                    layout.probes_path(kind), (0,), (layout.CHUNK_PROBES,), np.float32, np.nan
                ),
                start,
                probes,
            )

    def _write_snapshots(self, records: list[StepRecord]) -> None:
        for r in records:
            for (kind, name), data in r.snapshots.items():
                spec = self.attrs["snapshots"].setdefault(kind, {})
                entry = spec.get(name)
                dtype = layout.snapshot_dtype(np.asarray(data).dtype)
                if entry is None:
                    number = len(spec)
                    path = layout.snapshot_path(kind, number)
                    self.group.create_array(
                        path,
                        shape=(0, *data.shape),
                        chunks=(1, *data.shape),
                        dtype=dtype,
                        fill_value=np.nan,
                        compressors=layout.compressors(),
                    )
                    entry = spec[name] = {"array": path, "steps": []}
                arr = self._arrays.get(entry["array"]) or self.group[entry["array"]]
                self._arrays[entry["array"]] = arr
                k = len(entry["steps"])
                arr.resize((k + 1, *arr.shape[1:]))
                arr[k] = np.asarray(data, dtype=dtype)
                entry["steps"].append(int(r.step))
                self.attrs["snapshot_bytes"] += int(data.nbytes)

    def _commit_attrs(self) -> None:
        self.group.attrs[layout.ROOT_ATTR] = self.attrs


def lower_priority_of_this_thread() -> None:
    """The writer yields the CPU to training: on Linux a thread has its own nice value."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def iter_queue(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
