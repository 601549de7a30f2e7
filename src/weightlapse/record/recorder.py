"""The recorder core every integration feeds: what to record, when, and how it reaches the store."""

from __future__ import annotations

import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.schedule import DEFAULT_SNAPSHOTS, Schedule, as_schedule
from weightlapse.record.select import NameFilter
from weightlapse.record.stats import (
    DEFAULT_BINS,
    ArrayOps,
    Segments,
    choose_probes,
    summarize,
    summarize_host,
)
from weightlapse.store.records import Deferred, KindRows, StepRecord, TensorInfo
from weightlapse.store.writer import StoreWriter

_HOST = NumpyOps()


@dataclass
class RecordConfig:
    """What to record and when. Schedules accept an int (every N), 'epoch', 'log' or 'every:N'.

    `snapshot_budget` caps the bytes of full snapshots; past it snapshots stop (with a
    warning) while statistics go on.
    """

    include: str | tuple[str, ...] | list[str] | None = None
    exclude: str | tuple[str, ...] | list[str] | None = None
    every: Schedule | int | str = 1
    snapshots: Schedule | int | str | None = DEFAULT_SNAPSHOTS
    snapshot_budget: int | None = 2**30
    gradients: bool = False
    updates: bool = False
    bins: int = DEFAULT_BINS
    max_probes: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        self.every = as_schedule(self.every, what="every")
        self.snapshots = as_schedule(self.snapshots, what="snapshots")


@dataclass
class _KindLayout:
    names: tuple[str, ...]
    rows: np.ndarray
    segments: Segments
    on_device: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def parent_path(name: str) -> str:
    """'encoder/0/w' -> 'encoder/0', 'fc1.weight' -> 'fc1': the layer a name implies."""
    for sep in ("/", "."):
        if sep in name:
            return name.rsplit(sep, 1)[0]
    return ""


def dtype_name(x: Any) -> str:
    return str(getattr(x, "dtype", np.asarray(x).dtype)).replace("torch.", "")


