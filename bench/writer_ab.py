"""A/B of the writer's pacing settings, interleaved round by round in one process (this
machine is noisy: only side-by-side runs decide), the way README's Performance gives them.

    python bench/writer_ab.py nap|stack|flush-steps|snapshot-rows [--loop train|hooks]
                              [--steps 600]
                              [--rounds 3] [--models mlp,cnn] [--variants ...]

`nap`: the writer's nap once caught up (store/writer.py WRITER_NAP, 0 against 0.02 s).
`stack`: a flush's snapshots of a tensor written in one call or row by row
(store/snapshots.py STACK_BYTES). `flush-steps`: a flush due at 256 or 4,096 buffered
steps (StoreWriter's flush_steps). `snapshot-rows`: a small tensor's snapshots one to a
chunk, or as many as fit in 256 KiB (store/layout.py SNAPSHOT_ROWS_BYTES).

`--loop train` (default): continuous training steps plus close(), as bench/overhead.py
times them, each setting's ratio to the plain step (median over rounds) and its close().
`--loop hooks`: the MLP's optimizer hooks called alone, no training, statistics only,
with the writer forced behind (the training thread takes the statistics, as it does
beside torch's threads): microseconds a step, and CPU a step of the training thread, the
writer thread and Zarr's threads (from /proc, Linux only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402  (bench/overhead.py: the models, the batch, one timed run)


def set_nap(value: float) -> None:
    import weightlapse.store.writer as writer

    writer.WRITER_NAP = value


def set_stack(value: int) -> None:
    import weightlapse.store.snapshots as snapshots

    snapshots.STACK_BYTES = value


def set_snapshot_rows(value: int) -> None:
    import weightlapse.store.layout as layout

    layout.SNAPSHOT_ROWS_BYTES = value


def set_flush_steps(value: int) -> None:
    from weightlapse.store.writer import StoreWriter

    StoreWriter.__init__.__kwdefaults__["flush_steps"] = value


SETTINGS: dict[str, tuple[Callable[[float], None], list[float]]] = {
    "nap": (set_nap, [0.0, 0.02]),
    "stack": (set_stack, [0, 16 * 2**20]),
    "flush-steps": (set_flush_steps, [256, 4096]),
    "snapshot-rows": (set_snapshot_rows, [0, 2**18]),
}


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def hooks_loop(steps: int, tmp: Path) -> dict[str, float]:
    """The MLP's optimizer hooks alone, `steps` times: us a step, and CPU us a step."""
    import torch

    import weightlapse.torch
    from weightlapse.store.writer import StoreWriter

    torch.manual_seed(0)
    model = overhead.models()["mlp"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y, loss_of = overhead.batch("mlp")
    opt.zero_grad()
    loss_of(model(x), y).backward()
    opt.step()
    behind = StoreWriter.behind
    StoreWriter.behind = property(lambda self: True)  # type: ignore[method-assign,assignment]
    try:
        rec = weightlapse.torch.watch(model, tmp, optimizer=opt, snapshots=None, histograms=None)

        def hooks(n: int) -> None:
            for _ in range(n):
                rec._before_optimizer_step(opt, (opt,), {})
                rec._after_optimizer_step(opt, (opt,), {})

        hooks(100)
        writer = rec.recorder.writer._thread.native_id
        main = threading.main_thread().native_id
        before = thread_cpu()
        began = time.perf_counter()
        hooks(steps)
        wall = time.perf_counter() - began
        after = thread_cpu()
        rec.close()
    finally:
        StoreWriter.behind = behind  # type: ignore[method-assign]
    names = {t.native_id: t.name for t in threading.enumerate()}
    used = {t: after[t] - before.get(t, 0.0) for t in after}
    zarr = sum(c for t, c in used.items() if str(names.get(t, "")).startswith(("zarr", "asyncio")))
    per = 1e6 / steps
    return {
        "us a step": wall * per,
        "training thread CPU": used.get(main, 0.0) * per,
        "writer CPU": used.get(writer, 0.0) * per,
        "Zarr threads CPU": zarr * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setting", choices=sorted(SETTINGS))
    parser.add_argument("--loop", choices=["train", "hooks"], default="train")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--variants", default="stats only,defaults,params+grads")
    args = parser.parse_args()
    apply, values = SETTINGS[args.setting]
    results: dict[tuple[str, ...], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            if args.loop == "hooks":
                for value in values:
                    apply(value)
                    got = hooks_loop(args.steps * 10, Path(tmp) / f"{r}-{value}")
                    for what, figure in got.items():
                        results.setdefault((what, str(value)), []).append(figure)
                continue
            for name in args.models.split(","):
                plain = overhead.one(name, "plain", args.steps, Path(tmp) / f"{r}{name}")
                for variant in args.variants.split(","):
                    for value in values:
                        apply(value)
                        where = Path(tmp) / f"{r}{name}{variant}{value}"
                        where.mkdir()
                        got = overhead.one(name, f"weightlapse {variant}", args.steps, where)
                        key = (name, variant, str(value))
                        results.setdefault(key, []).append(got["total"] / plain["total"])
                        closing = got["total"] - got["trained"]
                        results.setdefault((*key, "close s"), []).append(closing)
    print(f"{args.setting}, {args.loop} loop, medians of {args.rounds} interleaved rounds:")
    for key, figures in results.items():
        cells = ", ".join(f"{f:.2f}" for f in figures)
        print(f"{' | '.join(key)}: {statistics.median(figures):.2f}  ({cells})")


if __name__ == "__main__":
    main()
