"""What the dashboard serves, as plain functions of a run (testable without HTTP): the
routes in app.py only parse a request and call these. A `NotFound` becomes a 404."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weightlapse.catalog import is_run
from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.store.confined import ConfinedStore
from weightlapse.store.layout import STAT_NAMES
from weightlapse.store.location import RunsRoot

MAX_MOSAIC = 2048  # a frame's pixels a side, at most
REFRESH_SECONDS = 0.5


class NotFound(Exception):
    """Nothing to serve under that name: the message says what was missing."""


class BadRequest(Exception):
    """A request whose parameters are not what they should be."""


class RunCache:
    """Open runs by name, re-read at most every REFRESH_SECONDS (for live runs). Every
    name resolves inside the runs folder, or is not found; runs are opened through a
    store that serves no file outside it (symlinks included). At most MAX_OPEN runs are
    kept, by their canonical name (aliases like 'a//' share one entry). Thread-safe."""

    MAX_OPEN = 64
    MAX_NAME = 1024

    def __init__(self, root: Path | str) -> None:
        self.place = RunsRoot(root)  # a folder, or an object-store prefix (s3://...)
        self.root = root if self.place.remote else Path(root).resolve()
        self.runs: OrderedDict[str, tuple[Run, float]] = OrderedDict()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return self.place.find_runs()

    def path_of(self, name: str) -> Any:
        """The run folder for a name, or NotFound when the name leaves the root in any way."""
        if not name or len(name) > self.MAX_NAME or "\x00" in name or name.startswith(("/", "\\")):
            raise NotFound("no such run")
        parts = Path(name).parts
        if any(p in ("..", ".") for p in parts):
            raise NotFound("no such run")
        if self.place.remote:  # keys under the prefix: no '..', '\\' or empty part leaves it
            name = "/".join(parts)
            if "\\" in name or not self.place.is_run(name):
                raise NotFound("no such run")
            return self.place.run_path(name)
        try:
            candidate = (self.root / name).resolve()
            if candidate != self.root and self.root not in candidate.parents:
                raise NotFound("no such run")  # a symlink out of the runs folder
            if not (candidate / "zarr.json").is_file() or not is_run(candidate):
                raise NotFound("no such run")
        except OSError:  # a name the file system cannot even look up
            raise NotFound("no such run") from None
        return candidate

    def get(self, name: str) -> Run:
        path = self.path_of(name)
        key = (
            "/".join(Path(name).parts)
            if self.place.remote
            else path.relative_to(self.root).as_posix()
        )
        now = time.monotonic()
        with self._lock:
            cached = self.runs.get(key)
            if cached is not None:
                self.runs.move_to_end(key)
        if cached is None:
            run = open_run(path if self.place.remote else ConfinedStore(path, self.root))
        else:
            run, seen = cached
            if now - seen <= REFRESH_SECONDS:
                return run
            run.refresh()
        with self._lock:
            self.runs[key] = (run, now)
            self.runs.move_to_end(key)
            while len(self.runs) > self.MAX_OPEN:
                self.runs.popitem(last=False)
        return run


def json_floats(values: Any) -> list[float | None]:
    """JSON has no NaN: NaN and Inf become null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float).tolist()]


def checked_tensor(run: Run, name: str, kind: str) -> tuple[str, str]:
    if kind not in run.kinds:
        raise NotFound(f"no {kind!r} data in this run")
    if name not in run.names(kind):
        raise NotFound(f"no {kind} tensor {name!r} in this run")
    return name, kind


def runs_list(cache: RunCache) -> list[dict[str, Any]]:
    out = []
    for name in cache.names():
        try:
            run = cache.get(name)
            entry = {
                "name": name,
                "steps": len(run.steps),
                "live": run.is_live,
                "framework": run.meta.get("framework", ""),
            }
        except NotFound:
            continue
        except WeightlapseError as exc:  # listed, so that choosing it says what is wrong
            entry = {"name": name, "steps": 0, "live": False, "framework": "", "error": str(exc)}
        out.append(entry)
    return out


