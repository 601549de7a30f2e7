"""When the writer commits, and how it yields the CPU to training."""

from __future__ import annotations

import os
import threading
import time


def now() -> float:
    """The writer's clock (monotonic seconds); a test may replace it."""
    return time.monotonic()


# A flush is due at this many buffered steps at the latest (the time rules below come
# first for any step slower than half a millisecond). Each flush costs Zarr a metadata
# write per growing array and a re-encoded partial chunk, in Python threads that share
# the GIL with training: at 256 steps the MLP of bench/overhead.py (about 1,000 steps a
# second) flushed four times a second, and Zarr's threads took 65 us of CPU a step; at
# 4,096, 20 us (`python bench/writer_ab.py flush-steps --loop hooks`). Memory is bounded
# apart from this (StoreWriter's max_pending_bytes).
FLUSH_STEPS = 4096


# Once it has caught up, the writer waits this long before it takes the next message, so
# steps reach it in bursts: woken at every step, its wake-ups and GIL hand-offs cost the
# training thread more than its work (the MLP's hooks alone, `python bench/writer_ab.py
# nap --loop hooks`: 343 us a step without the nap, 245 with it). A flush()
# waits up to this much longer; close() not at all (it wakes the writer).
WRITER_NAP = 0.02


def flush_due(
    buffered: int,
    oldest_age: float,
    since_flush: float,
    queue_empty: bool,
    flush_seconds: float,
    flush_steps: int,
) -> bool:
    """The flush policy. Due at `flush_steps` buffered steps; or once the oldest buffered
    step is half a flush interval old and nothing more is queued; or, when the writer is
    behind (steps still queued), once a whole interval has passed since the last flush:
    then what was taken in is committed, once per interval. (Flushing as soon as a queued
    step is old would flush after every step of a backlog, and fall further behind.)"""
    if buffered == 0:
        return False
    if buffered >= flush_steps or since_flush >= flush_seconds:
        return True
    return oldest_age >= flush_seconds / 2 and queue_empty


# The writer's nice value. Beside a CPU model's training threads it gets ~1.5% of a core
# at 19: enough now that the training thread takes statistics in place when the writer is
# behind (bench/overhead.py's CNN, statistics only: 75-111 steps uncommitted, under 1 s),
# but not for the snapshot-dense first hundreds of steps at defaults (all 300 of the
# CNN's wait for close). At 10 those commit on time, at a cost measured interleaved in
# one process: CNN statistics 1.32x against 1.22x, defaults 1.56x against 1.32x; MLP
# 1.74x against 1.40x and 2.58x against 2.19x. The writer's work costs training more
# while it runs beside it than at close.
WRITER_NICE = 19


def lower_priority_of_this_thread() -> None:
    """The writer yields the CPU to training: on Linux a thread has its own nice value."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass
