"""The dashboard's three speed targets on a recorded run of 1,000 steps and 50 tensors:
first useful paint (< 1 s), one frame on the server (< 50 ms), playback in the browser
(>= 20 frames/s). Needs Debian's chromium and the playwright package.

    python bench/dashboard.py [--steps 1000] [--tensors 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

import weightlapse
from weightlapse.dashboard.app import create_app


def make_run(path: Path, steps: int, tensors: int) -> None:
    rng = np.random.default_rng(0)
    weights = {
        f"layer{i:02d}/kernel": rng.normal(size=(128, 128)).astype(np.float32)
        for i in range(tensors)
    }
    with weightlapse.create(path, snapshots=10, snapshot_budget=None) as run:
        for step in range(steps):
            for w in weights.values():
                w += rng.normal(0, 0.01, size=w.shape).astype(np.float32)
            run.log(step, weights, loss=1.0 / (step + 1))


def under_load(base: str, tensors: int, steps: int, n: int = 200) -> dict[str, list[float]]:
    """`n` requests at once, mixed like a page in use: frames, statistics, run lists and
    rendered views; the latency of each, by kind."""
    import asyncio

    import httpx

    kinds = ["frame", "stats", "runs", "view"]

    def url(i: int) -> str:
        tensor = f"layer{i % tensors:02d}/kernel"
        kind = kinds[i % len(kinds)]
        if kind == "frame":
            return f"/api/run/frame/big?tensor={tensor}&step={(i * 37) % steps}"
        if kind == "stats":
            return f"/api/run/stats/big?tensor={tensor}"
        if kind == "runs":
            return "/api/runs"
        return f"/api/run/view/heatmap/big?tensor={tensor}&step={(i * 10) % steps}"

    async def one(client: httpx.AsyncClient, i: int) -> tuple[str, float]:
        began = time.perf_counter()
        response = await client.get(url(i))
        response.raise_for_status()
        return kinds[i % len(kinds)], (time.perf_counter() - began) * 1e3

    async def all_at_once() -> list[tuple[str, float]]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    out: dict[str, list[float]] = {k: [] for k in kinds}
    for kind, ms in asyncio.run(all_at_once()):
        out[kind].append(ms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--tensors", type=int, default=50)
    args = parser.parse_args()
    import uvicorn
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        make_run(root / "big", args.steps, args.tensors)
        print(
            f"recorded {args.steps} steps x {args.tensors} tensors of 128x128 "
            f"(snapshots every 10 steps) in {time.perf_counter() - start:.1f} s"
        )
        server = uvicorn.Server(
            uvicorn.Config(create_app(root), host="127.0.0.1", port=8766, log_level="error")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = "http://127.0.0.1:8766"
        frame_ms = []
        for i in range(100):
            step = (i * 37) % args.steps
            began = time.perf_counter()
            with urllib.request.urlopen(
                f"{base}/api/run/frame/big?tensor=layer{i % args.tensors:02d}/kernel&step={step}"
            ) as response:
                response.read()
            frame_ms.append((time.perf_counter() - began) * 1e3)
        loaded_ms = under_load(base, args.tensors, args.steps)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=["--no-sandbox", "--disable-gpu"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            began = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_function("() => window.__wl && window.__wl.drawn > 0", timeout=30000)
            first_paint = time.perf_counter() - began
            # playback is measured once the charts have loaded too (steady state)
            page.wait_for_function(
                "() => window.Plotly && document.querySelector('#hist .main-svg')", timeout=30000
            )
            loaded = time.perf_counter() - began
            page.evaluate("""() => { const s = document.getElementById('slider');
                s.value = '0'; s.dispatchEvent(new Event('input')); }""")
            page.wait_for_function("() => window.__wl.lastStep === 0")
            drawn = page.evaluate("() => window.__wl.drawn")
            began = time.perf_counter()
            page.locator("#play").click()
            time.sleep(3.0)
            frames = page.evaluate("() => window.__wl.drawn") - drawn
            fps = frames / (time.perf_counter() - began)
            browser.close()
        server.should_exit = True
    print(
        f"first useful paint: {first_paint * 1e3:.0f} ms (target < 1000 ms); "
        f"charts loaded at {loaded * 1e3:.0f} ms"
    )
    print(
        f"one frame on the server: median {statistics.median(frame_ms):.1f} ms, "
        f"95th percentile {np.percentile(frame_ms, 95):.1f} ms (target < 50 ms)"
    )
    print(f"playback: {fps:.1f} frames/s (target >= 20)")
    print("200 concurrent mixed requests (latency, ms):")
    print("| request | count | p50 | p95 |")
    print("| --- | --- | --- | --- |")
    for kind, values in loaded_ms.items():
        p50, p95 = np.percentile(values, [50, 95])
        print(f"| {kind} | {len(values)} | {p50:.0f} | {p95:.0f} |")


if __name__ == "__main__":
    main()
