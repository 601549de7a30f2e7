"""The recorder core every integration feeds: what to record, when, and how it reaches the store."""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError
from weightlapse.record.arrays import dtype_name, parent_path, same_dtype, scalar_value
from weightlapse.record.budget import SnapshotBudget
from weightlapse.record.config import RecordConfig
from weightlapse.record.inplace import big_views, host_views, is_big, summarize_in_place
from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.schedule import Never, fit_to_budget
from weightlapse.record.select import NameFilter
from weightlapse.record.stats import (
    ArrayOps,
    Segments,
    choose_probes,
    collective,
    summarize,
    summarize_host,
)
from weightlapse.store.layout import snapshot_nbytes
from weightlapse.store.records import BulkSnapshots, Deferred, KindRows, StepRecord, TensorInfo
from weightlapse.store.writer import StoreWriter

_HOST = NumpyOps()


@dataclass
class _KindLayout:
    names: tuple[str, ...]
    rows: np.ndarray
    segments: Segments
    shapes: list[tuple[int, ...]]
    on_device: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def elements(self) -> int:
        return int(self.segments.sizes.sum())


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
        self._registered: dict[str, dict[str, int]] = {}  # kind -> {tensor: its row}
        self._layouts: dict[tuple[str, tuple[str, ...]], _KindLayout] = {}
        self._before: dict[str, Any] = {}
        self._exact_updates = False  # an integration calls before_step() around each step
        self._pending: StepRecord | None = None
        # Scalars of a step not (yet) recorded: they join it if it is recorded after all
        # (at an epoch's end, or the final step at close), and are dropped otherwise.
        self._stash: tuple[int, dict[str, Any]] | None = None
        self._shapes: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = {}
        self.budget = SnapshotBudget(self.config.snapshot_budget)
        # An integration that snapshots the live model at close sets this: then the last
        # step's host copy is not needed for that snapshot (see `finish`).
        self.final_snapshot_elsewhere = False

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
        snapshot: bool | None = None,
        captures: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        final: bool = False,
    ) -> bool:
        """Records `step` if a schedule says so (or `force`); True when it did.
        `snapshot` True or False overrides the snapshot schedule for this step; `final`:
        it is the trained model's, at close (the budget keeps room for it).
        `captures` ({kind: {name: host array}}: 'activation' and 'attribution' arrays for
        the probe inputs) are kept whole, as snapshots of that kind, with statistics.
        Scalars of a step that is not recorded are not recorded either.
        """
        if self.writer.stopped and not collective(ops):
            return False  # a failure stopped recording; the writer warned once
        cfg = self.config
        self.check_shapes(step, params)
        if not getattr(cfg.snapshots, "fitted", True):  # the default thins for a big model
            size = self.budget.size_of(self.filter.kept(params))
            fit_to_budget(cfg.snapshots, size, self.budget.budget)
        wanted = cfg.snapshots.due(step, epoch_end) if snapshot is None else snapshot
        take_snapshot = wanted and self.budget.allows(self.filter.kept(params), final)
        if not (force or take_snapshot or cfg.every.due(step, epoch_end)):
            if scalars:
                self.add_scalars(step, scalars)
            return False
        if self._pending is not None and self._pending.step == step:
            self._merge_into_pending(params, ops, scalars, take_snapshot, epoch)
            for kind, arrays in (captures or {}).items():
                if arrays and kind not in self._pending.kinds:
                    self._add_captures(self._pending, kind, arrays)
            return True
        params = self.filter.kept(params)
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
        if self._stash is not None and self._stash[0] == step:
            record.scalars.update(self._stash[1])
        self._stash = None
        record.scalars.update(scalars or {})
        histograms = cfg.histograms.due(step, epoch_end)
        # The parameters' host copy is kept when it becomes a snapshot: this step's, or
        # the run's last (taken from the copy at close unless an integration takes it).
        copy = take_snapshot or not (
            self.final_snapshot_elsewhere or isinstance(cfg.snapshots, Never)
        )
        for kind, tensors in kinds.items():
            if tensors:
                record.kinds[kind] = self._summarize(
                    kind, tensors, ops, histograms, copy=copy and kind == "param"
                )
        record.kinds.update(prepared)
        if take_snapshot:
            self._add_snapshots(record, params, ops, record.kinds.get("param"))
        for kind, arrays in (captures or {}).items():
            if arrays:
                self._add_captures(record, kind, arrays)
        self._submit_pending()
        self._pending = record
        return True

    def restore(self, attrs: dict[str, Any]) -> None:
        """Picks up what a resumed run recorded: tensors, their rows, snapshot bytes."""
        for kind, spec in attrs["kinds"].items():
            self._registered[kind] = {n: i for i, n in enumerate(spec["tensors"])}
        for name, info in attrs["tensors"].items():
            self.infos[name] = TensorInfo(
                name, tuple(info["shape"]), info["dtype"], info["layer"], info["layout"]
            )
        self.budget.spent = int(attrs.get("snapshot_bytes", 0))

    @property
    def has_recorded(self) -> bool:
        """True once a step was recorded (sent or held back)."""
        return self._pending is not None or bool(self._registered)

    def add_scalars(self, step: int, scalars: Mapping[str, Any]) -> bool:
        """Scalars of `step`: they join its row if it was recorded (True), else they wait
        in case it is recorded later, until another step is."""
        if self._pending is not None and self._pending.step == step:
            self._pending.scalars.update(scalars)
            return True
        if self._stash is None or self._stash[0] != step:
            self._stash = (step, {})
        self._stash[1].update(scalars)
        return False

    def check_shapes(self, step: int, params: Mapping[str, Any]) -> None:
        """A tensor keeps its shape for the whole run: a change is refused here, naming
        the tensor and both shapes, before anything of this step is kept."""
        names = tuple(params)
        shapes = tuple(t.shape for t in params.values())
        known = self._shapes.get(names)
        if known == shapes:
            return
        for name, shape in zip(names, shapes):
            info = self.infos.get(name)
            if info is not None and info.shape and tuple(info.shape) != tuple(shape):
                was, now = tuple(info.shape), tuple(shape)
                raise WeightlapseError(
                    f"{name!r} changed shape from {was} to {now} at step {step}; a run records"
                    " each tensor with one shape. Log the new tensor under a new name, or "
                    "record it into a new run. Nothing recorded so far is lost."
                )
        self._shapes[names] = shapes

    def finish(self, final: bool = False) -> None:
        """Sends the held-back step to the writer; `final`: it is the run's last, so it
        gets a snapshot (when snapshots are on) from the copy already taken."""
        pending = self._pending
        if final and pending is not None and not self.writer.stopped:
            self._snapshot_from_copy(pending)
        self._submit_pending()

    def _snapshot_from_copy(self, record: StepRecord) -> None:
        if record.has_snapshot("param") or isinstance(self.config.snapshots, Never):
            return
        rows = record.kinds.get("param")
        if not isinstance(rows, Deferred) or rows.arrays is None:
            return  # reduced on a device: the integrations snapshot the live model instead
        arrays = rows.arrays()
        if not self.budget.allows(arrays, final=True):
            return
        if rows.snapshot is not None:
            record.bulk["param"] = rows.snapshot  # the copy itself, as the step's others
            self.budget.spent += rows.snapshot.flat.nbytes
        else:
            for name, array in arrays.items():
                record.snapshots[("param", name)] = array
                self.budget.spent += snapshot_nbytes(array)

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
        if take_snapshot and not pending.has_snapshot("param"):
            kept = {n: t for n, t in params.items() if self.filter.keeps(n)}
            self._add_snapshots(pending, kept, ops)

    def prepare_gradients(
        self, grads: Mapping[str, Any], ops: ArrayOps, step: int | None = None
    ) -> KindRows | Deferred:
        """Summarises gradients now, before an optimizer step may change them in place;
        pass the result as `record(step, ..., grads=...)`. Cheaper than copying them."""
        kept = {n: g for n, g in grads.items() if g is not None and self.filter.keeps(n)}
        histograms = step is None or self.config.histograms.due(step)
        return self._summarize("grad", kept, ops, histograms, copy=False)

    def _summarize(
        self,
        kind: str,
        tensors: Mapping[str, Any],
        ops: ArrayOps,
        histograms: bool = True,
        copy: bool = True,
    ) -> KindRows | Deferred:
        """Host tensors: one copy now, statistics later on the writer thread; or, when
        the copy is not needed (`copy` False: no snapshot comes from it) and the writer is
        behind, statistics now in the tensors' own memory. Device tensors: reduced on
        their device now, one small copy back."""
        names = tuple(tensors)
        arrays = [tensors[n] for n in names]
        lay = self._layout(kind, names, arrays)
        if collective(ops):  # sharded: every rank reduces its part, then they combine
            s = ops.summarize_shards(arrays, lay.segments, self.config.bins, histograms)
            return KindRows(rows=lay.rows, stats=s.stats, counts=s.counts, probes=s.probes)
        views = big_views(arrays, ops, lay.elements)
        if views is None and not copy and self.writer.behind:
            # The training thread would compute them from the copy itself (submit): from
            # the tensors themselves it saves the copy (a tenth of the MLP's training thread).
            views = host_views(arrays, ops)
        if views is not None:  # summarised now, in the tensors' own memory
            s = summarize_in_place(views, lay.segments, self.config.bins, histograms)
            return KindRows(rows=lay.rows, stats=s.stats, counts=s.counts, probes=s.probes)
        flat = ops.host_copy(arrays)
        if flat is not None:
            bins, rows, segments, shapes = self.config.bins, lay.rows, lay.segments, lay.shapes

            def compute() -> KindRows:
                s = summarize_host(flat, segments, bins, histograms=histograms)
                return KindRows(rows=rows, stats=s.stats, counts=s.counts, probes=s.probes)

            bulk = BulkSnapshots(names, flat, segments.sizes, shapes)
            # NumPy arrays all of the copy's dtype: the copy's pieces are their snapshots
            uniform = {getattr(a, "dtype", None) for a in arrays} == {flat.dtype}
            return Deferred(flat.nbytes, compute, bulk.arrays, bulk if uniform else None)
        device = ops.device_of(arrays[0])
        consts = lay.on_device.get(device)
        if consts is None:
            consts = (
                ops.constant(lay.segments.segment_ids, arrays[0]),
                ops.constant(lay.segments.probe_index, arrays[0]),
            )
            lay.on_device[device] = consts
        s = summarize(ops, arrays, lay.segments, consts, self.config.bins, histograms)
        return KindRows(rows=lay.rows, stats=s.stats, counts=s.counts, probes=s.probes)

    def _layout(self, kind: str, names: tuple[str, ...], arrays: list[Any]) -> _KindLayout:
        lay = self._layouts.get((kind, names))
        if lay is not None:
            return lay
        registered = self._registered.setdefault(kind, {})
        probes = []
        for name, array in zip(names, arrays):
            hint = self.hints.get(name, {})
            info = self.infos.get(name) or TensorInfo(
                name=name,
                shape=tuple(int(d) for d in array.shape),
                dtype=hint.get("dtype") or dtype_name(array),
                layer=self.hints.get(name, {}).get("layer") or parent_path(name),
                layout=self.hints.get(name, {}).get("layout", ""),
            )
            self.infos.setdefault(name, info)
            size = int(np.prod(info.shape, dtype=np.int64))
            seed = zlib.crc32(name.encode()) ^ self.config.seed
            elements = choose_probes(size, self.config.max_probes, seed)
            probes.append(elements)
            if name not in registered:
                registered[name] = len(registered)
                self.writer.register(kind, info, elements)
        sizes = [int(np.prod(tuple(a.shape), dtype=np.int64)) for a in arrays]
        rows = np.asarray([registered[n] for n in names], dtype=np.int64)
        shapes = [tuple(a.shape) for a in arrays]  # a tensor keeps its shape (check_shapes)
        lay = _KindLayout(names, rows, Segments.build(sizes, probes), shapes)
        self._layouts[(kind, names)] = lay
        return lay

    def _add_captures(
        self, record: StepRecord, kind: str, arrays: Mapping[str, np.ndarray]
    ) -> None:
        record.kinds[kind] = self._summarize(kind, arrays, _HOST)
        for name, values in arrays.items():
            record.snapshots[(kind, name)] = np.asarray(values)

    def _add_snapshots(
        self,
        record: StepRecord,
        params: Mapping[str, Any],
        ops: ArrayOps,
        copied: KindRows | Deferred | None = None,
    ) -> None:
        if collective(ops):  # sharded: every rank writes its part where it belongs
            for name, written in ops.write_snapshots("param", dict(params)).items():
                record.snapshots[("param", name)] = written
                self.budget.spent += written.nbytes
            return
        # The host copy taken for the statistics is the snapshot too, when its dtype is
        # the tensor's: one copy of a big tensor, not two.
        bulk = copied.snapshot if isinstance(copied, Deferred) else None
        if bulk is not None and bulk.names == tuple(params):
            record.bulk["param"] = bulk
            self.budget.spent += bulk.flat.nbytes
            return
        views = copied.arrays() if isinstance(copied, Deferred) and copied.arrays else {}
        for name, tensor in params.items():
            host = views.get(name)
            view = ops.host_view(tensor) if host is None and is_big(tensor) else None
            if view is not None:  # written now from the tensor itself: no copy of it
                written = self.writer.write_now("param", name, view.reshape(tensor.shape))
                record.snapshots[("param", name)] = written
                self.budget.spent += written.nbytes
                continue
            if host is None or not same_dtype(host, tensor):
                host = ops.to_host(tensor)
            record.snapshots[("param", name)] = host
            self.budget.spent += snapshot_nbytes(host)

    def _submit_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        pending.scalars = {k: scalar_value(v) for k, v in pending.scalars.items()}
        self.writer.submit(pending)
