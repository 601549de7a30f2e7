"""What memory costs the first time a process touches it, against memory it reuses. Each
first touch of a page is a page fault; in a virtual machine, more so a nested one (this
machine: a Firecracker guest with nested_pvm and page_reporting on its kernel command
line), a fault may cost microseconds, and memory freed for a few seconds may go back to
the host (page reporting) and be slow to touch again.

    python bench/fresh_memory.py [--mib 256] [--pause 5] [--rounds 3]

Each round maps `--mib` MiB of anonymous memory (4 KiB pages) and fills it (first touch:
every page faults), fills it again (reused: no faults, the memory's own speed), unmaps
it, maps and fills the same size at once, and again after `--pause` seconds idle; then
the same for a NumPy array (NumPy asks for huge pages for big arrays: one fault a 2 MiB
page) at once and after the pause. Milliseconds a MiB, median over rounds, and the
faults. bench/where_time_goes.py counts the page faults of a close(): that many faults
times their cost here is the part of close() that this machine charges and one with
cheap faults would not.
"""

from __future__ import annotations

import argparse
import mmap
import resource
import statistics
import time
from pathlib import Path

import numpy as np


def fill_ms(buffer: mmap.mmap) -> tuple[float, int]:
    """Milliseconds to fill the buffer with ones, and the minor page faults it took."""
    array = np.frombuffer(buffer, dtype=np.uint8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    began = time.perf_counter()
    array.fill(1)
    ms = (time.perf_counter() - began) * 1e3
    del array  # (a view of the buffer: it must go before the buffer can close)
    return ms, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def numpy_fill_ms(size: int) -> tuple[float, int]:
    """fill_ms of a new NumPy array (allocated by NumPy, freed after)."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    began = time.perf_counter()
    np.ones(size, dtype=np.uint8)
    ms = (time.perf_counter() - began) * 1e3
    return ms, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def settings() -> str:
    """What the kernel says about page reporting and transparent huge pages."""
    said = []
    cmdline = Path("/proc/cmdline")
    if cmdline.exists():
        said += [w for w in cmdline.read_text().split() if "page_reporting" in w]
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists():
        said.append(f"transparent huge pages: {thp.read_text().strip()}")
    return "; ".join(said) or "(no page reporting or huge page settings visible)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * 2**20
    kinds = [
        "first touch",
        "reused",
        "mapped again at once",
        f"mapped again after {args.pause} s",
        "NumPy array, at once",
        f"NumPy array, after {args.pause} s",
    ]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    faults: dict[str, list[int]] = {k: [] for k in kinds}

    def note(kind: str, measured: tuple[float, int]) -> None:
        times[kind].append(measured[0] / args.mib)
        faults[kind].append(measured[1])

    for _ in range(args.rounds):
        buffer = mmap.mmap(-1, size)
        note(kinds[0], fill_ms(buffer))
        note(kinds[1], fill_ms(buffer))
        buffer.close()
        buffer = mmap.mmap(-1, size)
        note(kinds[2], fill_ms(buffer))
        buffer.close()
        time.sleep(args.pause)
        buffer = mmap.mmap(-1, size)
        note(kinds[3], fill_ms(buffer))
        buffer.close()
        note(kinds[4], numpy_fill_ms(size))
        time.sleep(args.pause)
        note(kinds[5], numpy_fill_ms(size))
    print(settings())
    print(f"filling {args.mib} MiB, median of {args.rounds} rounds:")
    for kind in kinds:
        ms = statistics.median(times[kind])
        print(f"  {kind}: {ms:.3f} ms a MiB, {statistics.median(faults[kind]):,.0f} faults")


if __name__ == "__main__":
    main()