def run_info(run: Run, name: str) -> dict[str, Any]:
    """Steps, scalars and the tensors grouped by layer (other kinds by kind), each with
    the views that fit it, the best first."""
    from weightlapse.views.registry import views_for

    layers: dict[str, list[dict[str, Any]]] = {}
    for kind in run.kinds:
        for tensor in run.names(kind):
            meta = run.tensor_info(tensor)
            key = meta.get("layer", "") if kind == "param" else kind
            entry = next((t for t in layers.get(key, []) if t["name"] == tensor), None)
            if entry is None:
                entry = {
                    "name": tensor,
                    "shape": meta.get("shape", []),
                    "kinds": [],
                    "snapshots": [],
                    "views": views_for(run, tensor) if kind == "param" else [],
                }
                layers.setdefault(key, []).append(entry)
            entry["kinds"].append(kind)
            if not entry["snapshots"]:
                entry["snapshots"] = run.history(tensor, kind).snapshot_steps
    return {
        "name": name,
        "steps": run.steps.tolist(),
        "epochs": run.epochs.tolist(),
        "scalars": run.scalar_names,
        "live": run.is_live,
        "framework": run.meta.get("framework", ""),
        "layers": [{"name": k, "tensors": v} for k, v in layers.items()],
    }


def changes(cache: RunCache, name: str | None) -> dict[str, Any]:
    """What the page watches, for server-sent events: the runs (name, steps, live) and,
    for the open run, its committed steps. An event goes out when this changes."""
    listed = [{k: r.get(k) for k in ("name", "steps", "live")} for r in runs_list(cache)]
    steps = None
    if name:
        try:
            steps = len(cache.get(name).steps)
        except (NotFound, WeightlapseError):
            steps = None
    return {"runs": listed, "run": name, "steps": steps}


# A chart over every step gets at most this many buckets of steps; each bucket sends the
# rows holding each series' least and greatest value (and its first NaN or Inf), so no
# spike is lost, and 100,000 steps cost what 4,000 do.
MAX_BUCKETS = 2000
MAX_HIST_COLUMNS = 500  # histograms over time: evenly chosen histogram steps
# ... from at most this many evenly spread blocks of steps (256 steps each): what a long
# run's histograms over time read does not grow with its steps (100,000 steps: 391 blocks)
MAX_HIST_BLOCKS = 64


