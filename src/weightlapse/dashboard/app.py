"""The dashboard's server: thin Starlette routes over `dashboard.api`.

Every file it serves is inside RUNS_DIR (only through the run reader) or the package's
static folder; a path that leaves them, encoded or through a symlink, is a 404.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from weightlapse.dashboard import api
from weightlapse.errors import WeightlapseError

STATIC = Path(__file__).parent / "static"


def plotly_js() -> Path:
    """Plotly's bundled JavaScript, from the plotly wheel (no Node build, no copy here)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _int_param(request: Request, key: str) -> int | None:
    value = request.query_params.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise api.BadRequest(f"{key} must be an integer") from None


def create_app(runs_dir: str | Path) -> Starlette:
    """The dashboard over `runs_dir`: `uvicorn` serves it (see `weightlapse view`)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise WeightlapseError(f"{root}: not a folder. Give the folder that holds your runs.")
    cache = api.RunCache(root)

    def run_of(request: Request):  # noqa: ANN202 - a Run
        return cache.get(request.path_params["run"])

    def tensor_of(request: Request) -> tuple[str, str]:
        q = request.query_params
        return q.get("tensor", ""), q.get("kind", "param")

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    async def runs(request: Request) -> Response:
        return JSONResponse(api.runs_list(cache))

    async def info(request: Request) -> Response:
        return JSONResponse(api.run_info(run_of(request), request.path_params["run"]))

    async def scalars(request: Request) -> Response:
        return JSONResponse(api.scalars(run_of(request)))

    async def stats(request: Request) -> Response:
        return JSONResponse(api.stats(run_of(request), *tensor_of(request)))

    async def histograms(request: Request) -> Response:
        return JSONResponse(api.histograms(run_of(request), *tensor_of(request)))

    async def frame(request: Request) -> Response:
        shown = api.frame(run_of(request), *tensor_of(request), _int_param(request, "step"))
        return Response(
            shown.data.tobytes(),
            media_type="application/octet-stream",
            headers={
                "X-Shape": f"{shown.data.shape[0]},{shown.data.shape[1]}",
                "X-Step": str(shown.step),
                "X-Block": f"{shown.block[0]},{shown.block[1]}",
                "Cache-Control": "no-store",
            },
        )

    async def view_png(request: Request) -> Response:
        options = {k: _int_param(request, k) for k in ("step", "sample", "minus_step")}
        png = api.view_png(
            run_of(request),
            request.path_params["view"],
            request.query_params.get("tensor"),
            {k: v for k, v in options.items() if v is not None},
        )
        return Response(png, media_type="image/png")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

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
    handlers = {HTTPException: http_error, api.NotFound: not_found, api.BadRequest: bad_request}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.runs_dir = root
    return app
