"""Run: a recorded run, read-only (also while it grows). `weightlapse.open` gives one;
`weightlapse.create` gives a `RunWriter` (weightlapse.run_writer) to record into.

run = weightlapse.open("runs/neuron")
run["w"].trajectory(), run["w"].stats["l2"], run["w"].at(-1)
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
from weightlapse.store import layout
from weightlapse.store.layout import STAT_NAMES
from weightlapse.store.reader import StoreReader, writer_is_live


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


@dataclass(frozen=True)
class UpdateRatio:
    """||dW|| / ||W|| at each step where both the update and the weight were recorded."""

    steps: np.ndarray
    values: np.ndarray


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

    def __repr__(self) -> str:
        last = (
            ", ".join(f"{n}={self[n][-1]:.4g}" for n in ("l2", "mean", "std"))
            if len(self.steps)
            else ""
        )
        return f"Stats({len(self.steps)} steps{'; last ' + last if last else ''})"

    def _repr_html_(self) -> str:
        from weightlapse.notebook import stats_html

        return stats_html(self, f"statistics over {len(self.steps)} steps")


class TensorHistory:
    """Everything recorded of one tensor (of one kind: param, grad or update)."""

    def __init__(self, run: Run, name: str, kind: str = "param") -> None:
        self.run, self.name, self.kind = run, name, kind
        names = run._kind_spec(kind)["tensors"]
        if name not in names:
            raise UnknownTensorError(name, names, what=f"{kind} tensor")
        self._row = names.index(name)
        info = run.tensor_info(name)
        self.shape: tuple[int, ...] = tuple(info.get("shape", ()))
        self.dtype: str = info.get("dtype", "")
        self.layer: str = info.get("layer", "")
        self.layout: str = info.get("layout", "")

    def __repr__(self) -> str:
        return f"TensorHistory({self.name!r}, kind={self.kind!r}, shape={self.shape})"

    def _repr_html_(self) -> str:
        from weightlapse.notebook import stats_html

        caption = f"{self.name} ({self.kind}, {'x'.join(map(str, self.shape))}, {self.dtype})"
        return stats_html(self.stats, caption)

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
        # Rows where the tensor was recorded with a histogram: on steps the histogram
        # schedule skips (and for a tensor with nothing finite) the counts are all zero.
        keep = self._present(table) & (counts.sum(axis=1) > 0)
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
        flat = self.run._reader.probe_elements(self.kind, self._row)
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
    def probed(self) -> int:
        """How many elements of the tensor were probed (their values kept every step)."""
        return int(self.run._kind_spec(self.kind)["probe_counts"][self._row])

    @property
    def snapshot_steps(self) -> list[int]:
        steps, _ = self.run._reader.snapshot_lists(self.kind).get(self.name, ([], []))
        return list(steps)

    def snapshot_step(self, step: int = -1) -> int:
        """The snapshot step `step` names: itself if a snapshot was taken there, the last
        snapshot for -1; otherwise an error naming the nearest ones."""
        steps = self.snapshot_steps
        if not steps:
            raise StepNotRecordedError(
                f"No snapshots of {self.name!r} were recorded. Record with a snapshots= "
                "schedule (for example snapshots='epoch' or snapshots=100)."
            )
        if step == -1:
            return steps[-1]
        if step not in steps:
            nearest = sorted(steps, key=lambda s: abs(s - step))[:3]
            raise StepNotRecordedError(
                f"{self.name!r} has no snapshot at step {step}. Nearest snapshot steps: "
                f"{sorted(nearest)} (all: run[{self.name!r}].snapshot_steps)."
            )
        return step

    def latest_snapshot_at(self, step: int) -> int:
        """The latest snapshot step at or before `step` (the first one if none is)."""
        steps = self.snapshot_steps
        if not steps:
            return self.snapshot_step(step)  # raises: no snapshots
        return steps[max(0, int(np.searchsorted(steps, step, side="right")) - 1)]

    def at(self, step: int = -1) -> np.ndarray:
        """The full tensor at a snapshot step; -1 is the last snapshot."""
        k = self.snapshot_steps.index(self.snapshot_step(step))
        entry = self.run._attrs["snapshots"][self.kind][self.name]
        reader = self.run._reader
        arr = reader.array(entry["array"])
        row = reader.snapshot_lists(self.kind)[self.name][1][k]
        if arr is None or arr.shape[0] <= row:
            raise reader.damaged(entry["array"], f"snapshot {k} of {self.name!r} is missing")
        if "start" not in entry:
            return np.asarray(reader.read(entry["array"], arr, (row,)))
        shape = tuple(entry["shape"])
        columns = slice(entry["start"], entry["start"] + int(np.prod(shape, dtype=np.int64)))
        return np.asarray(reader.read(entry["array"], arr, (row, columns))).reshape(shape)

    @property
    def update_ratio(self) -> UpdateRatio:
        """||dW|| / ||W|| per recorded step (needs updates=True when recording)."""
        upd = self.update.stats
        par = self.stats
        common, iu, ip = np.intersect1d(upd.steps, par.steps, return_indices=True)
        ratio = upd["l2"][iu] / np.where(par["l2"][ip] > 0, par["l2"][ip], np.nan)
        return UpdateRatio(common, ratio)


class Run:
    """A recorded run, read-only; it sees new steps while training goes on (`refresh()`).

    >>> run = weightlapse.open("runs/mnist")
    >>> run.tensors, run.steps, run.scalar("loss"), run["dense/kernel"].stats["l2"]
    """

    def __init__(self, path: str | Path | Any, storage_options: dict | None = None) -> None:
        self.path = path
        self._reader = StoreReader(path, storage_options)  # fails now, clearly, if not a run

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

    # ---- what it holds ----------------------------------------------------------------
    def names(self, kind: str = "param") -> list[str]:
        """The tensors recorded of one kind (param, grad, update, activation, attribution),
        in recording order; empty when that kind was not recorded."""
        return list(self._attrs["kinds"].get(kind, {}).get("tensors", []))

    @property
    def tensors(self) -> list[str]:
        """Names of the recorded weights (kind 'param'), in recording order."""
        return self.names("param")

    @property
    def activations(self) -> list[str]:
        """Layers whose activations of the probe inputs were recorded."""
        return self.names("activation")

    @property
    def attributions(self) -> list[str]:
        """Attribution maps recorded for the probe inputs ('saliency', 'gradcam:conv2')."""
        return self.names("attribution")

    @property
    def kinds(self) -> list[str]:
        return list(self._attrs["kinds"])

    def tensor_info(self, name: str) -> dict[str, Any]:
        """What the recorder knew of a tensor: shape, dtype, layer and axis layout."""
        return dict(self._attrs["tensors"].get(name, {}))

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._attrs["meta"])

    @property
    def format_version(self) -> int:
        return int(self._attrs["format_version"])

    @property
    def is_live(self) -> bool:
        """True while a writer records into the run: not closed, and its writer process
        still there (same host) or its heartbeat recent (see docs/format.md)."""
        return writer_is_live(self._attrs)

    def _index(self) -> np.ndarray:
        """The committed index rows, read once a commit (every history needs the steps)."""
        cached = getattr(self, "_index_cache", None)
        if cached is not None and len(cached) == self._reader.committed_steps:
            return cached
        rows = self._reader.rows(layout.INDEX_PATH)
        if rows is None:
            return np.zeros((0, len(layout.INDEX_COLUMNS)))
        if np.isnan(rows[:, 0]).any():
            raise self._reader.damaged(layout.INDEX_PATH, "some committed steps have no step")
        rows.setflags(write=False)  # shared by every caller
        self._index_cache = rows
        return rows

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

    def history(self, name: str, kind: str = "param") -> TensorHistory:
        """Everything recorded of one tensor of one kind: param, grad, update, activation
        (a layer's outputs for the probe inputs) or attribution. `run[name]` is
        `run.history(name)`."""
        return TensorHistory(self, name, kind)

    def __getitem__(self, name: str) -> TensorHistory:
        return TensorHistory(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={self._reader.committed_steps})"

    def _repr_html_(self) -> str:
        from weightlapse.notebook import run_html

        return run_html(self)

    def to_xarray(self, kind: str = "param") -> Any:
        """An xarray Dataset: stats (step, tensor, stat), hist (step, tensor, bin), and
        the scalars over step (needs xarray)."""
        from weightlapse.frames import to_xarray

        return to_xarray(self, kind)

    def to_pandas(self, kind: str = "param") -> Any:
        """A pandas DataFrame, one row per tensor and step, with its statistics."""
        from weightlapse.frames import to_pandas

        return to_pandas(self, kind)

    def log(self, *args: Any, **kwargs: Any) -> None:
        """A read-only run records nothing: say where recording happens."""
        raise WeightlapseError(
            f"{self.path!s} was opened for reading. Use weightlapse.create(path) to record "
            "a new run."
        )


def open(path: str | Path | Any, storage_options: dict | None = None) -> Run:  # noqa: A001
    """Opens a run to read; it sees new steps while training goes on (`run.refresh()`).
    A URL ("s3://bucket/runs/a") reads through fsspec, with `storage_options` or the
    environment's settings.

    >>> run = weightlapse.open("runs/a"); run["w"].stats["l2"]
    """
    return Run(path, storage_options)
