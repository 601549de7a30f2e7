"""Time to animate 200 frames of a 784x10 weight view (the class templates of story 2),
to MP4 and to GIF, with the frame rendering and the encoding timed apart.

    python bench/animation.py [--frames 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import weightlapse
from weightlapse.views.animate import frames, write_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run"
        rng = np.random.default_rng(0)
        w = rng.normal(0, 0.01, (784, 10)).astype(np.float32)
        with weightlapse.create(path, snapshots=1, meta={"input_shape": [28, 28]}) as run:
            for step in range(args.frames):
                w += rng.normal(0, 0.002, w.shape).astype(np.float32)
                run.log(step, {"dense/kernel": w}, loss=1.0 / (step + 1))
        run = weightlapse.open(path)
        start = time.perf_counter()
        images = frames(run, "weights", "dense/kernel")
        render = time.perf_counter() - start
        timings = {}
        for suffix in (".mp4", ".gif"):
            start = time.perf_counter()
            write_video(Path(tmp) / f"out{suffix}", images, fps=10)
            timings[suffix] = time.perf_counter() - start
    print(f"{len(images)} frames of {images[0].shape[1]}x{images[0].shape[0]} px")
    print(f"render  {render:6.2f} s  ({render / len(images) * 1e3:.1f} ms a frame)")
    for suffix, seconds in timings.items():
        print(f"encode {suffix} {seconds:6.2f} s; total {render + seconds:6.2f} s (target < 30 s)")


if __name__ == "__main__":
    main()
