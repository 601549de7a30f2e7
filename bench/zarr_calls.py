"""What one Zarr call costs the writer, on a fresh local group: making a per-step array
as the writer makes it, resizing it (a metadata rewrite), writing 300 rows of
statistics into it, asking whether a path is there, and opening an array by its path.
Median of `--calls` calls each, milliseconds. A run's first flush makes a dozen arrays
(`python bench/where_time_goes.py` counts them inside close()).

    python bench/zarr_calls.py [--calls 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import zarr

from weightlapse.store import layout


def median_ms(call: Callable[[int], object], calls: int) -> float:
    times = []
    for i in range(calls):
        began = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        group = zarr.open_group(tmp, mode="w")
        rows = np.random.default_rng(0).random((300, 6, len(layout.STAT_NAMES)))

        def make(i: int) -> zarr.Array:
            path = f"k{i}/stats"
            chunks, dtype, fill = layout.growing_array_spec(path, 6)
            return layout.create_growing_array(
                group, path, (6, rows.shape[2]), chunks, dtype, fill, 0
            )

        figures = {"make an array": median_ms(make, args.calls)}
        arrays = [group[f"k{i}/stats"] for i in range(args.calls)]
        figures["resize it"] = median_ms(lambda i: arrays[i].resize(rows.shape), args.calls)
        figures["write 300 rows"] = median_ms(
            lambda i: arrays[i].__setitem__(slice(0, 300), rows), args.calls
        )
        figures["'path in group'"] = median_ms(lambda i: f"k{i}/stats" in group, args.calls)
        figures["group[path]"] = median_ms(lambda i: group[f"k{i}/stats"], args.calls)
    for what, ms in figures.items():
        print(f"{what}: {ms:.2f} ms")


if __name__ == "__main__":
    main()
