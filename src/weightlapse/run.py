"""Run: the face of the store. Create one to record, open one to read (also while it grows).

with weightlapse.create("runs/neuron") as run:
    run.log(step, {"w": w, "b": b}, loss=loss)
weightlapse.open("runs/neuron")["w"].trajectory()
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import (
    StepNotRecordedError,
    UnknownNameError,
    UnknownTensorError,
    WeightlapseError,
)
from weightlapse.record.recorder import RecordConfig, Recorder
from weightlapse.record.schedule import Always, Never
from weightlapse.record.select import NameFilter
from weightlapse.record.stats import STAT_NAMES, NumpyOps
from weightlapse.store import layout
from weightlapse.store.reader import StoreReader
from weightlapse.store.writer import StoreWriter

_NUMPY = NumpyOps()


@dataclass(frozen=True)
class Histograms:
    """Histograms of one tensor at every recorded step: counts (S, bins), edges (S, bins + 1)."""

    steps: np.ndarray
    counts: np.ndarray
    edges: np.ndarray


@dataclass(frozen=True)
class Trajectory:
    """Values of chosen elements at every recorded step: values (S, P); `elements` are indices."""

    steps: np.ndarray
    values: np.ndarray
    elements: list[tuple[int, ...]]


class Stats(Mapping[str, np.ndarray]):
    """Per-step statistics of one tensor: `stats["l2"]` is an array aligned with `stats.steps`."""

    def __init__(self, steps: np.ndarray, table: np.ndarray) -> None:
        self.steps = steps
        self.table = table  # (S, len(STAT_NAMES))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in STAT_NAMES:
            raise UnknownNameError(name, STAT_NAMES, what="statistic")
        return self.table[:, STAT_NAMES.index(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(STAT_NAMES)

    def __len__(self) -> int:
        return len(STAT_NAMES)


class TensorHistory:
    """Everything recorded of one tensor (of one kind: param, grad or update)."""

    def __init__(self, run: Run, name: str, kind: str = "param") -> None:
        self.run, self.name, self.kind = run, name, kind
        spec = run._kind_spec(kind)
        if name not in spec["tensors"]:
            raise UnknownTensorError(name, spec["tensors"], what=f"{kind} tensor")
        self._row = spec["tensors"].index(name)
        info = run._attrs["tensors"].get(name, {})
        self.shape: tuple[int, ...] = tuple(info.get("shape", ()))
        self.dtype: str = info.get("dtype", "")
        self.layer: str = info.get("layer", "")
        self.layout: str = info.get("layout", "")

    def __repr__(self) -> str:
        return f"TensorHistory({self.name!r}, kind={self.kind!r}, shape={self.shape})"

    @property
    def grad(self) -> TensorHistory:
        return TensorHistory(self.run, self.name, "grad")

    @property
    def update(self) -> TensorHistory:
        return TensorHistory(self.run, self.name, "update")

    def _present(self, table: np.ndarray) -> np.ndarray:
        # Rows where this tensor was recorded: a kind may skip steps (no gradient at step 0).
        return ~np.all(np.isnan(table), axis=1)

    @property
    def stats(self) -> Stats:
        table = self.run._reader.rows(layout.stats_path(self.kind), (self._row, slice(None)))
        steps = self.run.steps
        keep = self._present(table)
        return Stats(steps[keep], table[keep])

    @property
    def histograms(self) -> Histograms:
        reader = self.run._reader
        table = reader.rows(layout.stats_path(self.kind), (self._row, slice(None)))
        counts = reader.rows(layout.hist_path(self.kind), (self._row, slice(None)))
        keep = self._present(table)
        table, counts = table[keep], counts[keep].astype(np.int64)
        lo = table[:, STAT_NAMES.index("min")]
        hi = table[:, STAT_NAMES.index("max")]
        frac = np.linspace(0.0, 1.0, counts.shape[1] + 1)
        edges = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        return Histograms(self.run.steps[keep], counts, edges)

    def trajectory(self, elements: list[tuple[int, ...]] | None = None) -> Trajectory:
        """Probe values over steps: all probed elements, or the given ones (must be probed)."""
        spec = self.run._kind_spec(self.kind)
        counts = spec["probe_counts"]
        start = int(sum(counts[: self._row]))
        flat = np.asarray(spec["probe_elements"][self._row], dtype=np.int64)
        probed = [tuple(int(i) for i in np.unravel_index(f, self.shape)) for f in flat]
        cols = list(range(len(flat)))
        if elements is not None:
            wanted = [tuple(e) if not isinstance(e, int) else (e,) for e in elements]
            missing = [e for e in wanted if e not in probed]
            if missing:
                raise WeightlapseError(
                    f"Element(s) {missing} of {self.name!r} were not probed. Probed elements: "
                    f"{probed[:10]}{' ...' if len(probed) > 10 else ''}. Read them from "
                    "snapshots with .at(step), or record with a larger max_probes."
                )
            cols = [probed.index(e) for e in wanted]
            probed = wanted
        values = self.run._reader.rows(
            layout.probes_path(self.kind),
            (slice(start + min(cols, default=0), start + max(cols, default=-1) + 1),),
        )
        if values is None:
            values = np.zeros((0, len(cols)), dtype=np.float32)
        if cols:
            values = values[:, [c - min(cols) for c in cols]]
        table = self.run._reader.rows(layout.stats_path(self.kind), (self._row, slice(None)))
        keep = self._present(table)
        return Trajectory(self.run.steps[keep], values[keep], probed)

    @property
    def snapshot_steps(self) -> list[int]:
        entry = self.run._attrs["snapshots"].get(self.kind, {}).get(self.name)
        return list(entry["steps"]) if entry else []

    def at(self, step: int = -1) -> np.ndarray:
        """The full tensor at a snapshot step; -1 is the last snapshot."""
        steps = self.snapshot_steps
        if not steps:
            raise StepNotRecordedError(
                f"No snapshots of {self.name!r} were recorded. Record with a snapshots= "
                "schedule (for example snapshots='epoch' or snapshots=100)."
            )
        if step == -1:
            k = len(steps) - 1
        elif step in steps:
            k = steps.index(step)
        else:
            nearest = sorted(steps, key=lambda s: abs(s - step))[:3]
            raise StepNotRecordedError(
                f"{self.name!r} has no snapshot at step {step}. Nearest snapshot steps: "
                f"{sorted(nearest)} (all: run[{self.name!r}].snapshot_steps)."
            )
        entry = self.run._attrs["snapshots"][self.kind][self.name]
        return np.asarray(self.run._reader.array(entry["array"])[k])

    @property
    def update_ratio(self) -> Stats:
        """||dW|| / ||W|| per recorded step (needs updates=True when recording)."""
        upd = self.update.stats
        par = self.stats
        common, iu, ip = np.intersect1d(upd.steps, par.steps, return_indices=True)
        ratio = upd["l2"][iu] / np.where(par["l2"][ip] > 0, par["l2"][ip], np.nan)
        return Stats(common, np.repeat(ratio[:, None], len(STAT_NAMES), axis=1))


class Run:
    """A recorded run. `weightlapse.create` gives one to write, `weightlapse.open` one to read."""

    def __init__(
        self,
        path: str | Path,
        *,
        writer: StoreWriter | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._recorder = recorder
        self._reader_: StoreReader | None = None

    # ---- reading ----------------------------------------------------------------------
    @property
    def _reader(self) -> StoreReader:
        if self._reader_ is None:
            self._reader_ = StoreReader(self.path)
        return self._reader_

    @property
    def _attrs(self) -> dict[str, Any]:
        return self._reader.attrs

    def refresh(self) -> bool:
        """Picks up steps committed since the last look; True when there were any."""
        return self._reader.refresh()

    def _kind_spec(self, kind: str) -> dict[str, Any]:
        kinds = self._attrs["kinds"]
        if kind not in kinds:
            raise UnknownNameError(kind, list(kinds), what="recorded kind")
        return kinds[kind]

    @property
    def tensors(self) -> list[str]:
        """Names of the recorded weights (kind 'param'), in recording order."""
        return list(self._attrs["kinds"].get("param", {}).get("tensors", []))

    @property
    def activations(self) -> list[str]:
        """Layers whose activations of the probe inputs were recorded."""
        return list(self._attrs["kinds"].get("activation", {}).get("tensors", []))

    def activation(self, layer: str) -> TensorHistory:
        """A layer's recorded activations: `.at(step)` is (probe inputs, *layer output)."""
        return self.history(layer, "activation")

    @property
    def attributions(self) -> list[str]:
        """Attribution maps recorded for the probe inputs ('saliency', 'gradcam:conv2')."""
        return list(self._attrs["kinds"].get("attribution", {}).get("tensors", []))

    def attribution(self, name: str) -> TensorHistory:
        """A recorded attribution map: `.at(step)` is (probe inputs, *map)."""
        return self.history(name, "attribution")

    @property
    def kinds(self) -> list[str]:
        return list(self._attrs["kinds"])

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._attrs["meta"])

    @property
    def format_version(self) -> int:
        return int(self._attrs["format_version"])

    def _index(self) -> np.ndarray:
        rows = self._reader.rows(layout.INDEX_PATH)
        return np.zeros((0, len(layout.INDEX_COLUMNS))) if rows is None else rows

    @property
    def steps(self) -> np.ndarray:
        return self._index()[:, 0].astype(np.int64)

    @property
    def epochs(self) -> np.ndarray:
        return self._index()[:, 1].astype(np.int64)

    @property
    def wall_times(self) -> np.ndarray:
        return self._index()[:, 3]

    @property
    def scalar_names(self) -> list[str]:
        return list(self._attrs["scalars"])

    def scalar(self, name: str) -> np.ndarray:
        """A logged scalar aligned with `steps` (NaN where it was not logged)."""
        names = self.scalar_names
        if name not in names:
            raise UnknownNameError(name, names, what="scalar")
        values = self._reader.rows(layout.SCALARS_PATH, names.index(name))
        return np.asarray(values, dtype=np.float64)

    @property
    def scalars(self) -> dict[str, np.ndarray]:
        return {name: self.scalar(name) for name in self.scalar_names}

    def __getitem__(self, name: str) -> TensorHistory:
        return TensorHistory(self, name)

    def history(self, name: str, kind: str = "param") -> TensorHistory:
        """One tensor of one kind: param, grad, update, activation or attribution."""
        return TensorHistory(self, name, kind)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __repr__(self) -> str:
        n = self._reader.committed_steps if self._reader_ or self._writer is None else "?"
        return f"Run({str(self.path)!r}, steps={n})"

    # ---- writing ----------------------------------------------------------------------
    def _require_writer(self) -> tuple[StoreWriter, Recorder]:
        if self._writer is None or self._recorder is None:
            raise WeightlapseError(
                "This run was opened for reading. Use weightlapse.create(path) to record."
            )
        return self._writer, self._recorder

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
        writer, recorder = self._require_writer()
        params = {k: _to_numpy(v, k) for k, v in flatten_named(arrays or {}).items()}
        grad_arrays = {k: _to_numpy(v, k) for k, v in flatten_named(grads or {}).items()}
        if grad_arrays and not recorder.config.gradients:
            recorder.config.gradients = True
        if snapshot is not None:
            keep = recorder.config.snapshots
            recorder.config.snapshots = Always() if snapshot else Never()
        try:
            recorder.record(
                int(step),
                params,
                _NUMPY,
                grads=grad_arrays,
                epoch=epoch,
                batch=batch,
                scalars=scalars,
                captures={
                    "activation": {k: _to_numpy(v, k) for k, v in (activations or {}).items()}
                },
            )
        finally:
            if snapshot is not None:
                recorder.config.snapshots = keep

    def _configure(self, **options: Any) -> None:
        """Changes what is recorded (the options of `create`) before recording starts."""
        _, recorder = self._require_writer()
        if recorder.writer.attrs["committed_steps"] or recorder._pending is not None:
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
        recorder.filter = NameFilter(recorder.config.include, recorder.config.exclude)

    def describe(self, name: str, *, layout: str = "", layer: str = "") -> None:
        """Says what a tensor's axes mean ('out,in,h,w', 'h,w,in,out', ...) and its layer,
        before it is first logged, so views need not guess."""
        _, recorder = self._require_writer()
        recorder.hints[name] = {"layout": layout, "layer": layer}

    def set_meta(self, **meta: Any) -> None:
        """Stores JSON-able facts about the run (framework, model summary, input shape)."""
        writer, _ = self._require_writer()
        writer.update_meta(meta)

    def flush(self) -> None:
        """Commits every logged step to the store now."""
        writer, recorder = self._require_writer()
        recorder.finish()
        writer.flush()
        if self._reader_ is not None:
            self._reader_.refresh()

    def close(self) -> None:
        if self._writer is None or self._recorder is None:
            return
        self._recorder.finish()
        self._writer.close()
        if self._reader_ is not None:
            self._reader_.refresh()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def flatten_named(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'dense': {'kernel': k}} -> {'dense/kernel': k}; lists and tuples use their index."""
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix or "value": tree}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten_named(value, f"{prefix}/{key}" if prefix else key))
    return out


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf, keras
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise WeightlapseError(
            f"{name!r}: cannot read a {type(value).__name__} as an array ({exc}). Give a "
            "NumPy array, a framework tensor, or a nested dict/list of them."
        ) from None
    if array.dtype.kind not in "fiub":
        raise WeightlapseError(
            f"{name!r} has dtype {array.dtype}; weightlapse records numbers (float, int, bool)."
        )
    return array


def create(
    path: str | Path,
    *,
    overwrite: bool = False,
    every: Any = 1,
    snapshots: Any = "log",
    snapshot_budget: int | None = 2**30,
    include: Any = None,
    exclude: Any = None,
    gradients: bool = False,
    updates: bool = False,
    bins: int = 64,
    max_probes: int = 32,
    flush_seconds: float = 2.0,
    meta: Mapping[str, Any] | None = None,
) -> Run:
    """A new run at `path` (a directory, or any fsspec URL Zarr takes) to record into.

    >>> with weightlapse.create("runs/a") as run:
    ...     run.log(0, {"w": np.zeros(3)}, loss=1.0)
    """
    config = RecordConfig(
        include=include,
        exclude=exclude,
        every=every,
        snapshots=snapshots,
        snapshot_budget=snapshot_budget,
        gradients=gradients,
        updates=updates,
        bins=bins,
        max_probes=max_probes,
    )
    writer = StoreWriter(
        path,
        meta={"framework": "generic", **(meta or {})},
        bins=bins,
        flush_seconds=flush_seconds,
        overwrite=overwrite,
    )
    return Run(path, writer=writer, recorder=Recorder(writer, config))


def open(path: str | Path) -> Run:  # noqa: A001 - the public name mirrors zarr.open
    """Opens a run to read; it sees new steps while training goes on (`run.refresh()`).

    >>> run = weightlapse.open("runs/a"); run["w"].stats["l2"]
    """
    run = Run(path)
    run._reader  # noqa: B018 - fail now, with a clear error, if it is not a run
    return run
