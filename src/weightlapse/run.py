"""Run: a recorded run, read-only (also while it grows). `weightlapse.open` gives one;
`weightlapse.create` gives a `RunWriter` (weightlapse.run_writer) to record into.

run = weightlapse.open("runs/neuron")
run["w"].trajectory(), run["w"].stats["l2"], run["w"].at(-1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.errors import UnknownNameError, WeightlapseError
from weightlapse.history import TensorHistory
from weightlapse.store import layout
from weightlapse.store.reader import StoreReader, writer_is_live

# Chunks of steps the overview reads at most, of every tensor (see stat_of_every_tensor):
# over bench/scale.py's 1,000 tensors, 16 of them took 3.1 s to read, 64 11.3 s.
SPREAD_BLOCKS = 16


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

    def stat_of_every_tensor(
        self, stat: str, kind: str = "param", columns: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, recorded): `stat` of every tensor of `kind` (rows, in
        `names(kind)` order) at each step (columns), in one read, and where each tensor
        was recorded (one may skip steps: no gradient at step 0). With `columns`, a run
        of more steps gives at most that many, evenly spread over the steps of at most
        SPREAD_BLOCKS evenly spread chunks of steps: a view over a long run (the
        overview) reads the same amount at any length."""
        if stat not in layout.STAT_NAMES:
            raise UnknownNameError(stat, layout.STAT_NAMES, what="statistic")
        names, path, n = self.names(kind), layout.stats_path(kind), len(self.steps)
        at = None
        if columns is not None and n > columns:
            pool = self._reader.spread_rows(path, SPREAD_BLOCKS)
            pool = np.arange(n) if pool is None else pool
            at = pool[np.unique(np.linspace(0, len(pool) - 1, columns).round().astype(int))]
        table = self._reader.rows(path, (slice(None), slice(None)), at)
        steps = self.steps if at is None else self.steps[at]
        if table is None or not names:
            return steps, np.zeros((0, len(steps))), np.zeros((0, len(steps)), dtype=bool)
        table = table[:, : len(names)]
        recorded = ~np.all(np.isnan(table), axis=2)
        values = table[:, :, layout.STAT_NAMES.index(stat)]
        return steps, np.ascontiguousarray(values.T), np.ascontiguousarray(recorded.T)

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
