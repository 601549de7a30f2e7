"""The host statistics a step costs: the compiled kernels (record/kernels.py) against the
same numbers taken with NumPy, one pass per statistic, side by side in one process.

    python bench/stats_kernels.py [--repeat 200]

Shapes: the MLP and CNN of bench/overhead.py, and 10,000 tensors of 16 values. NumPy
here is the plain way (min, max, mean, std, L2, mean |x|, zeros of each tensor, and
np.histogram for the histogram column), in the tensors' float32; the recorder's NumPy
code before the kernels (a vectorised path for small tensors, blocks for big ones) took
0.35 ms and 0.88 ms on the MLP, 5.8 ms and 12.8 ms on the 10,000 tensors.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from weightlapse.record.stats import Segments, choose_probes, summarize_host

SHAPES = {
    "MLP 784-256-256-10": [784 * 256, 256, 256 * 256, 256, 256 * 10, 10],
    "CNN 2 conv + 2 dense": [144, 16, 4608, 32, 800 * 128, 128, 1280, 10],
    "10,000 tensors of 16": [16] * 10_000,
}


def numpy_way(arrays: list[np.ndarray], histograms: bool) -> None:
    for a in arrays:
        lo, hi = a.min(), a.max()
        a.mean(), a.std(), np.sqrt(np.dot(a, a)), np.abs(a).mean(), np.count_nonzero(a == 0)
        if histograms:
            np.histogram(a, bins=64, range=(float(lo), float(hi)))


def ms(fn: Callable[..., object], repeat: int, *args: object, **kwargs: object) -> float:
    """Median of 7 timings of `repeat` calls, per call."""
    times = []
    for _ in range(7):
        began = time.perf_counter()
        for _ in range(repeat):
            fn(*args, **kwargs)
        times.append((time.perf_counter() - began) / repeat * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        "| tensors | NumPy | kernels | ratio | NumPy + histograms | kernels + histograms | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, sizes in SHAPES.items():
        flat = (rng.standard_normal(sum(sizes)) * 0.05).astype(np.float32)
        segments = Segments.build(sizes, [choose_probes(s, 32, i) for i, s in enumerate(sizes)])
        arrays = np.split(flat, np.cumsum(sizes)[:-1])
        summarize_host(flat, segments)  # compiles (or loads) the kernels
        repeat = max(1, args.repeat * 269_000 // max(len(sizes) * 5_000, 269_000))
        row = [label]
        for hist in (False, True):
            plain = ms(numpy_way, repeat, arrays, hist)
            ours = ms(summarize_host, repeat, flat, segments, histograms=hist)
            row += [f"{plain:.3f} ms", f"{ours:.3f} ms", f"{plain / ours:.1f}x"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
