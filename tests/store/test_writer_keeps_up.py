"""The writer keeps up: every step is committed within one flush interval of being
logged. Time here is the writer's clock, replaced by one the test moves, and the test
waits on the writer's own count of what it has taken in: no wall-clock threshold."""

import numpy as np
import pytest

import weightlapse
from weightlapse.store import writer as writer_module
from weightlapse.store.pacing import flush_due


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(writer_module, "now", fake)
    return fake


def committed(run) -> int:
    return len(weightlapse.open(run.path).steps)


def test_steps_are_committed_within_one_flush_interval_of_the_last_log(tmp_path, clock):
    interval = 2.0
    run = weightlapse.create(tmp_path / "r", flush_seconds=interval, snapshots=None)
    w = np.zeros((8, 8))
    logged = 0
    for step in range(40):  # a step every 0.1 s of the writer's clock: 4 s of training
        run.log(step, {"w": w + step})
        logged += 1
        clock.t += 0.1
        run.recorder.finish()  # hand the held-back step to the writer, as the next log does
        run.store.caught_up()
        # the oldest step not yet committed was logged less than one interval ago
        behind = logged - committed(run)
        assert behind * 0.1 <= interval + 1e-9, (step, behind)
    # training stops: once half an interval passes, the writer commits the rest
    clock.t += interval / 2
    run.recorder.finish()
    run.store.update_meta({})  # any message wakes the writer; it does not force a flush
    run.store.caught_up()
    assert committed(run) == logged
    run.close()


def test_a_writer_behind_flushes_once_an_interval_whatever_is_queued():
    due = dict(flush_seconds=2.0, flush_steps=256)
    # idle (nothing queued): commit once the oldest step is half an interval old
    assert not flush_due(10, 0.9, 0.9, queue_empty=True, **due)
    assert flush_due(10, 1.0, 1.0, queue_empty=True, **due)
    # behind (steps still queued): take them in, but commit at least once an interval...
    assert not flush_due(10, 5.0, 1.5, queue_empty=False, **due)
    assert flush_due(10, 5.0, 2.0, queue_empty=False, **due)
    # ...and not after every step of a backlog whose steps are all old already
    assert not flush_due(1, 9.0, 0.01, queue_empty=False, **due)
    assert flush_due(256, 0.0, 0.0, queue_empty=False, **due)
    assert not flush_due(0, 99.0, 99.0, queue_empty=True, **due)


@pytest.mark.parametrize("waits", [True, False])
def test_training_waits_for_a_writer_an_interval_behind(tmp_path, clock, monkeypatch, waits):
    """A writer that never flushes on its own, as one starved of the CPU beside training's
    threads: the training side waits for it once the oldest step not committed was sent
    over an interval ago, so none stays uncommitted longer. (Without that wait, nothing
    is committed until close: the case is a real one.)"""
    monkeypatch.setattr(writer_module, "flush_due", lambda *args: False)
    if not waits:
        never = lambda self: None  # noqa: E731
        monkeypatch.setattr(writer_module.StoreWriter, "_wait_if_an_interval_behind", never)
    interval = 2.0
    run = weightlapse.create(tmp_path / "r", flush_seconds=interval, snapshots=None)
    sent = []
    for step in range(60):  # a step every 0.1 s of the writer's clock: 6 s of training
        run.log(step, {"w": np.full(4, float(step))})
        run.recorder.finish()  # the step goes to the writer now, as the next log sends it
        sent.append(clock.t)
        old = sum(t < clock.t - interval for t in sent)
        if waits:
            assert committed(run) >= old, (step, committed(run), old)
        clock.t += 0.1
    if not waits:
        assert committed(run) == 0
    run.close()
    assert committed(run) == 60
