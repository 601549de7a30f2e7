"""What runs a folder holds and what each run holds, as plain data: what `weightlapse ls`
and `info` print (as tables or `--json`), and what the dashboard lists."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.store.location import RunsRoot


def is_run(folder: Path) -> bool:
    return RunsRoot(folder).is_run("")


def find_runs(root: str | Path) -> list[str]:
    """The runs under `root` (a folder or an object-store URL), as names relative to it
    (a run's own arrays are not runs)."""
    return RunsRoot(root).find_runs()


def size_on_disk(path: str | Path) -> int:
    return RunsRoot(path).size("")


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run_summary(run: Run, path: Path | None = None) -> dict[str, Any]:
    """Steps, scalars (each one's last value), liveness and every tensor of a run."""
    steps = run.steps
    last_scalars = {}
    for name, values in run.scalars.items():
        finite = [v for v in values.tolist() if math.isfinite(v)]
        last_scalars[name] = finite[-1] if finite else None
    tensors = []
    for name in run.tensors:
        history = run[name]
        l2 = history.stats["l2"]
        tensors.append(
            {
                "name": name,
                "shape": list(history.shape),
                "dtype": history.dtype,
                "layer": history.layer,
                "snapshots": len(history.snapshot_steps),
                "last_l2": _number(l2[-1]) if len(l2) else None,
            }
        )
    return {
        "path": str(path if path is not None else run.path),
        "format_version": run.format_version,
        "framework": run.meta.get("framework", ""),
        "kinds": run.kinds,
        "steps": len(steps),
        "first_step": int(steps[0]) if len(steps) else None,
        "last_step": int(steps[-1]) if len(steps) else None,
        "live": run.is_live,
        "scalars": last_scalars,
        "size_bytes": size_on_disk(path) if path is not None else None,
        "tensors": tensors,
    }


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run under `root`: steps, size, live or ended, last loss; a damaged run is
    listed with its one-line problem."""
    out = []
    place = RunsRoot(root)
    for name in place.find_runs():
        try:
            path = place.run_path(name)
            summary = run_summary(open_run(path), path)
            summary.pop("tensors")
            out.append({"name": name, **summary})
        except WeightlapseError as exc:
            out.append({"name": name, "error": str(exc)})
    return out