class StepRecorder:
    """Turns named tensors at a step into statistics, histograms, probes and snapshots.

    The last step is held back until the next one arrives (or `finish()`), so that
    scalars known only later (Keras epoch logs, a loss logged after `optimizer.step()`)
    join the row of the step they belong to.
    """

    def __init__(self, writer: StoreWriter, config: RecordConfig | None = None) -> None:
        self.writer = writer
        self.config = config or RecordConfig()
        self.filter = NameFilter(self.config.include, self.config.exclude)
        self.infos: dict[str, TensorInfo] = {}
        self.hints: dict[str, dict[str, str]] = {}  # layout/layer told before a tensor is seen
        self._registered: dict[str, list[str]] = {}
        self._layouts: dict[tuple[str, tuple[str, ...]], _KindLayout] = {}
        self._before: dict[str, Any] = {}
        self._exact_updates = False  # an integration calls before_step() around each step
        self._pending: StepRecord | None = None
        self._stash: dict[str, Any] = {}
        self._snapshot_bytes = 0
        self._budget_warned = False

    # ---- when -------------------------------------------------------------------------
    def due(self, step: int, epoch_end: bool = False) -> bool:
        cfg = self.config
        return cfg.every.due(step, epoch_end) or cfg.snapshots.due(step, epoch_end)

    def before_step(self, step: int, params: Mapping[str, Any], ops: ArrayOps) -> None:
        """Keeps copies of the weights if `step` is due, so its update is exact."""
        self._exact_updates = True
        if self.config.updates and self.due(step):
            self._before = {n: ops.copy(t) for n, t in params.items() if self.filter.keeps(n)}

    # ---- what -------------------------------------------------------------------------
    def record(
        self,
        step: int,
        params: Mapping[str, Any],
        ops: ArrayOps,
        *,
        grads: Mapping[str, Any] | KindRows | Deferred | None = None,
        epoch: int = -1,
        batch: int = -1,
        scalars: Mapping[str, Any] | None = None,
        epoch_end: bool = False,
        force: bool = False,
        captures: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> bool:
        """Records `step` if a schedule says so (or `force`); True when it did.

        `captures` ({kind: {name: host array}}: 'activation' and 'attribution' arrays for
        the probe inputs) are kept whole, as snapshots of that kind, with statistics.
        """
        cfg = self.config
        take_snapshot = cfg.snapshots.due(step, epoch_end) and self._within_budget(params)
        if not (force or take_snapshot or cfg.every.due(step, epoch_end)):
            if scalars:
                self.add_scalars(scalars)
            return False
        if self._pending is not None and self._pending.step == step:
            self._merge_into_pending(params, ops, scalars, take_snapshot, epoch)
            for kind, arrays in (captures or {}).items():
                if arrays and kind not in self._pending.kinds:
                    self._add_captures(self._pending, kind, arrays)
            return True
        params = {n: t for n, t in params.items() if self.filter.keeps(n)}
        kinds: dict[str, Mapping[str, Any]] = {"param": params}
        prepared: dict[str, KindRows | Deferred] = {}
        if cfg.gradients and isinstance(grads, (KindRows, Deferred)):
            prepared["grad"] = grads
        elif cfg.gradients and grads:
            kinds["grad"] = {n: g for n, g in grads.items() if n in params and g is not None}
        if cfg.updates:
            updates = self._updates(params)
            if updates:
                kinds["update"] = updates
            # Without before_step(), an update is the change since the last recorded step.
            self._before = (
                {} if self._exact_updates else {n: ops.copy(t) for n, t in params.items()}
            )
        record = StepRecord(step=step, epoch=epoch, batch=batch, wall_time=time.time())
        record.scalars.update(self._stash)
        self._stash = {}
        record.scalars.update(scalars or {})
        for kind, tensors in kinds.items():
            if tensors:
                record.kinds[kind] = self._summarize(kind, tensors, ops)
        record.kinds.update(prepared)
        if take_snapshot:
            self._add_snapshots(record, params, ops)
        for kind, arrays in (captures or {}).items():
            if arrays:
                self._add_captures(record, kind, arrays)
        self._submit_pending()
        self._pending = record
        return True

    @property
    def has_recorded(self) -> bool:
        """True once a step was recorded (sent or held back)."""
        return self._pending is not None or bool(self._registered)

    def add_scalars(self, scalars: Mapping[str, Any]) -> None:
        """Scalars for the step just recorded (or, if none is held, the next one)."""
        target = self._pending.scalars if self._pending is not None else self._stash
        target.update(scalars)

    def finish(self) -> None:
        """Sends the held-back step to the writer."""
        self._submit_pending()

    # ---- how --------------------------------------------------------------------------
    def _updates(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self._before:
            return {}
        return {n: t - self._before[n] for n, t in params.items() if n in self._before}

    def _merge_into_pending(
        self,
        params: Mapping[str, Any],
        ops: ArrayOps,
        scalars: Mapping[str, Any] | None,
        take_snapshot: bool,
        epoch: int,
    ) -> None:
        pending = self._pending
        assert pending is not None
        pending.scalars.update(scalars or {})
        if epoch >= 0:
            pending.epoch = epoch
        if take_snapshot and not pending.snapshots:
            kept = {n: t for n, t in params.items() if self.filter.keeps(n)}
            self._add_snapshots(pending, kept, ops)

    def prepare_gradients(self, grads: Mapping[str, Any], ops: ArrayOps) -> KindRows | Deferred:
        """Summarises gradients now, before an optimizer step may change them in place;
        pass the result as `record(..., grads=...)`. Cheaper than copying them."""
        kept = {n: g for n, g in grads.items() if g is not None and self.filter.keeps(n)}
        return self._summarize("grad", kept, ops)

    def _summarize(
        self, kind: str, tensors: Mapping[str, Any], ops: ArrayOps
    ) -> KindRows | Deferred:
        """Host tensors: one copy now, statistics later on the writer thread. Device
        tensors: reduced on their device now, one small copy back."""
        names = tuple(tensors)
        arrays = [tensors[n] for n in names]
        lay = self._layout(kind, names, arrays)
        flat = ops.host_copy(arrays)
        if flat is not None:
            bins, rows, segments = self.config.bins, lay.rows, lay.segments

            def compute() -> KindRows:
                s = summarize_host(flat, segments, bins)
                return KindRows(rows=rows, stats=s.stats, counts=s.counts, probes=s.probes)

            return Deferred(flat.nbytes, compute)
        device = ops.device_of(arrays[0])
        consts = lay.on_device.get(device)
        if consts is None:
            consts = (
                ops.constant(lay.segments.segment_ids, arrays[0]),
                ops.constant(lay.segments.probe_index, arrays[0]),
            )
            lay.on_device[device] = consts
        s = summarize(ops, arrays, lay.segments, consts, bins=self.config.bins)
        return KindRows(rows=lay.rows, stats=s.stats, counts=s.counts, probes=s.probes)

    def _layout(self, kind: str, names: tuple[str, ...], arrays: list[Any]) -> _KindLayout:
        lay = self._layouts.get((kind, names))
        if lay is not None:
            return lay
        registered = self._registered.setdefault(kind, [])
        probes = []
        for name, array in zip(names, arrays):
            info = self.infos.get(name) or TensorInfo(
                name=name,
                shape=tuple(int(d) for d in array.shape),
                dtype=dtype_name(array),
                layer=self.hints.get(name, {}).get("layer") or parent_path(name),
                layout=self.hints.get(name, {}).get("layout", ""),
            )
            self.infos.setdefault(name, info)
            size = int(np.prod(info.shape, dtype=np.int64))
            seed = zlib.crc32(name.encode()) ^ self.config.seed
            elements = choose_probes(size, self.config.max_probes, seed)
            probes.append(elements)
            if name not in registered:
                registered.append(name)
                self.writer.register(kind, info, elements)
        sizes = [int(np.prod(tuple(a.shape), dtype=np.int64)) for a in arrays]
        rows = np.asarray([registered.index(n) for n in names], dtype=np.int64)
        lay = _KindLayout(names, rows, Segments.build(sizes, probes))
        self._layouts[(kind, names)] = lay
        return lay

    def _within_budget(self, params: Mapping[str, Any]) -> bool:
        budget = self.config.snapshot_budget
        if budget is None:
            return True
        size = sum(
            int(np.prod(tuple(t.shape), dtype=np.int64)) * 4
            for n, t in params.items()
            if self.filter.keeps(n)
        )
        if self._snapshot_bytes + size <= budget:
            return True
        if not self._budget_warned:
            warnings.warn(
                f"weightlapse: the snapshot budget of {budget:,} bytes is reached; statistics "
                "go on, full snapshots stop. Raise snapshot_budget or snapshot less often.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._budget_warned = True
        return False

    def _add_captures(
        self, record: StepRecord, kind: str, arrays: Mapping[str, np.ndarray]
    ) -> None:
        record.kinds[kind] = self._summarize(kind, arrays, _HOST)
        for name, values in arrays.items():
            record.snapshots[(kind, name)] = np.asarray(values)

    def _add_snapshots(self, record: StepRecord, params: Mapping[str, Any], ops: ArrayOps) -> None:
        for name, tensor in params.items():
            host = ops.to_host(tensor)
            record.snapshots[("param", name)] = host
            self._snapshot_bytes += int(host.size) * 4

    def _submit_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        pending.scalars = {k: _to_float(v) for k, v in pending.scalars.items()}
        self.writer.submit(pending)


def _to_float(value: Any) -> float:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return float("nan")
