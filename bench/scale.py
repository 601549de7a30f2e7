"""A run bigger than memory, generated, then read the ways a user reads it:

    python bench/scale.py [--steps 100000] [--tensors 1000] [--out /tmp/weightlapse-scale]

Generates (once; reused when it is there) a run of `--steps` steps and `--tensors`
tensors in the run format: the recorder registers the tensors at step 0 (so names,
shapes, probes and attributes are what a recorder writes), then the per-step arrays
grow a chunk (256 steps) at a time with smooth synthetic statistics, a histogram every
10th step and 4 probes a tensor (what `max_probes=4` records), and a loss. Then prints,
each the best of 3 in a fresh process (the page cache warm, as when a user reopens):
`open`, one tensor's statistics over every step, the dashboard's first paint (the API
calls the page makes before it draws: run list, run info, then side by side as the page
sends them the scalars, the first tensor's statistics and its histograms over time; the
server started, as `weightlapse view` starts it before the browser opens), one frame
(a snapshot view at a step) and the overview (a statistic of every tensor over steps,
read and drawn).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

GENERATE = """
import sys, numpy as np, zarr, weightlapse
from weightlapse.store import layout
path, steps, tensors = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
shapes = [(32, 16) if t % 2 == 0 else (16,) for t in range(tensors)]
arrays = {f"layer{t // 2}/{'w' if t % 2 == 0 else 'b'}": rng.normal(size=s).astype(np.float32)
          for t, s in enumerate(shapes)}
with weightlapse.create(path, max_probes=4, snapshots="log", overwrite=True) as run:
    run.log(0, arrays, loss=2.5)
group = zarr.open_group(path, mode="r+")
attrs = dict(group.attrs[layout.ROOT_ATTR])
block = layout.CHUNK_STEPS
bins = attrs["bins"]
n_probes = sum(attrs["kinds"]["param"]["probe_counts"])
index, scalars = group["index"], group["scalars"]
stats, hist, probes = group["param/stats"], group["param/hist"], group["param/probes"]
for array in (index, scalars, stats, hist, probes):
    array.resize((steps, *array.shape[1:]))
phase = rng.uniform(0, 6.28, size=tensors)
for lo in range(0, steps, block):
    hi = min(steps, lo + block)
    s = np.arange(lo, hi, dtype=np.float64)
    index[lo:hi] = np.stack([s, s // 1000, s % 1000, 1.7e9 + s * 0.01], 1)
    scalars[lo:hi, 0] = 2.5 * np.exp(-s / 20000) + 0.01 * np.sin(s)
    wave = np.sin(s[:, None] / 3000 + phase[None, :])
    table = np.empty((hi - lo, tensors, 9))
    table[..., 0] = -1 - 0.1 * wave
    table[..., 1] = 1 + 0.1 * wave
    table[..., 2] = 0.01 * wave
    table[..., 3] = 0.5 + 0.05 * wave
    table[..., 4] = 10 + wave
    table[..., 5] = 0.4 + 0.04 * wave
    table[..., 6:] = 0
    stats[lo:hi] = table
    counts = np.zeros((hi - lo, tensors, bins), np.uint32)
    every = (s % 10 == 0)
    counts[every] = rng.poisson(8, size=(int(every.sum()), tensors, bins)).astype(np.uint32)
    hist[lo:hi] = counts
    probes[lo:hi] = np.sin(s[:, None] / 500 + np.arange(n_probes)[None, :])
attrs["committed_steps"] = steps
group.attrs[layout.ROOT_ATTR] = attrs
"""

MEASURE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np, weightlapse
path, what = sys.argv[1], sys.argv[2]
imported = time.perf_counter()
out = {}
if what == "open":
    t = time.perf_counter(); run = weightlapse.open(path); out["open"] = time.perf_counter() - t
elif what == "stats":
    run = weightlapse.open(path)
    name = run.tensors[len(run.tensors) // 2]
    t = time.perf_counter(); table = run[name].stats; out["stats"] = time.perf_counter() - t
    assert len(table.steps) == len(run.steps)
elif what == "overview":
    run = weightlapse.open(path)
    t = time.perf_counter(); weightlapse.overview(run); out["overview"] = time.perf_counter() - t
elif what == "dashboard":
    from pathlib import Path
    from starlette.testclient import TestClient
    from weightlapse.dashboard.app import create_app
    root = str(Path(path).parent)
    name = Path(path).name
    client = TestClient(create_app(root), base_url="http://127.0.0.1:8050")
    import threading
    t = time.perf_counter()
    assert client.get("/api/runs").status_code == 200
    info = client.get(f"/api/run/info/{name}").json()
    first = info["layers"][0]["tensors"][0]["name"]
    # as the page does: the histograms and the scalars on their way while the statistics come
    side = [threading.Thread(target=client.get, args=(u,), kwargs={"params": p}) for u, p in (
        (f"/api/run/histograms/{name}", {"tensor": first}), (f"/api/run/scalars/{name}", None))]
    for thread in side:
        thread.start()
    client.get(f"/api/run/stats/{name}", params={"tensor": first})
    for thread in side:
        thread.join()
    out["first_paint"] = time.perf_counter() - t
    t = time.perf_counter()
    r = client.get(f"/api/run/frame/{name}", params={"tensor": first, "step": 0})
    out["frame"] = time.perf_counter() - t
    out["frame_status"] = r.status_code
print(json.dumps(out))
"""


def measure(path: Path, what: str) -> dict:
    best: dict = {}
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path), what], capture_output=True, text=True
        )
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        got = json.loads(proc.stdout)
        for k, v in got.items():
            best[k] = min(best.get(k, v), v) if isinstance(v, float) else v
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--tensors", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/weightlapse-scale")
    args = parser.parse_args()
    path = Path(args.out) / f"run-{args.steps}x{args.tensors}"
    if (
        not (path / "zarr.json").exists()
        or b'"closed": true' not in (path / "zarr.json").read_bytes()
    ):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", GENERATE, str(path), str(args.steps), str(args.tensors)],
            check=True,
        )
        print(f"generated {path} in {time.perf_counter() - began:.0f} s")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"{args.steps:,} steps x {args.tensors:,} tensors, {size / 2**30:.2f} GiB on disk")
    figures = {**measure(path, "open"), **measure(path, "stats"), **measure(path, "dashboard")}
    figures.update(measure(path, "overview"))
    print(
        f"open {figures['open'] * 1e3:.0f} ms (target < 1000); one tensor's statistics, "
        f"every step: {figures['stats'] * 1e3:.0f} ms (target < 200); dashboard first "
        f"paint {figures['first_paint'] * 1e3:.0f} ms (target < 1000); a frame "
        f"{figures['frame'] * 1e3:.0f} ms (target < 50; HTTP {figures['frame_status']}); "
        f"the overview (every tensor's l2, 1,024 columns from 16 blocks of steps) "
        f"{figures['overview']:.1f} s"
    )


if __name__ == "__main__":
    main()
