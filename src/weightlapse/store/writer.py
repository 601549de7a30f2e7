"""The background writer: buffers recorded steps and commits them to Zarr in batches.

Training threads only enqueue; one thread owns the store. A flush writes every array
first and the group attribute holding `committed_steps` last, so a reader (or a run
reopened after `kill -9`) sees whole steps only. Memory is bounded: `submit` waits
when more than `max_pending_bytes` are queued.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import deque
from typing import Any

import numpy as np
import zarr

from weightlapse.errors import RecordingError
from weightlapse.store import layout, opening, probe_index
from weightlapse.store.check import remove_partial_files, remove_unlisted_snapshots
from weightlapse.store.location import zarr_store
from weightlapse.store.lock import WriterLock
from weightlapse.store.messages import Flush, Handover, Message, Meta, Register, Step, iter_queue
from weightlapse.store.pacing import (
    FLUSH_STEPS,
    WRITER_NAP,
    flush_due,
    lower_priority_of_this_thread,
    now,
)
from weightlapse.store.records import StepRecord, TensorInfo, WrittenSnapshot
from weightlapse.store.regions import Part, Region, RegionWriter
from weightlapse.store.rows import step_blocks
from weightlapse.store.snapshot_index import migrate
from weightlapse.store.snapshots import SnapshotWriter

# Messages the writer may have queued before the training side does its share.
BEHIND = 4


class StoreWriter:
    """Owns a run's Zarr group; everything reaches it through a queue."""

    def __init__(
        self,
        path: Any,
        *,
        meta: dict[str, Any] | None = None,
        bins: int = 64,
        max_probes: int | None = None,  # resumed: the recorder's, checked against the run's
        flush_seconds: float = 2.0,
        flush_steps: int = FLUSH_STEPS,
        max_pending_bytes: int = 256 * 2**20,
        overwrite: bool = False,
        resume: bool = False,
        storage_options: dict | None = None,
    ) -> None:
        self.path = path
        self.storage_options = storage_options
        self.target = zarr_store(path, storage_options)  # what Zarr opens
        self.flush_seconds = flush_seconds
        self.flush_steps = flush_steps
        self.max_pending_bytes = max_pending_bytes
        self._arrays: dict[str, zarr.Array] = {}
        self._lock = WriterLock(path)  # before anything is read, deleted or written
        try:
            self._open(path, meta, bins, max_probes, overwrite, resume)
        except BaseException:
            self._lock.release()
            raise
        self._snapshots = SnapshotWriter(self.group, self.attrs)
        self._direct = RegionWriter(self.target, 0, 1, lambda: None)  # see write_now
        self._direct_paths: dict[tuple[str, str], str] = {}
        self._buffer: list[StepRecord] = []
        self._buffered_bytes = 0
        self._known: dict[str, set[str]] = {}  # registered tensors by kind
        self._new_probes: dict[str, list[np.ndarray]] = {}  # registered, not yet written
        # The training side never waits on a lock the writer holds: the writer runs at low
        # priority, and a lock held when it lost the CPU would make training wait for it.
        # So: a SimpleQueue, and counters that each one side only writes (bytes and
        # messages in, by producers under their own lock; out, by the writer).
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._producers = threading.Lock()
        self._bytes_in = 0
        self._bytes_out = 0
        self._error: BaseException | None = None
        self._handover = threading.Event()
        self._submitted = 0  # messages put (producers), and taken in (the writer)
        self._handled = 0
        self._oldest_submitted = 0.0  # when the oldest buffered step was submitted
        self._steps_in = 0  # steps submitted (the training side), and committed (the writer)
        self._steps_committed = 0
        self._uncommitted: deque[float] = deque()  # when each step not committed was sent
        self._last_flush = now()
        self._commit_attrs()
        self._thread = threading.Thread(target=self._loop, name="weightlapse-writer", daemon=True)
        self._thread.start()

    def _open(
        self,
        path: Any,
        meta: dict[str, Any] | None,
        bins: int,
        max_probes: int | None,
        overwrite: bool,
        resume: bool,
    ) -> None:
        if resume:
            self.group, self.attrs = opening.open_for_resume(path, self.storage_options)
            opening.check_resumable(path, self.attrs, bins, max_probes)  # before anything changes
            remove_partial_files(path)  # what a killed writer left half-written
            remove_unlisted_snapshots(self.group, self.attrs)  # and never committed
            migrate(self.group, self.attrs)  # an older run's lists into arrays
            probe_index.migrate(self.group, self.attrs)
            self.attrs["format_version"] = layout.FORMAT_VERSION
            if meta:
                self.attrs["meta"].update(meta)
        else:
            self.group = opening.create_group(path, overwrite, self.storage_options)
            self.attrs = layout.new_run_attrs(bins, meta)
        self.bins = int(self.attrs["bins"])
        self.attrs["closed"] = False
        self.attrs["writer"] = opening.writer_identity()
        self.last_committed_step: int | None = opening.last_step(self.group, self.attrs)

    # ---- the training side -------------------------------------------------------------
    def register(self, kind: str, info: TensorInfo, probe_elements: np.ndarray) -> None:
        self._put(Register(kind, info, probe_elements), 0)

    def update_meta(self, meta: dict[str, Any]) -> None:
        self._put(Meta(meta), 0)

    def submit(self, record: StepRecord) -> None:
        if self.behind:
            # The writer is behind, short of CPU (at low priority, beside training's
            # threads): this thread computes the step's statistics itself, so the
            # backlog, the memory it holds and what kill -9 loses stay bounded.
            record.resolve()
        nbytes = record.nbytes()
        self._put(Step(record, nbytes, now()), nbytes)
        self._steps_in += 1
        self._wait_if_an_interval_behind()

    def _wait_if_an_interval_behind(self) -> None:
        """Training waits for the writer once the oldest step not yet committed was logged
        more than a flush interval ago. Beside training's threads the writer, at low
        priority, may get too little of the CPU to commit anything until close; while
        training waits it has the CPU to itself. So the store stays about an interval
        behind at most: what a reader sees, and what kill -9 loses."""
        times = self._uncommitted
        times.append(now())
        while len(times) > self._steps_in - self._steps_committed:
            times.popleft()
        if times and now() - times[0] > self.flush_seconds:
            self.flush()

    @property
    def behind(self) -> bool:
        """More than BEHIND messages wait for the writer thread: short of CPU, it would
        leave the training side to compute statistics (see `submit`)."""
        return self._submitted - self._handled > BEHIND

    def write_now(self, kind: str, name: str, array: np.ndarray) -> WrittenSnapshot:
        """A snapshot too big to copy, written by the calling thread from the tensor's own
        memory (chunk by chunk) into the tensor's array, which only this path writes; the
        step's commit lists it, as it does a sharded one."""
        path = self._direct_paths.get((kind, name))
        if path is None:
            known = self.attrs["snapshots"].get(kind, {}).get(name)  # a resumed run's
            taken = set(self._direct_paths.values())
            path = known["array"] if known else layout.snapshot_path(kind, name, taken)
            self._direct_paths[(kind, name)] = path
        shape = tuple(array.shape)
        chunks = layout.snapshot_chunks(shape, array.dtype.itemsize)[1:]
        region = Region((0,) * len(shape), shape, chunks, flat=False)
        about = {"tensor": name, "kind": kind}
        (row,) = self._direct.write_row([Part(path, shape, about, region, array)])
        return WrittenSnapshot(path, row, layout.snapshot_nbytes(array))

    @property
    def stopped(self) -> bool:
        """True once a failure stopped recording (the warning said what is kept)."""
        return self._error is not None

    def flush(self) -> None:
        """Blocks until everything submitted so far is committed."""
        message = Flush()
        self._put(message, 0)
        while not message.done.wait(0.1):
            if not self._thread.is_alive():
                break

    def close(self) -> None:
        """Commits everything and marks the run closed. The closing thread takes the
        backlog over: the writer thread runs at low priority, and right after training
        the framework's worker threads still spin, so a backlog left to it took a second
        or more to drain (0.06 s here, on the CNN of bench/overhead.py)."""
        if self._thread.is_alive():
            self._handover.set()
            self._queue.put(Handover())  # wakes a writer waiting for work
            self._thread.join()
            if self._error is None:
                try:
                    self._finish_here()
                except BaseException as exc:
                    self._stop_on(exc, None)
        self._lock.release()

    def _finish_here(self) -> None:
        waiting = []
        for message in iter_queue(self._queue):
            if isinstance(message, Flush):
                waiting.append(message)
            elif not isinstance(message, Handover):
                self._handle(message)
        self.attrs["closed"] = True
        self._flush()
        for message in waiting:
            message.done.set()

    def _put(self, message: Message, nbytes: int) -> None:
        if self._error is not None:
            return  # recording stopped; training goes on (the warning said so once)
        if not self._thread.is_alive() and not isinstance(message, Flush):
            raise RecordingError("This run is closed; create a new run to record more.")
        with self._producers:
            while self._bytes_in - self._bytes_out > self.max_pending_bytes:
                if not self._thread.is_alive() or self._error is not None:
                    break
                time.sleep(0.005)  # memory bound reached: training waits for the writer
            self._bytes_in += nbytes
            self._submitted += 1
            self._queue.put(message)

    # ---- the writer thread -------------------------------------------------------------
    def _loop(self) -> None:
        lower_priority_of_this_thread()
        last_beat = time.monotonic()
        while not self._handover.is_set():
            try:
                message: Message | None = self._queue.get(timeout=self._wait_seconds())
            except queue.Empty:
                message = None
            if isinstance(message, Handover):
                return
            try:
                if message is None and time.monotonic() - last_beat >= layout.HEARTBEAT_SECONDS:
                    self._commit_attrs()  # idle: tell readers the writer is still there
                    last_beat = time.monotonic()
                if isinstance(message, Flush):
                    self._flush()
                    last_beat = time.monotonic()
                    message.done.set()
                    self._count_handled()
                    continue
                self._handle(message)
                if self._flush_due():
                    self._flush()
                    last_beat = time.monotonic()
                if message is not None:
                    self._count_handled()
                if message is not None and WRITER_NAP and self._queue.empty():
                    self._handover.wait(WRITER_NAP)  # caught up: let steps gather
            except BaseException as exc:  # the training thread must learn of it, not die
                self._stop_on(exc, message)
                return

    def _stop_on(self, exc: BaseException, message: Message | None) -> None:
        self._error = exc
        kept = (
            "nothing was committed"
            if self.last_committed_step is None
            else f"steps up to step {self.last_committed_step} stay readable"
        )
        warnings.warn(
            f"weightlapse stopped recording {self.path!s}: {exc!r}. Training goes "
            f"on; {kept}; nothing after that is recorded.",
            RuntimeWarning,
            stacklevel=1,
        )
        self._drain(message)

    def _flush_due(self) -> bool:
        return flush_due(
            len(self._buffer),
            now() - self._oldest_submitted,
            now() - self._last_flush,
            self._queue.empty(),
            self.flush_seconds,
            self.flush_steps,
        )

    def _wait_seconds(self) -> float:
        if not self._buffer:
            return layout.HEARTBEAT_SECONDS
        return max(0.0, self.flush_seconds / 2 - (now() - self._oldest_submitted))

    def caught_up(self) -> None:
        """Blocks until the writer has taken in everything submitted so far and decided
        on a flush (it does not force one): what the writer-keeps-up test waits for."""
        while self._handled < self._submitted and self._thread.is_alive():
            time.sleep(0.001)

    def _handle(self, message: Message | None) -> None:
        if isinstance(message, Step):
            message.record.resolve()
            # The raw host copy is gone once its statistics are computed: only what waits
            # for the flush (statistics, snapshots) still counts against the memory bound.
            kept = message.record.nbytes()
            if not self._buffer:
                self._oldest_submitted = message.submitted
            self._buffer.append(message.record)
            self._buffered_bytes += kept
            self._release(message.nbytes - kept)
        elif isinstance(message, Register):
            self._register(message.kind, message.info, message.probe_elements)
        elif isinstance(message, Meta):
            self.attrs["meta"].update(message.meta)

    def _drain(self, failed: Message | None) -> None:
        """After a failure: wake everyone waiting on a flush or on memory."""
        for message in [failed, *iter_queue(self._queue)]:
            if isinstance(message, Flush):
                message.done.set()
        self._bytes_out = self._bytes_in  # nothing is pending any more

    def _register(self, kind: str, info: TensorInfo, probe_elements: np.ndarray) -> None:
        k = self.attrs["kinds"].setdefault(kind, {"tensors": [], "probe_counts": []})
        known = self._known.get(kind)
        if known is None:  # (not setdefault: its default, a set of every name, is built each call)
            known = self._known[kind] = set(k["tensors"])
        if info.name in known:
            return
        known.add(info.name)
        k["tensors"].append(info.name)
        k["probe_counts"].append(int(len(probe_elements)))
        self._new_probes.setdefault(kind, []).append(probe_elements)
        self.attrs["tensors"].setdefault(info.name, info.as_json())

    def _growing_array(self, path: str, block: np.ndarray, stop: int) -> zarr.Array:
        """The array at `path`: known, or there already (a resumed run), or made now as
        long and wide as this flush's block needs (so its first write needs no resize)."""
        arr = self._arrays.get(path)
        if arr is not None:
            return arr
        try:
            arr = self.group[path]
        except KeyError:
            chunks, dtype, fill = layout.growing_array_spec(path, block.shape[1])
            chunks = tuple(c or n for c, n in zip(chunks, block.shape[1:]))
            arr = layout.create_growing_array(
                self.group, path, block.shape[1:], chunks, dtype, fill, stop
            )
        self._arrays[path] = arr
        return arr

    @staticmethod
    def _write_rows(arr: zarr.Array, start: int, block: np.ndarray) -> None:
        stop = start + block.shape[0]
        inner = tuple(max(a, b) for a, b in zip(arr.shape[1:], block.shape[1:]))
        if arr.shape[0] < stop or arr.shape[1:] != inner:
            arr.resize((stop, *inner))
        arr[(slice(start, stop), *(slice(0, n) for n in block.shape[1:]))] = block

    def _flush(self) -> None:
        self._last_flush = now()
        buffered, self._buffer = self._buffer, []
        start = int(self.attrs["committed_steps"])
        if buffered:
            blocks = step_blocks(buffered, self.attrs["kinds"], self.attrs["scalars"], self.bins)
            for path, block in blocks.items():
                stop = start + len(block)
                self._write_rows(self._growing_array(path, block, stop), start, block)
        self._snapshots.write(buffered)
        self.attrs["committed_steps"] = start + len(buffered)
        self._commit_attrs()  # last: this is what makes the steps visible
        self._steps_committed += len(buffered)
        if buffered:
            self.last_committed_step = buffered[-1].step
        self._release(self._buffered_bytes)
        self._buffered_bytes = 0

    def _count_handled(self) -> None:
        self._handled += 1  # the writer alone writes it

    def _release(self, nbytes: int) -> None:
        self._bytes_out += nbytes  # the writer alone writes it

    def _commit_attrs(self) -> None:
        for kind, elements in self._new_probes.items():  # before the attributes list them
            counts = self.attrs["kinds"][kind]["probe_counts"]  # the new tensors' included
            committed = sum(counts) - sum(len(e) for e in elements)
            probe_index.append(self.group, kind, elements, committed)
        self._new_probes = {}
        self.attrs["writer"]["heartbeat"] = time.time()
        self.group.attrs[layout.ROOT_ATTR] = self.attrs
