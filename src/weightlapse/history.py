"""What was recorded of one tensor, read from a run: its statistics, histograms, probe
trajectories and snapshots (`run["w"]`, `run.history(name, kind)`), and the small
containers they come in. Reads through the Run's reader; knows nothing of recording."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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

    def __init__(self, run: Any, name: str, kind: str = "param") -> None:
        # run: the weightlapse.run.Run it reads (not imported: run.py imports this module)
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
        return self.sampled_histograms()

    def sampled_histograms(self, blocks: int | None = None) -> Histograms:
        """The histograms; with `blocks`, only those in at most that many evenly spread
        blocks of steps (the stored chunks, first and last always among them), so a view
        over a long run reads the same amount at any length (the dashboard's)."""
        reader = self.run._reader
        at = None if blocks is None else reader.spread_rows(layout.hist_path(self.kind), blocks)
        table = reader.rows(layout.stats_path(self.kind), (self._row, slice(None)), at)
        counts = reader.rows(layout.hist_path(self.kind), (self._row, slice(None)), at)
        steps = self.run.steps if at is None else self.run.steps[at]
        # Rows where the tensor was recorded with a histogram: on steps the histogram
        # schedule skips (and for a tensor with nothing finite) the counts are all zero.
        keep = self._present(table) & (counts.sum(axis=1) > 0)
        table, counts = table[keep], counts[keep].astype(np.int64)
        lo = table[:, STAT_NAMES.index("min")]
        hi = table[:, STAT_NAMES.index("max")]
        frac = np.linspace(0.0, 1.0, counts.shape[1] + 1)
        edges = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        return Histograms(steps[keep], counts, edges)

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
