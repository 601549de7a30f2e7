"""What a user waits for at the shell: `import weightlapse`, `weightlapse --help`, the
first host statistics of a process (numba's import and kernels), and
`weightlapse inspect` of a file with very many tensors (each a fresh process, best of 3).

    python bench/startup_and_inspect.py [--tensors 200000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def seconds(args: list[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        best = min(best, time.perf_counter() - began)
    return best


# The first host statistics of a process: numba's import and its kernels' loading (from
# the on-disk cache once compiled), in seconds, and the resident memory they add.
FIRST_STATISTICS = """
import resource, time, numpy as np
from weightlapse.record.stats import Segments, summarize_host
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
before, began = rss(), time.perf_counter()
summarize_host(np.ones(5010, np.float32), Segments.build([10, 5000], [np.arange(0)] * 2))
print(time.perf_counter() - began, rss() - before)
"""


def first_statistics() -> tuple[float, float]:
    """Best of 3 fresh processes: (seconds, MiB of RSS) of their first statistics."""
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_STATISTICS], check=True, capture_output=True, text=True
        ).stdout.split()
        runs.append((float(out[0]), float(out[1])))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=200_000)
    args = parser.parse_args()
    from safetensors.numpy import save_file

    cli = [sys.executable, "-m", "weightlapse.cli"]
    print(f"import weightlapse: {seconds([sys.executable, '-c', 'import weightlapse']):.2f} s")
    print(f"weightlapse --help: {seconds([*cli, '--help']):.2f} s")
    took, mib = first_statistics()
    print(f"first host statistics of a process (numba): {took:.2f} s, {mib:.0f} MiB of RSS")
    path = Path(tempfile.mkdtemp()) / "many.safetensors"
    tensors = {f"layer{i // 4}.t{i % 4}": np.ones(8, "float32") for i in range(args.tensors)}
    save_file(tensors, str(path))
    size = path.stat().st_size / 2**20
    took = seconds([*cli, "inspect", str(path)], repeat=1)
    print(f"weightlapse inspect, {args.tensors:,} tensors in {size:.0f} MB: {took:.1f} s")


if __name__ == "__main__":
    main()
