"""The dashboard's server: a Starlette app over a folder of runs.

Every file it serves is inside RUNS_DIR (only through the run reader) or the package's
static folder; a path that leaves them, encoded or through a symlink, is a 404. Views
get only what they draw: a frame (float32 bytes), a statistics series, a histogram
matrix, or a rendered PNG.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from weightlapse.errors import WeightlapseError
from weightlapse.run import Run
from weightlapse.run import open as open_run
from weightlapse.store import layout
from weightlapse.views.heatmap import as_matrix, block_reduce
from weightlapse.views.histograms import common_grid

STATIC = Path(__file__).parent / "static"
MAX_FRAME = 256  # a frame larger than this on a side is block-averaged down to it
REFRESH_SECONDS = 0.5


def plotly_js() -> Path:
    """Plotly's bundled JavaScript, from the plotly wheel (no Node build, no copy here)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class RunCache:
    """Open runs by name, re-read at most every REFRESH_SECONDS (for live runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.runs: dict[str, tuple[Run, float]] = {}

    def names(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if "zarr.json" in filenames and _is_run(here):
                found.append(here.relative_to(self.root).as_posix())
                dirnames[:] = []  # a run's own arrays are not runs
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        return sorted(found)

    def path_of(self, name: str) -> Path:
        """The run folder for a name, or 404 when the name leaves the root in any way."""
        if not name or "\x00" in name or name.startswith(("/", "\\")):
            raise HTTPException(404, "no such run")
        parts = Path(name).parts
        if any(p in ("..", ".") for p in parts):
            raise HTTPException(404, "no such run")
        candidate = (self.root / name).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise HTTPException(404, "no such run")  # a symlink out of the runs folder
        if not (candidate / "zarr.json").is_file() or not _is_run(candidate):
            raise HTTPException(404, "no such run")
        return candidate

    def get(self, name: str) -> Run:
        path = self.path_of(name)
        cached = self.runs.get(name)
        now = time.monotonic()
        if cached is None:
            run = open_run(path)
            self.runs[name] = (run, now)
            return run
        run, seen = cached
        if now - seen > REFRESH_SECONDS:
            run.refresh()
            self.runs[name] = (run, now)
        return run


def _is_run(folder: Path) -> bool:
    try:
        return b'"weightlapse"' in (folder / "zarr.json").read_bytes()[:1_000_000]
    except OSError:
        return False


def _floats(values: Any) -> list[float | None]:
    """JSON has no NaN: NaN and Inf become null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float).tolist()]


def _tensor(run: Run, request: Request) -> tuple[str, str]:
    name = request.query_params.get("tensor", "")
    kind = request.query_params.get("kind", "param")
    if kind not in run.kinds:
        raise HTTPException(404, f"no {kind!r} data in this run")
    if name not in run._kind_spec(kind)["tensors"]:
        raise HTTPException(404, f"no {kind} tensor {name!r} in this run")
    return name, kind


def _snapshot_at(run: Run, view: str, name: str, step: int) -> int:
    """The latest snapshot at or before `step` of what an image view draws (views of
    the whole history take any step)."""
    kinds = {"activations": "activation", "attributions": "attribution"}
    kind = kinds.get(view, "param")
    entry = run._attrs["snapshots"].get(kind, {}).get(name)
    return latest_at(entry["steps"], step) if entry and entry["steps"] else step


def latest_at(steps: list[int], step: int) -> int:
    """The latest of the (sorted) snapshot steps at or before `step`, else the first."""
    return steps[max(0, int(np.searchsorted(steps, step, side="right")) - 1)]


