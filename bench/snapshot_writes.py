"""What writing snapshots costs, and how much of it is Zarr's own: 40 snapshots of one
tensor (the MLP's 784 KB first weight, as bench/overhead.py's defaults take in 300 steps)
written three ways, interleaved, the median of `--rounds`:

    python bench/snapshot_writes.py [--rounds 5] [--snapshots 40]

- through Zarr, as the writer does (store/snapshots.py: one resize, one call for the stack);
- pre-encoded chunks put through Zarr's store (the same files, none of the array's
  indexing and codec pipeline);
- encoded and written as plain files, one after another (the floor: the encoding and the
  bytes themselves);

with the snapshot codec (Blosc lz4, bit shuffle) and without compression.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from weightlapse.store import layout

SHAPE = (256, 784)


def through_zarr(data: np.ndarray, folder: Path, compressed: bool) -> None:
    group = zarr.open_group(folder, mode="w")
    arr = group.create_array(
        "w",
        shape=(0, *SHAPE),
        chunks=layout.snapshot_chunks(SHAPE, 4),
        dtype="f4",
        compressors=layout.snapshot_compressors() if compressed else None,
        config=layout.EVERY_CHUNK,
        fill_value=float("nan"),
    )
    arr.resize(data.shape)
    arr[0 : len(data)] = data


def through_store(data: np.ndarray, folder: Path, compressed: bool) -> None:
    group = zarr.open_group(folder, mode="w")
    arr = group.create_array(
        "w",
        shape=data.shape,
        chunks=(1, *SHAPE),
        dtype="f4",
        compressors=layout.snapshot_compressors() if compressed else None,
        config=layout.EVERY_CHUNK,
        fill_value=float("nan"),
    )
    codec = Blosc("lz4", 5, Blosc.BITSHUFFLE)
    store, prefix = arr.store_path.store, arr.store_path.path
    buffer = default_buffer_prototype().buffer

    async def put(i: int) -> None:
        raw = data[i].tobytes() if not compressed else None
        encoded = raw if raw is not None else await asyncio.to_thread(codec.encode, data[i])
        await store.set(f"{prefix}/c/{i}/0/0", buffer.from_bytes(encoded))

    async def put_all() -> None:
        await asyncio.gather(*(put(i) for i in range(len(data))))

    sync(put_all())
    np.testing.assert_array_equal(arr[len(data) - 1], data[-1])  # Zarr reads them back


def as_files(data: np.ndarray, folder: Path, compressed: bool) -> None:
    codec = Blosc("lz4", 5, Blosc.BITSHUFFLE)
    folder.mkdir()
    for i in range(len(data)):
        (folder / str(i)).write_bytes(codec.encode(data[i]) if compressed else data[i].tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((args.snapshots, *SHAPE)) * 0.05).astype(np.float32)
    ways: dict[str, Callable[[np.ndarray, Path, bool], None]] = {
        "through Zarr (the writer's way)": through_zarr,
        "pre-encoded chunks through Zarr's store": through_store,
        "encoded, plain files (the floor)": as_files,
    }
    times: dict[tuple[str, bool], list[float]] = {}
    runs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for compressed in (True, False):
                for name, write in ways.items():
                    runs += 1
                    began = time.perf_counter()
                    write(data, Path(tmp) / str(runs), compressed)
                    times.setdefault((name, compressed), []).append(time.perf_counter() - began)
    mb = data.nbytes / 2**20
    print(f"{args.snapshots} snapshots of {SHAPE} float32 ({mb:.0f} MiB), median of {args.rounds}:")
    for (name, compressed), seconds in times.items():
        codec = "lz4 + bit shuffle" if compressed else "no compression"
        ms = statistics.median(seconds) * 1e3
        print(f"  {name}, {codec}: {ms:.1f} ms ({ms / args.snapshots:.2f} ms a snapshot)")


if __name__ == "__main__":
    main()
