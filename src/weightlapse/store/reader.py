"""Reading a run, also while it is being written: trust the committed marker, not shapes."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import socket
import threading
import time
from typing import Any

import numpy as np
import zarr

from weightlapse.errors import RunFormatError
from weightlapse.store import layout, probe_index
from weightlapse.store.check import attr_problems, per_step_arrays
from weightlapse.store.location import zarr_store
from weightlapse.store.snapshot_index import Lists, read_lists

# Zarr's settings while we read: chunks decoded in batches of 64 (its default, 1, pays its
# per-chunk overhead 391 times for one tensor's statistics over 100,000 steps) with up to
# 64 at once (default 10): that read, median of 8 interleaved in one process on
# bench/scale.py's run, went from 294 to 262 ms.
READ_TUNING = {"codec_pipeline.batch_size": 64, "async.concurrency": 64}


class _TunedReads:
    """Sets READ_TUNING while any of our reads runs. Zarr's config is one for the process:
    reads in several threads at once (the dashboard's) share one setting, undone when the
    last ends, so the user's own Zarr settings come back as they were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading = 0
        self._undo: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._reading == 0:
                self._undo = zarr.config.set(READ_TUNING)
            self._reading += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._reading -= 1
            if self._reading == 0:
                self._undo.__exit__(None, None, None)


TUNED_READS = _TunedReads()

# A missing chunk file reads as the array's fill value: in a run that writes every chunk,
# damage, never "not recorded". Float and count arrays are read with a fill value that no
# writer stores (a NaN with this payload; the largest count), so a missing chunk shows in
# the data itself, with no lookup a chunk (one tensor's statistics over 100,000 steps: 391
# lookups, a HEAD request each on an object store). Only when the value shows are the
# chunks looked up: a saturated count (or a NaN that carries this payload) is data.
MISSING_FILL: dict[np.dtype, int] = {
    np.dtype("<f8"): 0x7FF8_0000_DEAD_BEEF,
    np.dtype("<f4"): 0x7FC0_BEEF,
    np.dtype("<f2"): 0x7E5B,
    np.dtype("<u4"): 0xFFFF_FFFF,
}


def _recorded(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes less the writer's identity and heartbeat."""
    return {k: v for k, v in attrs.items() if k != "writer"}


class StoreReader:
    """Read-only view of a run's Zarr group; `refresh()` picks up newly committed steps."""

    def __init__(self, path: Any, storage_options: dict | None = None) -> None:
        self.path = path
        self.target = zarr_store(path, storage_options)
        self.attrs: dict[str, Any] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._seen_chunks: set[str] = set()  # chunk keys known to exist
        self._snapshot_lists: dict[str, Lists] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Re-reads the committed marker; True when something new was committed."""
        try:
            group = zarr.open_group(self.target, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as exc:
            raise RunFormatError(
                f"No weightlapse run at {self.path!s} ({exc.__class__.__name__}). Give the "
                "path of a run made by weightlapse.create or a recorder."
            ) from None
        attrs = dict(group.attrs).get(layout.ROOT_ATTR)
        if not isinstance(attrs, dict):
            raise RunFormatError(
                f"{self.path!s} is a Zarr group but not a weightlapse run (its attributes "
                f"have no {layout.ROOT_ATTR!r} entry)."
            )
        version = attrs.get("format_version")
        if isinstance(version, int) and version > layout.FORMAT_VERSION:
            raise RunFormatError(
                f"{self.path!s} has run format version {version!r}; this weightlapse reads "
                f"versions up to {layout.FORMAT_VERSION}. Upgrade weightlapse to read it."
            )
        problems = attr_problems(attrs)
        if problems:
            raise self.damaged("attributes", problems[0])
        # The writer's heartbeat changes every few seconds and is not news: only what it
        # recorded counts, and only then are the arrays opened (and checked) anew.
        changed = _recorded(attrs) != _recorded(self.attrs)
        if changed:
            self._group = group
            self._arrays.clear()  # an open handle keeps its old shape
            self._snapshot_lists.clear()
            self._check_rows(attrs)
        self.attrs = attrs  # the heartbeat too: liveness reads it
        return changed

    def _unseen_chunks(self, arr: zarr.Array, region: Any) -> list[str]:
        """The store keys of the chunks `region` touches, less those already seen."""
        ranges = []
        for index, size, chunk in zip(region, arr.shape, arr.chunks):
            if isinstance(index, np.ndarray):
                ranges.append(sorted(set((index // chunk).tolist())))
            elif isinstance(index, slice):
                start, stop, _ = index.indices(size)
                ranges.append(range(start // chunk, -(-stop // chunk)))
            else:
                ranges.append(range(int(index) // chunk, int(index) // chunk + 1))
        ranges += [
            range(0, -(-n // c))
            for n, c in zip(arr.shape[len(ranges) :], arr.chunks[len(ranges) :])
        ]
        prefix = arr.store_path.path
        keys = [f"{prefix}/c/" + "/".join(map(str, c)) for c in itertools.product(*ranges)]
        return [k for k in keys if k not in self._seen_chunks]

    def damaged(self, array: str, what: str) -> RunFormatError:
        """One line: which run, which array, what is wrong, and what to do."""
        return RunFormatError(
            f"{self.path!s} is damaged: {array}: {what}. `weightlapse check` lists what is "
            "wrong; `weightlapse check --repair` truncates the run to its last whole step."
        )

    def _check_rows(self, attrs: dict[str, Any]) -> None:
        """Every per-step array holds the committed rows (never trust a marker past them)."""
        committed = attrs["committed_steps"]
        if committed == 0:
            return
        for path in per_step_arrays(attrs):
            try:
                arr = self._open(path, attrs)
            except KeyError:
                raise self.damaged(path, "the array (or its zarr.json) is missing") from None
            if arr.shape[0] < committed:
                raise self.damaged(
                    path, f"has {arr.shape[0]} rows but committed_steps says {committed}"
                )
            self._arrays[path] = arr

    def snapshot_lists(self, kind: str) -> Lists:
        """Each tensor's committed snapshot steps and array rows (read once a commit)."""
        lists = self._snapshot_lists.get(kind)
        if lists is None:
            try:
                lists = read_lists(self._group, self.attrs, kind)
            except Exception as exc:  # missing, short, or its chunks unreadable
                if isinstance(exc, PermissionError):
                    raise
                what = "the array is missing" if isinstance(exc, KeyError) else str(exc)[:120]
                raise self.damaged(f"{kind}/snapshot_index", what) from None
            self._snapshot_lists[kind] = lists
        return lists

    def probe_elements(self, kind: str, row: int) -> np.ndarray:
        """The flat element indices probed of tensor `row` of `kind`."""
        try:
            return probe_index.read(self._group, self.attrs, kind, row)
        except Exception as exc:  # missing, short, or its chunks unreadable
            if isinstance(exc, PermissionError):
                raise
            what = "the array is missing" if isinstance(exc, KeyError) else str(exc)[:120]
            raise self.damaged(probe_index.probe_elements_path(kind), what) from None

    @property
    def committed_steps(self) -> int:
        return int(self.attrs["committed_steps"])

    def array(self, path: str) -> zarr.Array | None:
        arr = self._arrays.get(path)
        if arr is None:
            try:
                arr = self._open(path, self.attrs)
            except KeyError:
                return None
            self._arrays[path] = arr
        return arr

    def _open(self, path: str, attrs: dict[str, Any]) -> zarr.Array:
        """The array at `path`, read with MISSING_FILL as its fill value where that applies."""
        with TUNED_READS:  # (the array keeps the pipeline it is opened with)
            arr = self._group[path]
        missing = MISSING_FILL.get(arr.dtype)
        if missing is None or not attrs.get("every_chunk"):
            return arr
        fill = np.array(missing, arr.dtype.str.replace("f", "u")).view(arr.dtype)[()]
        metadata = dataclasses.replace(arr.metadata, fill_value=fill)
        config = arr.async_array.config
        return zarr.Array(zarr.AsyncArray(metadata, arr.store_path, config))

    def rows(
        self, path: str, columns: Any = slice(None), at: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The committed rows of a per-step array (None when it was never written); `at`:
        only those rows (indices, increasing)."""
        arr = self.array(path)
        n = self.committed_steps
        if arr is None:
            return None
        steps = slice(0, n) if at is None else at
        region = (steps, *columns) if isinstance(columns, tuple) else (steps, columns)
        return self.read(path, arr, region)

    def spread_rows(self, path: str, blocks: int) -> np.ndarray | None:
        """The committed rows of at most `blocks` evenly spread chunks of steps of `path`
        (whole chunks: part of one costs as much to read as all of it), always the first
        and the last; None when it has no more chunks than that (then read them all)."""
        arr = self.array(path)
        n = self.committed_steps
        size = arr.chunks[0] if arr is not None else n
        count = -(-n // max(size, 1))
        if count <= blocks:
            return None
        chosen = np.unique(np.linspace(0, count - 1, blocks).round().astype(np.int64))
        rows = (chosen[:, None] * size + np.arange(size)[None, :]).ravel()
        return rows[rows < n]

    def read(self, path: str, arr: zarr.Array, region: Any) -> np.ndarray:
        """arr[region], or a one-line error naming the array when its data is damaged:
        unreadable, or (in runs that write every chunk) a chunk file missing, which would
        otherwise read as fill values: a wrong number."""
        with TUNED_READS:
            return self._read(path, arr, region)

    def _read(self, path: str, arr: zarr.Array, region: Any) -> np.ndarray:
        every_chunk = self.attrs.get("every_chunk")
        missing = MISSING_FILL.get(arr.dtype) if every_chunk else None
        keys = self._unseen_chunks(arr, region) if every_chunk and missing is None else []
        try:
            found, data = zarr.core.sync.sync(_read_and_look(arr, region, keys))
            if missing is not None and _holds(data, missing):
                keys = self._unseen_chunks(arr, region)
                found, _ = zarr.core.sync.sync(_read_and_look(arr, None, keys))
        except Exception as exc:  # a truncated or garbled chunk: the codec's error
            if isinstance(exc, PermissionError):
                raise
            raise self.damaged(path, f"data cannot be read ({type(exc).__name__})") from None
        prefix = arr.store_path.path + "/"
        for key, exists in zip(keys, found):
            if not exists:
                raise self.damaged(path, f"chunk {key.removeprefix(prefix)} is missing")
        self._seen_chunks.update(keys)
        return data


def _holds(data: np.ndarray, missing: int) -> bool:
    """Whether `data` holds the value whose bits are `missing` anywhere."""
    bits = np.asarray(data).view(np.dtype(data.dtype.str.replace("f", "u")))
    return bool((bits == missing).any())


async def _read_and_look(arr: zarr.Array, region: Any, keys: list[str]) -> tuple[list[bool], Any]:
    """arr[region] (None: no read), and whether each chunk key exists (a missing chunk
    would read as fill values), at once: the lookups ride along with the read (72 ms of
    270 for one tensor's statistics over 100,000 steps, when they went first)."""
    store = arr.store_path.store
    if region is None:
        reading = asyncio.sleep(0)
    elif any(isinstance(index, np.ndarray) for index in region):
        reading = arr.async_array.get_orthogonal_selection(region)
    else:
        reading = arr.async_array.getitem(region)
    found, data = await asyncio.gather(asyncio.gather(*(store.exists(k) for k in keys)), reading)
    return list(found), data


def writer_is_live(attrs: dict[str, Any]) -> bool:
    """Whether a writer still records into a run: not closed, and its process still there
    (same host) or its heartbeat recent (see docs/format.md)."""
    if attrs["closed"]:
        return False
    writer = attrs.get("writer")
    if not isinstance(writer, dict):
        return True  # written before writers said who they were
    if writer.get("host") == socket.gethostname():
        return _process_exists(int(writer.get("pid", -1)))
    return time.time() - float(writer.get("heartbeat", 0)) < layout.LIVE_TIMEOUT


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else (or we cannot tell)
    return True