def create_app(runs_dir: str | Path) -> Starlette:
    """The dashboard over `runs_dir`: `uvicorn` serves it (see `weightlapse view`)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise WeightlapseError(f"{root}: not a folder. Give the folder that holds your runs.")
    cache = RunCache(root)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    async def runs(request: Request) -> Response:
        out = []
        for name in cache.names():
            try:
                run = cache.get(name)
            except (WeightlapseError, HTTPException):
                continue
            out.append(
                {
                    "name": name,
                    "steps": len(run.steps),
                    "live": not run._attrs["closed"],
                    "framework": run.meta.get("framework", ""),
                }
            )
        return JSONResponse(out)

    async def info(request: Request) -> Response:
        run = cache.get(request.path_params["run"])
        steps = run.steps
        layers: dict[str, list[dict[str, Any]]] = {}
        for kind in run.kinds:
            for name in run._kind_spec(kind)["tensors"]:
                meta = run._attrs["tensors"].get(name, {})
                key = meta.get("layer", "") if kind == "param" else kind
                entry = next((t for t in layers.get(key, []) if t["name"] == name), None)
                if entry is None:
                    entry = {
                        "name": name,
                        "shape": meta.get("shape", []),
                        "kinds": [],
                        "snapshots": [],
                    }
                    layers.setdefault(key, []).append(entry)
                entry["kinds"].append(kind)
                snap = run._attrs["snapshots"].get(kind, {}).get(name)
                if snap and not entry["snapshots"]:
                    entry["snapshots"] = snap["steps"]
        return JSONResponse(
            {
                "name": request.path_params["run"],
                "steps": steps.tolist(),
                "epochs": run.epochs.tolist(),
                "scalars": run.scalar_names,
                "live": not run._attrs["closed"],
                "framework": run.meta.get("framework", ""),
                "layers": [{"name": k, "tensors": v} for k, v in layers.items()],
            }
        )

    async def scalars(request: Request) -> Response:
        run = cache.get(request.path_params["run"])
        return JSONResponse(
            {"steps": run.steps.tolist(), "series": {k: _floats(v) for k, v in run.scalars.items()}}
        )

    async def stats(request: Request) -> Response:
        run = cache.get(request.path_params["run"])
        name, kind = _tensor(run, request)
        table = run.history(name, kind).stats
        return JSONResponse(
            {
                "steps": table.steps.tolist(),
                "stats": {s: _floats(table[s]) for s in layout.STAT_NAMES},
            }
        )

    async def histograms(request: Request) -> Response:
        run = cache.get(request.path_params["run"])
        name, kind = _tensor(run, request)
        hist = run.history(name, kind).histograms
        matrix, grid = common_grid(hist, 64)
        return JSONResponse(
            {
                "steps": hist.steps.tolist(),
                "values": _floats((grid[:-1] + grid[1:]) / 2),
                "counts": matrix.round(3).tolist(),
            }
        )

    async def frame(request: Request) -> Response:
        run = cache.get(request.path_params["run"])
        name, kind = _tensor(run, request)
        history = run.history(name, kind)
        steps = history.snapshot_steps
        if not steps:
            raise HTTPException(404, f"{name!r} has no snapshots")
        try:
            wanted = int(request.query_params.get("step", steps[-1]))
        except ValueError:
            raise HTTPException(400, "step must be an integer") from None
        shown_step = latest_at(steps, wanted)
        matrix = as_matrix(history.at(shown_step))
        shown, block = block_reduce(matrix, MAX_FRAME, "mean")
        data = np.ascontiguousarray(shown, dtype="<f4")
        return Response(
            data.tobytes(),
            media_type="application/octet-stream",
            headers={
                "X-Shape": f"{data.shape[0]},{data.shape[1]}",
                "X-Step": str(shown_step),
                "X-Block": f"{block[0]},{block[1]}",
                "Cache-Control": "no-store",
            },
        )

    async def view_png(request: Request) -> Response:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        from weightlapse.views.registry import render

        run = cache.get(request.path_params["run"])
        q = request.query_params
        options: dict[str, Any] = {}
        for key in ("step", "sample", "minus_step"):
            if key in q:
                try:
                    options[key] = int(q[key])
                except ValueError:
                    raise HTTPException(400, f"{key} must be an integer") from None
        view_name = request.path_params["view"]
        try:
            if "step" in options and q.get("tensor"):
                options["step"] = _snapshot_at(run, view_name, q["tensor"], options["step"])
            fig = render(run, view_name, q.get("tensor"), **options)
        except WeightlapseError as exc:
            raise HTTPException(404, str(exc)) from None
        buffer = io.BytesIO()
        fig.set_dpi(80)
        FigureCanvasAgg(fig).print_png(buffer)
        return Response(buffer.getvalue(), media_type="image/png")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [
        Route("/", index),
        Route("/vendor/plotly.min.js", plotly),
        Route("/api/runs", runs),
        Route("/api/run/info/{run:path}", info),
        Route("/api/run/scalars/{run:path}", scalars),
        Route("/api/run/stats/{run:path}", stats),
        Route("/api/run/histograms/{run:path}", histograms),
        Route("/api/run/frame/{run:path}", frame),
        Route("/api/run/view/{view}/{run:path}", view_png),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.runs_dir = root
    return app
