"""Where a recorded run's time goes: CPU of each thread during training, and `close()`
taken apart, for one model and variant of bench/overhead.py.

    python bench/where_time_goes.py [--model mlp] [--variant defaults] [--steps 300]
                                    [--pause 0]

Training: CPU milliseconds a step of each thread of the process (from /proc, Linux only):
the training thread, torch's other threads (its OpenMP workers, which spin while the
training thread works), the writer thread, Zarr's threads (its event loop and the pool
that encodes chunks). `close()`: milliseconds in its parts (the writer's flush: the
snapshots, each tensor's own, the per-step rows, the arrays created at the first flush,
the commit), from the store's methods wrapped for this run (their time inside close()),
and the minor page faults of the process during close() (pages it touched for the first
time: slow on some virtual machines, see bench/fresh_memory.py).
Figures of one run: run it a few times (this machine is noisy), read them side by side.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402  (bench/overhead.py: the models, the batch)
from writer_ab import thread_cpu  # noqa: E402  (CPU seconds of each thread, from /proc)

VARIANTS = {
    "stats only": {"snapshots": None, "histograms": None},
    "defaults": {},
    "params+grads": {"gradients": True, "snapshots": None},
}


Calls = list[tuple[str, float, float]]


def timing(calls: Calls) -> Callable[[Any, str, Callable[..., str]], None]:
    """A wrapper of `owner.name` that notes (label(args), start, end) of each call."""

    def wrap(owner: Any, name: str, label: Callable[..., str]) -> None:
        inner = owner.__dict__[name]
        static = isinstance(inner, staticmethod)
        fn = inner.__func__ if static else inner

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                calls.append((label(*args), began, time.perf_counter()))

        setattr(owner, name, staticmethod(timed) if static else timed)

    return wrap


PARTS = [
    "the writer's flush (the parts below)",
    "  snapshots",
    "    creating snapshot arrays",
    "  per-step rows",
    "  finding/creating row arrays",
    "  commits",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn", "transformer"])
    parser.add_argument("--variant", default="defaults", choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds idle before close()")
    args = parser.parse_args()

    import torch

    import weightlapse.torch
    from weightlapse.store import snapshots, writer

    calls: Calls = []
    wrap = timing(calls)
    wrap(writer.StoreWriter, "_flush", lambda *a: PARTS[0])
    wrap(snapshots.SnapshotWriter, "write", lambda *a: PARTS[1])
    wrap(snapshots.SnapshotWriter, "_write_own", lambda s, kind, name, taken: f"    {name}")
    wrap(snapshots.SnapshotWriter, "_create", lambda *a: PARTS[2])
    wrap(writer.StoreWriter, "_write_rows", lambda *a: PARTS[3])
    wrap(writer.StoreWriter, "_growing_array", lambda *a: PARTS[4])
    wrap(writer.StoreWriter, "_commit_attrs", lambda *a: PARTS[5])

    torch.manual_seed(0)
    model = overhead.models()[args.model]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y, loss_of = overhead.batch(args.model)

    def step() -> None:
        opt.zero_grad()
        loss_of(model(x), y).backward()
        opt.step()

    with tempfile.TemporaryDirectory() as tmp:
        watcher = weightlapse.torch.watch(
            model, Path(tmp) / "r", optimizer=opt, **VARIANTS[args.variant]
        )
        for _ in range(20):  # numba's first use and torch's warm-up: not counted
            step()
        names = {t.native_id: t.name for t in threading.enumerate()}
        before, began = thread_cpu(), time.perf_counter()
        for _ in range(args.steps):
            step()
        trained, after = time.perf_counter() - began, thread_cpu()
        names.update({t.native_id: t.name for t in threading.enumerate()})
        time.sleep(args.pause)  # (torch's threads stop spinning, the writer may flush)
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        closing_began = time.perf_counter()
        watcher.close()
        closing = time.perf_counter() - closing_began
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    main_id = threading.main_thread().native_id
    groups: dict[str, float] = {}
    for tid, cpu in after.items():
        name = str(names.get(tid, ""))
        if tid == main_id:
            group = "training thread"
        elif name.startswith("weightlapse"):
            group = "writer thread"
        elif name.startswith(("zarr", "asyncio")):
            group = "Zarr's threads"
        elif name:
            group = f"other Python thread {name}"
        else:
            group = "torch's threads (not Python's)"
        groups[group] = groups.get(group, 0.0) + cpu - before.get(tid, 0.0)
    per = 1e3 / args.steps
    print(f"{args.model}, {args.variant}: {trained * per:.3f} ms a step, {args.steps} steps")
    for group, cpu in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {group}: {cpu * per:.3f} ms of CPU a step")
    print(f"close(): {closing * 1e3:.0f} ms ({faults:,} minor page faults: memory touched")
    print("  for the first time, see bench/fresh_memory.py), of which:")
    spent: dict[str, float] = {}
    made: dict[str, int] = {}  # calls of each part inside close()
    for label, start, end in calls:  # the part of each call inside close()
        if end > closing_began:
            spent[label] = spent.get(label, 0.0) + end - max(start, closing_began)
            made[label] = made.get(label, 0) + 1
    tensors = sorted(k for k in spent if k not in PARTS)
    for part in [*PARTS[:2], *tensors, *PARTS[2:]]:
        if part in spent:
            print(f"  {part}: {spent[part] * 1e3:.1f} ms ({made[part]} calls)")


if __name__ == "__main__":
    main()
