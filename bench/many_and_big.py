"""Many tensors and one big one, through the generic `log`:

    python bench/many_and_big.py [--tensors 10000] [--steps 21] [--big 200000000]

Prints, for 10,000 small tensors at default options: milliseconds of the first `log`
(which registers every tensor) and of the later ones, seconds for `close()` (what the
writer has left), and files on disk; for one 200M-element float32 tensor (in a process of
its own): peak RSS over the tensor's size while logging and closing it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG = """
import resource, sys, tempfile, numpy as np, weightlapse
n = int(sys.argv[1])
w = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with weightlapse.create(tempfile.mkdtemp() + "/r") as run:
    run.log(0, {"w": w})
    w += 1
    run.log(1, {"w": w})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(base, peak, w.nbytes)
"""


def many(tensors: int, steps: int) -> None:
    import numpy as np

    import weightlapse

    rng = np.random.default_rng(0)
    arrays = {
        f"layer{i // 4}/w{i % 4}": rng.standard_normal(16, dtype=np.float32) for i in range(tensors)
    }
    with tempfile.TemporaryDirectory() as tmp:
        run = weightlapse.create(Path(tmp) / "r")
        took = []
        for step in range(steps):
            began = time.perf_counter()
            run.log(step, arrays)
            took.append(time.perf_counter() - began)
        began = time.perf_counter()
        run.close()
        closed = time.perf_counter() - began
        files = sum(1 for f in (Path(tmp) / "r").rglob("*") if f.is_file())
    later = sorted(took[1:])
    print(
        f"{tensors} tensors x {steps} steps (default options: a snapshot at every log-spaced "
        f"step): first log {took[0] * 1e3:.0f} ms (registers every tensor), then median "
        f"{later[len(later) // 2] * 1e3:.0f} ms, slowest {later[-1] * 1e3:.0f} ms; "
        f"all {sum(took):.1f} s; close {closed:.1f} s; {files} files"
    )


def big(n: int) -> None:
    out = subprocess.run([sys.executable, "-c", BIG, str(n)], capture_output=True, text=True)
    base, peak, nbytes = map(int, out.stdout.split())
    print(
        f"one {n:,}-element float32 tensor ({nbytes / 2**30:.2f} GiB): peak RSS "
        f"{peak / nbytes:.2f}x the tensor (before logging: {base / nbytes:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--big", type=int, default=200_000_000)
    args = parser.parse_args()
    many(args.tensors, args.steps)
    big(args.big)


if __name__ == "__main__":
    main()
