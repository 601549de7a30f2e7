"""The dashboard's server: thin Starlette routes over `dashboard.api`.

Every file it serves is inside RUNS_DIR (read through a store that refuses anything
resolving outside it, symlinks included) or the package's static folder. Requests must
name a host the server was bound to (no DNS rebinding); bound beyond this machine, they
must carry the token printed at start. Blocking work (Zarr reads, matplotlib) runs off
the event loop: reads in Starlette's thread pool, renders in a pool of their own, so a
frame never waits behind a render.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from weightlapse.dashboard import api
from weightlapse.errors import WeightlapseError
from weightlapse.store.confined import OutsideRunsFolder
from weightlapse.store.location import RunsRoot

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
RENDER_THREADS = 2  # matplotlib renders at once; the other requests never queue behind them
TOKEN_COOKIE = "weightlapse_token"
EVENT_SECONDS = 0.5  # how often the server looks for new steps for the page
FAVICON = (  # the page's icon: a weight matrix, so the browser asks for nothing missing
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><rect width="4" height="4" '
    b'fill="#fff"/><rect x="0" y="0" width="2" height="2" fill="#d00"/><rect x="2" y="2" '
    b'width="2" height="2" fill="#00d"/></svg>'
)


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


class TokenMiddleware:
    """Every request carries the token: in the URL once (`?token=`), then as a cookie."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            response = PlainTextResponse(
                "This dashboard needs its token: open the address it printed at start.", 403
            )
            await response(scope, receive, send)
            return

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and "token" in request.query_params:
                cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def allowed_hosts(host: str) -> list[str]:
    """The Host headers to accept: the loopback names, and what --host says."""
    if host in ("0.0.0.0", "::"):
        return ["*"]  # any address of this machine: the token guards it instead
    return sorted({*LOOPBACK, host})


def create_app(
    runs_dir: str | Path, *, host: str = "127.0.0.1", token: str | None = None
) -> Starlette:
    """The dashboard over `runs_dir`: `uvicorn` serves it (see `weightlapse view`)."""
    if not RunsRoot(runs_dir).exists():
        raise WeightlapseError(
            f"{runs_dir}: not a folder. Give the folder that holds your runs (or an "
            "object-store URL: s3://bucket/runs)."
        )
    cache = api.RunCache(runs_dir)
    renders = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="weightlapse-render")
    # The views (and matplotlib) load now, with the server: the first page would
    # otherwise wait 0.6 s for them (the run info lists each tensor's views).
    import weightlapse.views.registry  # noqa: F401

    def run_of(request: Request):  # noqa: ANN202 - a Run
        return cache.get(request.path_params["run"])

    def tensor_of(request: Request) -> tuple[str, str]:
        q = request.query_params
        return q.get("tensor", ""), q.get("kind", "param")

    # Plain functions: Starlette runs them in its thread pool, off the event loop.
    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    def runs(request: Request) -> Response:
        return JSONResponse(api.runs_list(cache))

    def info(request: Request) -> Response:
        return JSONResponse(api.run_info(run_of(request), request.path_params["run"]))

    def scalars(request: Request) -> Response:
        return JSONResponse(api.scalars(run_of(request)))

    def stats(request: Request) -> Response:
        return JSONResponse(api.stats(run_of(request), *tensor_of(request)))

    def histograms(request: Request) -> Response:
        return JSONResponse(api.histograms(run_of(request), *tensor_of(request)))

    def frame(request: Request) -> Response:
        shown = api.frame(
            run_of(request),
            *tensor_of(request),
            _int_param(request, "step"),
            request.query_params.get("view") or None,
        )
        return Response(
            shown.values.tobytes() + shown.gaps.tobytes(),
            media_type="application/octet-stream",
            headers={
                "X-Shape": ",".join(map(str, shown.values.shape)),
                "X-Step": str(shown.step),
                "X-View": shown.view,
                "X-Range": f"{shown.lo!r},{shown.hi!r}",
                "X-Shared": "1" if shown.shared else "0",
                "X-Title": quote(shown.title),
                "Cache-Control": "no-store",
            },
        )

    async def events(request: Request) -> Response:
        """Server-sent events: the runs and the open run's steps, when they change."""
        name = request.query_params.get("run") or None

        async def stream() -> Any:
            last = None
            while not await request.is_disconnected():
                now = await asyncio.to_thread(api.changes, cache, name)
                if now != last:
                    last = now
                    yield f"event: change\ndata: {json.dumps(now)}\n\n"
                else:
                    yield ": still here\n\n"  # a comment: finds a closed connection
                await asyncio.sleep(EVENT_SECONDS)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def favicon(request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml")

    async def view_png(request: Request) -> Response:
        options = {k: _int_param(request, k) for k in ("step", "sample", "minus_step")}
        run = await asyncio.to_thread(run_of, request)
        png = await asyncio.get_running_loop().run_in_executor(
            renders,
            api.view_png,
            run,
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

    async def refused(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"refused: {exc}"}, status_code=404)

    async def damaged(request: Request, exc: Exception) -> Response:
        # A damaged run (or any error of ours): one line for the page's error panel.
        return JSONResponse({"error": str(exc), "damaged": True}, status_code=422)

    routes = [
        Route("/", index),
        Route("/vendor/plotly.min.js", plotly),
        Route("/favicon.ico", favicon),
        Route("/api/events", events),
        Route("/api/runs", runs),
        Route("/api/run/info/{run:path}", info),
        Route("/api/run/scalars/{run:path}", scalars),
        Route("/api/run/stats/{run:path}", stats),
        Route("/api/run/histograms/{run:path}", histograms),
        Route("/api/run/frame/{run:path}", frame),
        Route("/api/run/view/{view}/{run:path}", view_png),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {
        HTTPException: http_error,
        api.NotFound: not_found,
        api.BadRequest: bad_request,
        OutsideRunsFolder: refused,
        WeightlapseError: damaged,
    }
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))]
    if token is not None:
        middleware.append(Middleware(TokenMiddleware, token=token))
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
    app.state.runs_dir = cache.root
    return app
