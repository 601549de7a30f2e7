"""What the per-step arrays' compressor and chunking cost, on what a recorder writes:

    python bench/codecs.py [--steps 1024]

1. Records `--steps` steps of a small MLP (torch, synthetic data, gradients on), then
   for one chunk (256 steps) of each per-step array prints, per Blosc codec, the
   compression ratio and the time to encode (what a flush pays, again at each flush
   that adds rows to the chunk) and to decode (what a reader pays).
2. Reads one tensor's statistics over 100,000 steps from synthetic arrays chunked 256
   and 1,024 steps a chunk (4 tensors a chunk, as the recorder writes), at zstd levels 3
   and 1, interleaved, the median of 10 (Zarr's cost a chunk, not the bytes, bounds that
   read), and times encoding one full chunk of each (a flush re-encodes the chunk it adds
   rows to).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc

CODECS = {
    "zstd 3": Blosc("zstd", 3, Blosc.SHUFFLE),
    "zstd 1": Blosc("zstd", 1, Blosc.SHUFFLE),
    "lz4 5": Blosc("lz4", 5, Blosc.SHUFFLE),
}


def record(path: Path, steps: int) -> None:
    import torch

    import weightlapse.torch

    torch.manual_seed(0)
    layers = [torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256)]
    model = torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(2048, 784), torch.randint(0, 10, (2048,))
    rec = weightlapse.torch.watch(model, path, optimizer=opt, gradients=True)
    for _ in range(steps):
        i = torch.randint(0, 2048, (64,))
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    rec.close()


def per_call(fn, n: int = 100) -> float:
    began = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - began) / n


def codec_table(path: Path) -> None:
    group = zarr.open_group(path, mode="r")
    print(f"{'array (one chunk)':28s} {'codec':7s} {'ratio':>6s} {'encode':>9s} {'decode':>9s}")
    for name in ("param/stats", "grad/stats", "param/hist", "grad/hist", "param/probes"):
        data = group[name][:256]
        chunk = np.ascontiguousarray(data[:, :4] if data.ndim == 3 else data)
        for label, codec in CODECS.items():
            encoded = codec.encode(chunk)
            encode = per_call(lambda codec=codec, chunk=chunk: codec.encode(chunk))
            decode = per_call(lambda codec=codec, encoded=encoded: codec.decode(encoded))
            print(
                f"{name + ' ' + 'x'.join(map(str, chunk.shape)):28s} {label:7s} "
                f"{chunk.nbytes / len(encoded):6.2f} {encode * 1e6:7.0f} us {decode * 1e6:7.0f} us"
            )


def chunk_steps_read(folder: Path) -> None:
    from weightlapse.store.reader import READ_TUNING

    steps, tensors = 100_000, 8
    rng = np.random.default_rng(0)
    wave = np.sin(np.arange(steps)[:, None] / 3000 + rng.uniform(0, 6.28, tensors)[None, :])
    table = np.zeros((steps, tensors, 9))
    for column, (base, swing) in enumerate([(-1, -0.1), (1, 0.1), (0, 0.01), (0.5, 0.05)]):
        table[..., column] = base + swing * wave + rng.normal(0, 1e-4, wave.shape)
    chunked = {}
    for rows, level in ((256, 3), (512, 1), (1024, 3), (1024, 1)):
        where = folder / f"stats{rows}-{level}"
        codec = zarr.codecs.BloscCodec(cname="zstd", clevel=level, shuffle="shuffle")
        arr = zarr.create_array(
            where, shape=table.shape, chunks=(rows, 4, 9), dtype="f8", compressors=(codec,)
        )
        arr[:] = table
        blosc = Blosc("zstd", level, Blosc.SHUFFLE)
        chunk = np.ascontiguousarray(table[:rows, :4])
        encode = per_call(lambda blosc=blosc, chunk=chunk: blosc.encode(chunk), 20)
        size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file())
        chunked[(rows, level)] = (where, encode, size)
    took: dict[tuple[int, int], list[float]] = {key: [] for key in chunked}
    with zarr.config.set(READ_TUNING):
        for _ in range(10):
            for key, (where, _, _) in chunked.items():
                arr = zarr.open_array(where, mode="r")
                began = time.perf_counter()
                arr[:, 5, :]
                took[key].append(time.perf_counter() - began)
    print(f"\nstatistics of {tensors} tensors over {steps:,} steps, 4 tensors a chunk:")
    for (rows, level), (_, encode, size) in chunked.items():
        print(
            f"{rows:5d} steps a chunk, zstd {level}: one tensor's, every step "
            f"{statistics.median(took[rows, level]) * 1e3:4.0f} ms ({-(-steps // rows)} "
            f"chunks); encoding a full chunk {encode * 1e3:.2f} ms; {size / 2**20:.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        record(Path(folder) / "mlp", args.steps)
        codec_table(Path(folder) / "mlp")
        chunk_steps_read(Path(folder))


if __name__ == "__main__":
    main()
