"""When the writer commits, and how it yields the CPU to training."""

from __future__ import annotations

import os
import threading
import time


def now() -> float:
    """The writer's clock (monotonic seconds); a test may replace it."""
    return time.monotonic()


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


# The writer's nice value. At 19 it got ~1.5% of a core beside torch's spinning worker
# threads and committed nothing while a CPU model trained (bench/overhead.py: all 300
# steps of the CNN uncommitted at the end, 3.5 s of training); at 10 (~10% of a core when
# contended) it stays within a flush interval (the CNN: 43-79 steps, under 1 s), at no
# measurable cost to the step on this noisy 2-core machine.
WRITER_NICE = 10


def lower_priority_of_this_thread() -> None:
    """The writer yields the CPU to training: on Linux a thread has its own nice value."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass
