"""RunWriter: what `weightlapse.create` returns, to record a run into. The generic `log`
takes any nesting of named arrays; the framework recorders feed the same `recorder`.

with weightlapse.create("runs/neuron") as run:
    run.log(step, {"w": w, "b": b}, loss=loss)
"""

from __future__ import annotations

import atexit
import shutil
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import WeightlapseError
from weightlapse.record.arrays import check_step, dtype_name, flatten_named, to_numpy
from weightlapse.record.budget import SnapshotBudget
from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.recorder import RecordConfig, StepRecorder
from weightlapse.record.schedule import DEFAULT_HISTOGRAMS, DEFAULT_SNAPSHOTS, Always, Never
from weightlapse.record.select import NameFilter
from weightlapse.record.stats import ArrayOps
from weightlapse.store.location import delete, is_url
from weightlapse.store.lock import is_local
from weightlapse.store.peer import PeerStore
from weightlapse.store.writer import StoreWriter

_NUMPY = NumpyOps()


class RunWriter:
    """A run being recorded. Read it with `weightlapse.open(path)`, also while it grows."""

    def __init__(self, path: str | Path | Any, writer: StoreWriter, recorder: StepRecorder) -> None:
        self.path = path
        self.store = writer
        self.recorder = recorder  # the seam the framework recorders feed
        self.last_step: int | None = writer.last_committed_step
        self._before_close: list[Callable[[], None]] = []
        self._closed = False
        _OPEN.add(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def before_close(self, callback: Callable[[], None]) -> None:
        """Runs `callback` first when the run closes, also at interpreter exit (the
        framework recorders snapshot the trained model there)."""
        self._before_close.append(callback)

    def log(
        self,
        step: int,
        arrays: Mapping[str, Any] | None = None,
        *,
        grads: Mapping[str, Any] | None = None,
        epoch: int = -1,
        batch: int = -1,
        snapshot: bool | None = None,
        activations: Mapping[str, Any] | None = None,
        **scalars: Any,
    ) -> None:
        """Records named arrays (any nesting of dicts/lists: a JAX pytree, a sess.run result).

        Names of nested entries are joined with '/'. Scalars (loss=..., acc=...) join the row.
        `snapshot=True` forces a full snapshot at this step, False forbids one.
        `activations` ({layer: array for your probe inputs}) are kept whole.
        """
        named = flatten_named(arrays or {})
        self.log_flat(
            step,
            {k: to_numpy(v, k) for k, v in named.items()},
            _NUMPY,
            grads={k: to_numpy(v, k) for k, v in flatten_named(grads or {}).items()},
            dtypes={k: dtype_name(v) for k, v in named.items() if k not in self.recorder.infos},
            epoch=epoch,
            batch=batch,
            snapshot=snapshot,
            activations={k: to_numpy(v, k) for k, v in (activations or {}).items()},
            scalars=scalars,
        )

    def log_flat(
        self,
        step: int,
        params: Mapping[str, Any],
        ops: ArrayOps,
        *,
        grads: Mapping[str, Any] | None = None,
        dtypes: Mapping[str, str] | None = None,
        epoch: int = -1,
        batch: int = -1,
        snapshot: bool | None = None,
        activations: Mapping[str, np.ndarray] | None = None,
        scalars: Mapping[str, Any] | None = None,
    ) -> None:
        """`log` for adapters: arrays already named, summarised by `ops` where they live
        (on their device), `dtypes` as their framework names them."""
        step = check_step(step, self.last_step)
        recorder = self.recorder
        for name, dtype in (dtypes or {}).items():
            if name not in recorder.infos:
                recorder.hints.setdefault(name, {}).setdefault("dtype", dtype)
        if grads and not recorder.config.gradients:
            recorder.config.gradients = True
        if snapshot is not None:
            keep = recorder.config.snapshots
            recorder.config.snapshots = Always() if snapshot else Never()
        try:
            recorder.record(
                int(step),
                params,
                ops,
                grads=grads,
                epoch=epoch,
                batch=batch,
                scalars=scalars,
                captures={"activation": dict(activations or {})},
            )
        finally:
            if snapshot is not None:
                recorder.config.snapshots = keep
        self.last_step = step

    def configure(self, **options: Any) -> None:
        """Changes what is recorded (the options of `create`) before recording starts."""
        recorder = self.recorder
        if self.store.attrs["committed_steps"] or recorder.has_recorded:
            raise WeightlapseError(
                "This run has recorded steps already; pass recording options when creating "
                "it (weightlapse.create(path, every=..., gradients=...))."
            )
        fields = vars(recorder.config)
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise WeightlapseError(
                f"Unknown recording option(s) {unknown}; known: {sorted(fields)}."
            )
        recorder.config = RecordConfig(**{**fields, **options})
        recorder.budget = SnapshotBudget(recorder.config.snapshot_budget)
        recorder.filter = NameFilter(recorder.config.include, recorder.config.exclude)

    def describe(self, name: str, *, layout: str = "", layer: str = "") -> None:
        """Says what a tensor's axes mean ('out,in,h,w', 'h,w,in,out', ...) and its layer,
        before it is first logged, so views need not guess."""
        self.recorder.hints.setdefault(name, {}).update({"layout": layout, "layer": layer})

    def set_meta(self, **meta: Any) -> None:
        """Stores JSON-able facts about the run (framework, model summary, input shape)."""
        self.store.update_meta(meta)

    def flush(self) -> None:
        """Commits every logged step to the store now."""
        self.recorder.finish()
        self.store.flush()

    def close(self) -> None:
        """Ends the run: the last recorded step gets a snapshot (when snapshots are on),
        everything is committed and the run is marked closed."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        for callback in self._before_close:
            callback()
        self.recorder.finish(final=True)
        self.store.close()

    def discard(self) -> None:
        """Closes the run and deletes it: for a run that was never used (a recorder that
        failed to start), so a retry does not find it "exists"."""
        self._before_close.clear()
        self._closed = True
        _OPEN.discard(self)
        self.store.close()
        if is_url(self.path):
            delete(self.path, self.store.storage_options)
        elif is_local(self.path) and Path(self.path).is_dir():
            shutil.rmtree(self.path)

    def reopen(self) -> None:
        """Goes on recording into this run after `close` (a second Keras fit)."""
        if not self._closed:
            return
        self.store = StoreWriter(
            self.path,
            resume=True,
            bins=self.store.bins,
            flush_seconds=self.store.flush_seconds,
            storage_options=self.store.storage_options,
        )
        self.recorder.writer = self.store
        self._closed = False
        _OPEN.add(self)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunWriter({str(self.path)!r})"


def create(
    path: str | Path | Any,
    *,
    overwrite: bool = False,
    resume: bool = False,
    every: Any = 1,
    snapshots: Any = DEFAULT_SNAPSHOTS,
    histograms: Any = DEFAULT_HISTOGRAMS,
    snapshot_budget: int | None = 2**30,
    include: Any = None,
    exclude: Any = None,
    gradients: bool = False,
    updates: bool = False,
    bins: int = 64,
    max_probes: int = 32,
    flush_seconds: float = 2.0,
    meta: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    peer: bool = False,
) -> RunWriter:
    """A new run at `path` (a directory, or any fsspec URL Zarr takes) to record into.

    `overwrite=True` deletes what is at `path` first; `resume=True` goes on recording into
    the run there, after its last committed step (after a crash or a checkpoint restore).
    Statistics and probes are taken at every step `every` says; 64-bin histograms at
    those `histograms` also says (default: log-spaced early, then every 10th step);
    full snapshots at those `snapshots` says (default 'auto': log-spaced, 20 a decade,
    fewer when `snapshot_budget` would not last a million steps of the model).
    `storage_options`: for an object-store URL ("s3://bucket/runs/a"), fsspec's options
    (key, secret, endpoint_url via client_kwargs, ...); without them fsspec reads the
    environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    `peer=True`: a rank other than 0 of a sharded model; it decides and computes what
    rank 0 does (its part of each step) and keeps nothing itself (store/peer.py).
    >>> with weightlapse.create("runs/a") as run:
    ...     run.log(0, {"w": np.zeros(3)}, loss=1.0)
    """
    if overwrite and resume:
        raise WeightlapseError("overwrite=True deletes the run resume=True would go on: pick one.")
    config = RecordConfig(
        include=include,
        exclude=exclude,
        every=every,
        snapshots=snapshots,
        histograms=histograms,
        snapshot_budget=snapshot_budget,
        gradients=gradients,
        updates=updates,
        bins=bins,
        max_probes=max_probes,
    )
    if peer:
        options = dict(storage_options or {})
        store = PeerStore(path, flush_seconds, options)
        return RunWriter(path, store, StepRecorder(store, config))  # type: ignore[arg-type]
    writer = StoreWriter(
        path,
        meta=dict(meta or {}) if resume else {"framework": "generic", **(meta or {})},
        bins=bins,
        max_probes=max_probes,
        flush_seconds=flush_seconds,
        overwrite=overwrite,
        resume=resume,
        storage_options=dict(storage_options or {}),
    )
    recorder = StepRecorder(writer, config)
    if resume:
        recorder.restore(writer.attrs)
    return RunWriter(path, writer, recorder)


# Runs still open when the interpreter exits are closed then: a script that trains and
# ends without close() leaves a complete, closed run (kill -9 is the heartbeat's job).
_OPEN: weakref.WeakSet[RunWriter] = weakref.WeakSet()


def _close_open_runs() -> None:
    for run in list(_OPEN):
        try:
            run.close()
        except Exception as exc:  # exiting anyway: say it, do not mask the exit
            warnings.warn(
                f"weightlapse could not close {run.path!s} at exit: {exc!r}", stacklevel=1
            )


# Zarr writes through thread pools, which refuse work once the interpreter's threading
# shutdown has run them down, before plain atexit handlers: close first. (The hook that
# concurrent.futures itself uses; plain atexit where it is missing.)
_at_threading_exit = getattr(threading, "_register_atexit", atexit.register)
_at_threading_exit(_close_open_runs)