def extreme_rows(table: np.ndarray, buckets: int | None = None) -> np.ndarray:
    """Row indices of `table` (steps x series) to draw: all of them when few; else, per
    bucket of steps, the rows of each series' minimum and maximum and its first
    non-finite value, and the first and last row."""
    n, buckets = len(table), buckets or MAX_BUCKETS
    if n <= 2 * buckets:
        return np.arange(n)
    k = -(-n // buckets)
    padded = np.full((buckets * k, table.shape[1]), np.nan)
    padded[:n] = table
    v = padded.reshape(buckets, k, -1)
    finite = np.isfinite(v)
    base = (np.arange(buckets) * k)[:, None]
    picks = [
        base + np.argmin(np.where(finite, v, np.inf), axis=1),
        base + np.argmax(np.where(finite, v, -np.inf), axis=1),
    ]
    bad = ~finite & (np.arange(buckets * k).reshape(buckets, k, 1) < n)
    picks.append(np.where(bad.any(axis=1), base + np.argmax(bad, axis=1), 0))
    rows = np.unique(np.concatenate([p.reshape(-1) for p in picks] + [np.array([0, n - 1])]))
    return rows[rows < n]


def scalars(run: Run) -> dict[str, Any]:
    series = run.scalars
    steps = run.steps
    rows = extreme_rows(np.stack(list(series.values()), 1)) if series else np.arange(len(steps))
    return {
        "steps": steps[rows].tolist(),
        "series": {k: json_floats(v[rows]) for k, v in series.items()},
    }


def stats(run: Run, name: str, kind: str) -> dict[str, Any]:
    table = run.history(*checked_tensor(run, name, kind)).stats
    rows = extreme_rows(table.table)
    return {
        "steps": table.steps[rows].tolist(),
        "stats": {s: json_floats(table[s][rows]) for s in STAT_NAMES},
    }


def histograms(run: Run, name: str, kind: str) -> dict[str, Any]:
    from weightlapse.history import Histograms
    from weightlapse.views.histograms import common_grid

    hist = run.history(*checked_tensor(run, name, kind)).sampled_histograms(MAX_HIST_BLOCKS)
    if len(hist.steps) > MAX_HIST_COLUMNS:
        keep = np.unique(np.linspace(0, len(hist.steps) - 1, MAX_HIST_COLUMNS).round().astype(int))
        hist = Histograms(hist.steps[keep], hist.counts[keep], hist.edges[keep])
    matrix, grid = common_grid(hist, 64)
    return {
        "steps": hist.steps.tolist(),
        "values": json_floats((grid[:-1] + grid[1:]) / 2),
        "counts": matrix.round(3).tolist(),
    }


@dataclass(frozen=True)
class Frame:
    """A snapshot as the page draws it: the semantic view's mosaic (filter grid, per-unit
    images, matrix) as float32 values, a gap mask, and the colour range."""

    values: np.ndarray  # (H, W) or (H, W, 3) RGB in [0, 1]
    gaps: np.ndarray  # (H, W) uint8: 1 between cells
    step: int
    view: str
    lo: float
    hi: float
    shared: bool
    title: str


def image_view(run: Run, name: str, view: str | None = None) -> str:
    """The picture of a weight tensor the page draws: `view` if it fits, else the best."""
    from weightlapse.views.registry import image_views_for

    fitting = image_views_for(run, name)
    if not fitting:
        raise NotFound(f"{name!r} has no snapshots to draw")
    if view is None:
        return fitting[0]
    if view not in fitting:
        raise NotFound(f"the {view!r} view does not fit {name!r}; these do: {', '.join(fitting)}")
    return view


def frame(run: Run, name: str, kind: str, step: int | None, view: str | None = None) -> Frame:
    """The semantic view of the latest snapshot at or before `step` (default: the last)."""
    from weightlapse.views.pixels import mosaic_of
    from weightlapse.views.registry import VIEWS

    history = run.history(*checked_tensor(run, name, kind))
    steps = history.snapshot_steps
    if not steps:
        raise NotFound(f"{name!r} has no snapshots")
    shown_step = history.latest_snapshot_at(steps[-1] if step is None else step)
    chosen = image_view(run, name, view) if kind == "param" else "heatmap"
    try:
        mosaic = mosaic_of(VIEWS[chosen].panels(run, name, step=shown_step))
    except WeightlapseError as exc:
        raise NotFound(str(exc)) from None
    values, gaps = _bounded(mosaic.values, mosaic.gaps)
    return Frame(
        np.ascontiguousarray(values, dtype="<f4"),
        np.ascontiguousarray(gaps, dtype=np.uint8),
        shown_step,
        chosen,
        mosaic.lo,
        mosaic.hi,
        mosaic.shared,
        mosaic.title,
    )


def _bounded(values: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_MOSAIC pixels a side: every k-th row and column (a mean would smear
    cells into the gaps between them)."""
    k = max(1, -(-max(values.shape[:2]) // MAX_MOSAIC))
    return values[::k, ::k], gaps[::k, ::k]


def view_png(run: Run, view: str, tensor: str | None, options: dict[str, int]) -> bytes:
    """A registry view drawn as a PNG (image views snap `step` to a snapshot)."""
    from weightlapse.views.registry import render_png

    try:
        return render_png(run, view, tensor, **options)
    except WeightlapseError as exc:
        raise NotFound(str(exc)) from None
